"""TrainConfig.anchor end to end: the step trains the anchored loss, the run evaluates and the
forecast predicts with the anchored logits, and config.json records it."""
from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_jax import data, train
from rnn_jax.common.errors import InputError
from rnn_jax.core import model
from rnn_jax.data import WindowSpec
from rnn_jax.forecasting import forecast, occupancy
from rnn_jax.train import TrainConfig


def test_the_step_of_an_anchored_config_trains_the_anchored_loss():
  cfg = TrainConfig(hidden_size=4, anchor=True, optimizer="sgd", lr=1.0, clip=0.0).validate()
  rng = np.random.default_rng(0)
  params = model.init_params(jax.random.PRNGKey(0), 1, 4, 3)
  xs = jnp.asarray(rng.uniform(0.1, 0.9, (8, 5, 1)), jnp.float32)
  ys = jnp.asarray(rng.uniform(size=(8, 3)), jnp.float32)
  opt = train.make_optimizer(cfg)
  new, _, loss, _ = train.make_train_step(cfg)(params, opt.init(params), xs, ys)
  assert float(loss) == pytest.approx(float(model.loss(params, xs, ys, anchor=True)), rel=1e-6)
  grads = jax.grad(model.loss)(params, xs, ys, anchor=True)
  np.testing.assert_allclose(new.c, params.c - grads.c, rtol=1e-5, atol=1e-7)


def test_anchor_must_be_a_boolean():
  with pytest.raises(InputError, match="anchor"):
    TrainConfig(anchor="yes").validate()


@pytest.fixture(scope="module")
def anchored_run(tmp_path_factory):
  cfg = TrainConfig(hidden_size=8, epochs=2, patience=0, batch_size=256, anchor=True,
                    loss="pinball")
  out = tmp_path_factory.mktemp("runs") / "anchored"
  result = occupancy.run(occupancy.DataSource(), WindowSpec(), cfg, out, progress=False,
                         make_plots=False, log=lambda *a: None)
  return out, result


def test_an_anchored_run_is_evaluated_and_forecast_with_its_anchor(anchored_run):
  out, result = anchored_run
  assert json.loads((out / "config.json").read_text())["train"]["anchor"] is True
  dataset, params = result["dataset"], result["fit"].params
  z = np.asarray(model.predict(params, dataset.test.xs, anchor=True), np.float64)
  median = np.round(occupancy.bands_of(z)[..., 1] * dataset.capacity)    # whole people
  mae = np.abs(median - dataset.test.target_people).mean(axis=0)
  reported = json.loads((out / "results.json").read_text())["splits"]["test"]["model"]["mae"]
  np.testing.assert_allclose(mae, reported, rtol=1e-5)
  window = data.newest_window(data.synthetic_readings(), WindowSpec(), dataset.capacity)
  fc = forecast.forecast(out, occupancy.DataSource())
  zw = occupancy.bands_of(np.asarray(model.predict(params, window.xs, anchor=True)))[0, :, 1]
  assert [f["value"] for f in fc["forecasts"]] == list(np.round(zw * dataset.capacity))

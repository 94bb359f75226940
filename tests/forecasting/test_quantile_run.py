"""The occupancy run with quantile outputs (``--loss pinball``, rnn_jax.forecasting.occupancy):
three outputs per horizon trained with the pinball loss, rearranged so they never cross, the
median as the point forecast, and the conformalized quantile (CQR) interval reported next to the
symmetric split-conformal one; its settings, resume and refusals."""
from __future__ import annotations

import dataclasses
import json
import math

import jax
import numpy as np
import pytest

from rnn_jax import evaluation, train
from rnn_jax.common.errors import InputError
from rnn_jax.core import model
from rnn_jax.data import WindowSpec
from rnn_jax.evaluation import conformal, scores
from rnn_jax.forecasting import occupancy
from rnn_jax.settings import PRESETS, TrainConfig
from rnn_jax.train import checkpoint
from conftest import load_script

KEYS = {"level", "q", "coverage", "mean_width", "interval_score", "pinball"}


def raw_bands(result, split):
  """Each model's outputs on ``split`` in units, ``[S, N, H, 3]``, sorted here with NumPy."""
  dataset, params = result["dataset"], result["fit"].params
  z = np.asarray(jax.vmap(model.predict, in_axes=(0, None))(params, dataset[split].xs),
                 np.float64)
  return np.sort(z.reshape(z.shape[:2] + (3, 3)), axis=-1) * dataset.capacity


def test_pinball_run_writes_both_intervals(pinball_run):
  out, result = pinball_run
  assert result["status"] == "done"
  params = result["fit"].params
  assert params.W.shape == (2, 9, 8) and params.c.shape == (2, 9)     # 3 horizons x 3
  config = json.loads((out / "config.json").read_text())
  assert config["train"]["loss"] == "pinball" and config["evaluation"]["interval"] == 0.8
  results = json.loads((out / "results.json").read_text())
  for split in ("val", "test"):
    entry = results["splits"][split]["model"]
    assert KEYS <= set(entry["interval"]) and KEYS <= set(entry["cqr"])
    assert all(len(entry[k][key]) == 3 for k in ("interval", "cqr") for key in KEYS - {"level"})
    assert set(entry["cqr"]["uncalibrated"]) == {"coverage", "mean_width", "interval_score"}
  rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
  assert len(rows) == 4 and all(math.isfinite(r["val_mae"]) for r in rows)
  online = results["splits"]["test"]["model"]["cqr_online"]
  assert "cqr_online" not in results["splits"]["val"]["model"]     # val calibrates
  assert KEYS <= set(online) and online["gamma"] == conformal.ACI_GAMMA
  assert all(len(online[k]) == 3 for k in KEYS - {"level"} | {"q_mean"})
  table = evaluation.format_table(results)
  assert "(split-conformal, symmetric" in table and "(conformalized quantile regression" in table
  assert "(the same, adapted online on test as each target arrives" in table
  assert table.count("interval_score") == 3 and table.count("\npinball") == 3


def test_quantiles_never_cross_and_the_median_is_the_forecast(pinball_run):
  out, result = pinball_run
  dataset, params = result["dataset"], result["fit"].params
  members = occupancy.quantile_predictions(dataset, params, members=True)
  for split in ("val", "test"):
    expected = raw_bands(result, split)
    np.testing.assert_allclose(members[split], expected, rtol=1e-6)
    assert np.all(np.diff(members[split], axis=-1) >= 0)
  bands = occupancy.quantile_predictions(dataset, params)
  np.testing.assert_allclose(bands["test"], raw_bands(result, "test").mean(0), rtol=1e-6)
  median = occupancy.predictions(dataset, params, quantiles=True)["test"]
  np.testing.assert_allclose(median, bands["test"][..., 1])
  # the synthetic gym counts people: the point forecast is the median rounded to whole people
  assert dataset.whole_counts
  reported = json.loads((out / "results.json").read_text())["splits"]["test"]["model"]
  target = dataset.test.target_people
  np.testing.assert_allclose(reported["mae"], np.abs(np.round(median) - target).mean(0),
                             rtol=1e-6)
  np.testing.assert_allclose(reported["mae_unrounded"], np.abs(median - target).mean(0),
                             rtol=1e-6)
  assert reported["mae"] != reported["mae_unrounded"]


def test_the_median_of_a_series_that_is_not_counted_is_not_rounded(pinball_run):
  _, result = pinball_run
  dataset = dataclasses.replace(result["dataset"], whole_counts=False)
  members = result["member_preds"]
  results = occupancy.evaluate(dataset, members, [0, 1], base=result["base"],
                               bands=result["bands"])
  entry = results["splits"]["test"]["model"]
  assert "mae_unrounded" not in entry
  np.testing.assert_allclose(
      entry["mae"], np.abs(members["test"].mean(0) - dataset.test.target_people).mean(0),
      rtol=1e-6)
  counted = occupancy.evaluate(result["dataset"], members, [0, 1], base=result["base"],
                               bands=result["bands"])["splits"]["test"]["model"]
  assert counted["mae_unrounded"] == entry["mae"]
  assert counted["interval"] == entry["interval"]      # the symmetric one: around the unrounded
  assert counted["members"]["mae"] != entry["members"]["mae"]    # each model's rounded too


def test_cqr_is_calibrated_on_val_and_measured_on_test(pinball_run):
  out, result = pinball_run
  dataset = result["dataset"]
  results = json.loads((out / "results.json").read_text())
  val = raw_bands(result, "val").mean(0)
  y = dataset.val.target_people
  E = np.maximum(val[..., 0] - y, y - val[..., 2])                   # [n, H]
  n = len(E)
  q = np.sort(E, axis=0)[math.ceil(0.8 * (n + 1)) - 1]
  for split in ("val", "test"):
    iv = results["splits"][split]["model"]["cqr"]
    np.testing.assert_allclose(iv["q"], q, rtol=1e-6)
    bands = raw_bands(result, split).mean(0)
    lo = np.clip(bands[..., 0] - q, 0, dataset.capacity)
    hi = np.clip(bands[..., 2] + q, 0, dataset.capacity)
    target = dataset[split].target_people
    np.testing.assert_allclose(iv["coverage"], ((target >= lo) & (target <= hi)).mean(0),
                               atol=1.5 / len(target))    # a window on the edge, float32
    np.testing.assert_allclose(iv["mean_width"], (hi - lo).mean(0), rtol=1e-5)
    np.testing.assert_allclose(iv["interval_score"],
                               scores.interval_score(lo, hi, target, 0.8), rtol=1e-4)
  # adapted online over test: ACI from val's scores, each test target used once it is known
  test = raw_bands(result, "test").mean(0)
  y_test = dataset.test.target_people
  q_t, q_next = conformal.online_quantiles(
      E, np.maximum(test[..., 0] - y_test, y_test - test[..., 2]), dataset.test.end_times,
      dataset.test.target_times, 0.8)
  online = results["splits"]["test"]["model"]["cqr_online"]
  lo, hi = conformal.cqr_intervals(test[..., 0], test[..., 2], q_t, dataset.capacity)
  np.testing.assert_allclose(online["coverage"], ((y_test >= lo) & (y_test <= hi)).mean(0),
                             atol=1.5 / len(y_test))
  np.testing.assert_allclose(online["mean_width"], (hi - lo).mean(0), rtol=1e-5)
  np.testing.assert_allclose(online["q"], np.clip(q_next, -dataset.capacity, dataset.capacity),
                             rtol=1e-5)
  # on val the calibrated band covers at least the ceil(0.8 (n+1))-th score's windows
  assert all(c >= math.ceil(0.8 * (n + 1)) / n - 1e-12
             for c in results["splits"]["val"]["model"]["cqr"]["coverage"])


def test_test_week_band_is_the_online_cqr_band(pinball_run, tmp_path, monkeypatch):
  _, result = pinball_run
  dataset, fitted, results = result["dataset"], result["fit"], result["results"]
  calls = {}
  for name in ("learning_curves", "grad_norms", "forecast_vs_actual", "mae_by_horizon"):
    monkeypatch.setattr(occupancy.plots, name,
                        lambda *a, _name=name, **k: calls.setdefault(_name, (a, k)))
  bands = occupancy.quantile_predictions(dataset, fitted.params)
  preds = {k: v[..., 1] for k, v in bands.items()}
  base = {"test": {"persistence": np.zeros_like(preds["test"])}}
  first = jax.tree.map(lambda a: a[0], fitted.params)
  taus = conformal.quantile_levels(0.8) * 3
  occupancy._plots(tmp_path, dataset, results, fitted.histories, first, preds, base, taus=taus,
                   bands=bands)
  args, kwargs = calls["forecast_vs_actual"]
  q = occupancy.online_q(dataset, bands)[0]                        # [N_test, H], per window
  times = args[0]
  rows = np.isin(dataset.test.end_times, times)
  lo, hi = conformal.cqr_intervals(bands["test"][rows, :, 0], bands["test"][rows, :, 2],
                                   q[rows], dataset.capacity)
  np.testing.assert_allclose(kwargs["band"][0], lo)
  np.testing.assert_allclose(kwargs["band"][1], hi)
  assert kwargs["band_label"] == "80% interval (CQR, adapted online)"
  assert "pinball" in calls["learning_curves"][1]["title"]
  norms = calls["grad_norms"][0][0]
  assert norms.shape == (24,) and np.all(np.isfinite(norms))


def test_quantile_setup():
  spec = WindowSpec(horizons=(1, 6))
  K, taus, targets = occupancy.quantile_setup(spec, TrainConfig(loss="pinball"), 0.9)
  assert K == 6 and taus == (0.05, 0.5, 0.95, 0.05, 0.5, 0.95)
  np.testing.assert_array_equal(targets(np.array([[0.1, 0.2]])),
                                [[0.1, 0.1, 0.1, 0.2, 0.2, 0.2]])
  K, taus, targets = occupancy.quantile_setup(spec, TrainConfig(), 0.9)
  assert (K, taus) == (2, None)
  ys = np.array([[0.1, 0.2]])
  assert targets(ys) is ys
  with pytest.raises(InputError, match="--loss pinball: needs --task horizons"):
    occupancy.quantile_setup(WindowSpec(task="levels"), TrainConfig(loss="pinball"))
  z = np.array([[0.9, 0.1, 0.5, 0.2, 0.3, 0.4]])
  np.testing.assert_array_equal(occupancy.bands_of(z), [[[0.1, 0.5, 0.9], [0.2, 0.3, 0.4]]])


def test_loss_setting_and_presets():
  assert TrainConfig().loss == "bce" and TrainConfig().anchor is False     # the notes' network
  assert (PRESETS["forecast"]["loss"], PRESETS["forecast"]["anchor"]) == ("pinball", True)
  assert (PRESETS["notes"]["loss"], PRESETS["notes"]["anchor"]) == ("bce", False)
  with pytest.raises(InputError, match="--loss"):
    TrainConfig(loss="mse").validate()
  train_occupancy = load_script("train_occupancy.py")
  default = train_occupancy.parse([])[3]
  assert (default.loss, default.anchor) == ("pinball", True)
  notes = train_occupancy.parse(["--preset", "notes"])[3]
  assert (notes.loss, notes.anchor) == ("bce", False)
  assert train_occupancy.parse(["--loss", "pinball", "--preset", "notes"])[3].loss == "pinball"
  flags = train_occupancy.parse(["--loss", "bce", "--no-anchor"])[3]
  assert (flags.loss, flags.anchor, flags.seeds) == ("bce", False, 5)
  # a run directory from before the setting: config.json without it still loads, as "bce"
  d = TrainConfig().to_dict()
  del d["loss"]
  assert TrainConfig.from_dict(d) == TrainConfig()


def test_fit_checks_the_quantile_levels():
  rng = np.random.default_rng(0)
  xs, ys = rng.uniform(size=(8, 3, 1)).astype(np.float32), rng.uniform(size=(8, 3))
  cfg = TrainConfig(hidden_size=4, epochs=1, batch_size=4, loss="pinball")
  with pytest.raises(InputError, match="--loss pinball: needs a quantile level for each of the 3"):
    train.fit(cfg, (xs, ys), (xs, ys), progress=False)
  with pytest.raises(InputError, match="--loss pinball: taus: expected one quantile level per "
                     r"output \(3\), got 2"):
    train.fit(cfg, (xs, ys), (xs, ys), progress=False, taus=(0.1, 0.9))
  with pytest.raises(InputError, match="--loss bce: takes no quantile levels"):
    train.fit(dataclasses.replace(cfg, loss="bce"), (xs, ys), (xs, ys), progress=False,
              taus=(0.1, 0.5, 0.9))
  fitted = train.fit(cfg, (xs, ys), (xs, ys), progress=False, taus=(0.1, 0.5, 0.9))
  expected = float(model.loss(fitted.params, xs, ys.astype(np.float32), taus=(0.1, 0.5, 0.9)))
  assert fitted.best_val_loss == pytest.approx(expected, rel=1e-5)    # the pinball val loss


def test_pinball_refusals_leave_nothing(tmp_path):
  with pytest.raises(InputError, match="--loss pinball: needs --task horizons"):
    occupancy.run(occupancy.DataSource(), WindowSpec(task="levels"),
                  TrainConfig(hidden_size=4, epochs=1, loss="pinball"), tmp_path / "lv",
                  progress=False, log=lambda *a: None)
  assert not (tmp_path / "lv").exists()


def test_resume_keeps_the_interval_of_quantile_outputs(pinball_run):
  out, _ = pinball_run
  before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
  cfg = dataclasses.replace(occupancy.read_config(out)["train"], epochs=3)
  with pytest.raises(InputError, match="--interval 0.9, but the run's quantile outputs were "
                     "trained for --interval 0.8"):
    occupancy.run(occupancy.DataSource(), WindowSpec(), cfg, out, resume=True, interval=0.9,
                  progress=False, log=lambda *a: None)
  assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_a_run_from_before_the_loss_setting_resumes(tmp_path):
  """config.json and the checkpoint of an older run hold no ``loss``: both read as "bce"."""
  out = tmp_path / "old"
  cfg = TrainConfig(hidden_size=4, epochs=1, patience=0, batch_size=512)
  occupancy.run(occupancy.DataSource(), WindowSpec(), cfg, out, progress=False,
                make_plots=False, log=lambda *a: None)
  config = json.loads((out / "config.json").read_text())
  del config["train"]["loss"]
  (out / "config.json").write_text(json.dumps(config))
  state = checkpoint.load(out / checkpoint.FILENAME)
  saved = json.loads(state["config"])
  del saved["loss"]
  state["config"] = json.dumps(saved)
  checkpoint.save(out / checkpoint.FILENAME, state)
  assert occupancy.read_config(out)["train"].loss == "bce"
  result = occupancy.run(occupancy.DataSource(), WindowSpec(), dataclasses.replace(cfg, epochs=2),
                         out, resume=True, progress=False, make_plots=False, log=lambda *a: None)
  assert result["status"] == "done" and result["fit"].best_epoch in (1, 2)
  assert len(result["fit"].history) == 2


def test_hand_and_autodiff_train_the_same_quantile_model():
  """The pinball loss's levels reach both gradient methods of the training loop: one epoch with
  --grad hand equals one with --grad autodiff (float32, to rounding)."""
  rng = np.random.default_rng(1)
  xs = rng.uniform(size=(64, 6, 1)).astype(np.float32)
  ys = np.repeat(rng.uniform(size=(64, 2)), 3, axis=1).astype(np.float32)
  taus = conformal.quantile_levels(0.8) * 2
  fits = {grad: train.fit(TrainConfig(hidden_size=6, epochs=2, batch_size=16, loss="pinball",
                                      grad=grad, patience=0), (xs, ys), (xs, ys),
                          progress=False, taus=taus)
          for grad in ("autodiff", "hand")}
  hand, auto = fits["hand"], fits["autodiff"]
  assert [r["train_loss"] for r in hand.history] == pytest.approx(
      [r["train_loss"] for r in auto.history], rel=1e-5)
  for a, b in zip(hand.params, auto.params):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
  assert hand.history[-1]["train_loss"] != hand.history[0]["train_loss"]


@pytest.mark.parametrize("grad", ["autodiff", "hand"])
def test_the_training_loss_is_the_pinball_loss(grad):
  """With one step per epoch, epoch 1's train_loss is the loss at the initial parameters: the
  pinball loss of the given levels (not the cross-entropy), for either gradient method."""
  rng = np.random.default_rng(2)
  xs = rng.uniform(size=(32, 5, 1)).astype(np.float32)
  ys = np.repeat(rng.uniform(size=(32, 1)), 3, axis=1).astype(np.float32)
  taus = (0.1, 0.5, 0.9)
  cfg = TrainConfig(hidden_size=4, epochs=1, batch_size=32, loss="pinball", grad=grad)
  fitted = train.fit(cfg, (xs, ys), (xs, ys), progress=False, taus=taus)
  init = jax.tree.map(lambda a: a[0], train.init_models(np.array([0], np.int32), D=1, H=4, K=3)[0])
  pinball = float(model.loss(init, xs, ys, taus=taus))
  assert fitted.history[0]["train_loss"] == pytest.approx(pinball, rel=1e-6)
  assert abs(pinball - float(model.loss(init, xs, ys))) > 0.1

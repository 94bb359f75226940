"""The default forecaster under the float64 verification: train_occupancy.py's preset
"forecast" (calendar features, T=12, H=64, IRNN init, the mean of 5 models trained in one
vmapped program, three quantiles per horizon trained with the pinball loss, the output anchored
at the last reading) on real windows of the synthetic series.

The ensemble is trained as S independent models in one program, so its gradient is that of the
sum of the members' losses with respect to the stacked parameters: the hand BPTT vmapped over
members must equal ``jax.grad`` of that sum (1e-10 per parameter and member) and the NumPy
reference of the notes' equations member by member, every step on its own scale. Training
with ``--grad hand`` must give autodiff's parameters.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_jax import data, train
from rnn_jax.core import bptt, model
from rnn_jax.forecasting import occupancy
from rnn_jax.train import TrainConfig
from rnn_jax.testing import TOLERANCES, errors, hand_steps, step_errors

import bptt_reference as ref_bptt

TOL64 = TOLERANCES["float64"].autodiff   # 1e-10
PRESET = occupancy.PRESETS["forecast"]
TRAIN_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}


def preset_config(**changes) -> TrainConfig:
  return TrainConfig(**{**{k: v for k, v in PRESET.items() if k in TRAIN_FIELDS}, **changes})


@pytest.fixture(scope="module")
def windows():
  spec = data.WindowSpec(features=PRESET["features"], window=PRESET["window"])
  ds = data.make_dataset(data.synthetic_readings(), spec)
  return ds


def default_problem(ds, B=48, seed=0):
  """Stacked parameters of the preset's members (IRNN init, as train.init_models draws them,
  moved off the identity so that U's gradient is not special), B real windows from busy to
  empty, their targets per output (the horizon's, once per quantile) and the quantile levels."""
  cfg = preset_config()
  K, taus, targets = occupancy.quantile_setup(ds.spec, cfg)
  params, _ = train.init_models(np.arange(cfg.seeds, dtype=np.int32), D=ds.spec.input_size,
                                H=cfg.hidden_size, K=K, scheme=cfg.init)
  rng = np.random.default_rng(seed)
  params = jax.tree.map(lambda a: jnp.asarray(
      np.asarray(a, np.float64) + 0.05 * rng.standard_normal(a.shape)), params)
  rows = np.argsort(-ds.train.ys.sum(axis=1))[::97][:B]   # a spread of windows, busy to empty
  return (params, jnp.asarray(ds.train.xs[rows], jnp.float64),
          jnp.asarray(targets(ds.train.ys[rows]), jnp.float64), taus)


def test_preset_is_the_shape_verified_here(windows):
  assert windows.spec.input_size == 5 and windows.spec.window == 12
  assert (PRESET["hidden_size"], PRESET["init"], PRESET["seeds"]) == (64, "irnn", 5)
  assert (PRESET["loss"], PRESET["anchor"]) == ("pinball", True)


def test_ensemble_gradient_hand_equals_autodiff_of_the_summed_loss(x64, windows):
  params, xs, ys, taus = default_problem(windows)
  assert params.U.shape == (5, 64, 64) and params.U.dtype == jnp.float64
  assert params.W.shape == (5, 9, 64) and ys.shape == (48, 9)
  kw = dict(anchor=True, taus=taus)

  @jax.jit
  def both(params):
    hand = jax.vmap(lambda p: bptt.loss_and_grads(p, xs, ys, **kw))(params)
    total = lambda p: jnp.sum(jax.vmap(lambda q: model.loss(q, xs, ys, **kw))(p))
    return hand, jax.value_and_grad(total)(params)

  (losses, hand), (total, ref) = both(params)
  assert errors(jnp.sum(losses), total)[1] <= TOL64
  for i in range(5):
    member = jax.tree.map(lambda a: np.asarray(a[i]), params)
    numpy = ref_bptt.backward(member, np.asarray(xs), np.asarray(ys), None, **kw)
    assert errors(losses[i], numpy.loss)[1] <= TOL64
    for field in model.RNNParams._fields:
      h, r = getattr(hand, field)[i], getattr(ref, field)[i]
      assert errors(h, r)[1] <= TOL64, (i, field, errors(h, r))
      assert errors(h, getattr(numpy.grads, field))[1] <= TOL64, (i, field)
  # the members differ, so a hand code that mixed them up would show
  assert errors(hand.U[0], hand.U[1])[1] > 1e-3


def test_every_step_of_every_member_matches_numpy(x64, windows):
  params, xs, ys, taus = default_problem(windows, seed=1)
  steps = jax.jit(jax.vmap(lambda p: hand_steps(p, xs, ys, anchor=True, taus=taus), in_axes=0))
  result, delta = steps(params)
  for i in range(5):
    member = jax.tree.map(lambda a: np.asarray(a[i]), params)
    numpy = ref_bptt.backward(member, np.asarray(xs), np.asarray(ys), None, anchor=True,
                              taus=taus)
    assert np.abs(numpy.delta[:, 0]).max() > 0         # the first step is reached
    worst = step_errors(delta[i], numpy.delta).max()
    assert worst <= TOL64, (i, worst)
    assert step_errors(result.dxs[i], numpy.dxs).max() <= TOL64, i


def test_training_the_default_with_hand_bptt_equals_autodiff(windows):
  """fit_many with --grad hand and with --grad autodiff: the same 5 models after 2 epochs (float32:
  the two gradients round differently, by ~1e-7 relative per step)."""
  _, taus, targets = occupancy.quantile_setup(windows.spec, preset_config())
  train_xy = (windows.train.xs[:1024], targets(windows.train.ys[:1024]))
  val_xy = (windows.val.xs[:256], targets(windows.val.ys[:256]))
  fits = {g: train.fit_many(preset_config(grad=g, epochs=2, patience=0), train_xy, val_xy,
                            progress=False, taus=taus) for g in ("autodiff", "hand")}
  for field in model.RNNParams._fields:
    a, h = (np.asarray(getattr(fits[g].params, field)) for g in ("autodiff", "hand"))
    assert a.shape[0] == 5
    np.testing.assert_allclose(h, a, rtol=2e-4, atol=2e-5, err_msg=field)
  for ha, hh in zip(fits["autodiff"].histories, fits["hand"].histories):
    np.testing.assert_allclose([r["val_loss"] for r in hh], [r["val_loss"] for r in ha], rtol=1e-5)

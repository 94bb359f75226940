"""The anchor (a skip in logit space from the last reading, rnn_jax.core.model.anchor_logit) and its
hand gradient (rnn_jax.bptt with ``anchor=True``) against autodiff, in float64.

Relative error per parameter: ``max |hand - ref| / max |ref|``, or the absolute error where the
reference is all zero (a zero head sends no gradient into the recurrence).
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnn_jax
from rnn_jax.core import bptt, model
from rnn_jax.core.model import ANCHOR_EPS, RNNParams

import bptt_reference as ref_bptt

TOL = 1e-10
EPS = ANCHOR_EPS

# Last readings that exercise every branch of the clip: inside, at both bounds, beyond them
# (val/test readings can exceed capacity a little), and just inside the bounds.
EDGE_READINGS = [0.0, EPS, 1 - EPS, 1.0, 1.05, -0.02, EPS * 1.5, 1 - EPS * 1.5, 0.5]


def draw(T, H, D, K, B, scheme="normal", zero_head=False, seed=0):
  """``(params, xs, ys)`` in float64: weights N(0, 1/fan_in), xs ~ N(0, 1) except feature 0,
  a fraction in [0, 1] with the last step's readings cycling through ``EDGE_READINGS`` and
  uniform draws."""
  rng = np.random.default_rng(seed)
  normal = lambda *shape: rng.standard_normal(shape)
  U = np.eye(H) if scheme == "irnn" else normal(H, H) / np.sqrt(H)
  W = np.zeros((K, H)) if zero_head else normal(K, H) / np.sqrt(H)
  params = RNNParams(U=U, V=normal(H, D) / np.sqrt(D), b=np.zeros(H), W=W,
                     c=np.zeros(K) if zero_head else 0.1 * normal(K))
  xs = normal(B, T, D)
  xs[:, :, 0] = rng.uniform(size=(B, T))
  last = rng.uniform(size=B)
  offset = seed % len(EDGE_READINGS)
  for b in range(B):
    if (b + offset) % 2 == 0:
      last[b] = EDGE_READINGS[(b // 2 + offset) % len(EDGE_READINGS)]
  xs[:, -1, 0] = last
  ys = rng.uniform(size=(B, K))
  return jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), (params, xs, ys))


def rel_error(hand, ref):
  hand, ref = np.asarray(hand), np.asarray(ref)
  err = float(np.max(np.abs(hand - ref))) if hand.size else 0.0
  scale = float(np.max(np.abs(ref))) if ref.size else 0.0
  return err / scale if scale > 0 else err


@jax.jit
def _hand(params, xs, ys):
  return bptt.backward(params, xs, ys, anchor=True)


@jax.jit
def _autodiff(params, xs, ys):
  value, (grads, dxs) = jax.value_and_grad(partial(model.loss, anchor=True), argnums=(0, 1))(
      params, xs, ys)
  return value, grads, dxs


def assert_hand_equals_autodiff(params, xs, ys, what):
  hand = _hand(params, xs, ys)
  value, grads, dxs = _autodiff(params, xs, ys)
  expected = ref_bptt.loss(params, xs, ys, anchor=True)   # NumPy, not model.loss's own code
  assert max(abs(float(hand.loss) - expected), abs(float(value) - expected)) <= TOL * expected, what
  for field in RNNParams._fields:
    rel = rel_error(getattr(hand.grads, field), getattr(grads, field))
    assert rel <= TOL, f"{what} grad {field}: relative error {rel:.2e} > {TOL:g}"
  rel = rel_error(hand.dxs, dxs)
  assert rel <= TOL, f"{what} dxs: relative error {rel:.2e} > {TOL:g}"


#          T   H  D  K  B  scheme    zero_head
GRID = [(1,   1, 1, 1, 1, "normal", False),
        (1,   7, 3, 3, 5, "irnn",   False),
        (5,   1, 3, 3, 5, "normal", False),
        (5,  50, 1, 1, 5, "irnn",   False),
        (5,   7, 1, 3, 1, "normal", True),
        (24,  7, 3, 3, 5, "normal", False),
        (24, 50, 1, 3, 5, "normal", False),   # the occupancy shape, smaller H
        (24, 50, 3, 3, 5, "irnn",   True),
        (24,  1, 1, 1, 5, "irnn",   False)]


@pytest.mark.parametrize("case", GRID, ids=lambda c: "T{}-H{}-D{}-K{}-B{}-{}-zh{}".format(*c))
@pytest.mark.parametrize("seed", [0, 1])
def test_anchored_hand_bptt_matches_autodiff(x64, case, seed):
  T, H, D, K, B, scheme, zero_head = case
  params, xs, ys = draw(T, H, D, K, B, scheme, zero_head, seed)
  assert_hand_equals_autodiff(params, xs, ys, f"{case} seed {seed}")


def test_grid_covers_every_value():
  values = [set(axis) for axis in zip(*GRID)]
  for axis, wanted in zip(values, [{1, 5, 24}, {1, 7, 50}, {1, 3}, {1, 3}, {1, 5},
                                   {"normal", "irnn"}, {False, True}]):
    assert wanted <= axis


def test_every_edge_reading_is_drawn(x64):
  _, xs, _ = draw(1, 1, 1, 1, 2 * len(EDGE_READINGS))
  assert set(EDGE_READINGS) <= set(np.asarray(xs[:, -1, 0]).tolist())


def test_edge_readings_one_per_example(x64):
  """Every reading of EDGE_READINGS alone (B = 1), so no other example hides a wrong slope."""
  params, xs, ys = draw(5, 7, 3, 3, 1)
  for reading in EDGE_READINGS:
    xs_r = xs.at[:, -1, 0].set(reading)
    assert_hand_equals_autodiff(params, xs_r, ys, f"last reading {reading}")


def test_anchor_adds_to_dxs_only_at_the_last_step_on_feature_0(x64):
  params, xs, ys = draw(5, 7, 3, 3, 5)
  plain = bptt.backward(params, xs, ys)
  anchored = bptt.backward(params, xs, ys, anchor=True)
  # The recurrence's part is the plain formula with Q from the anchored logits, so compare the
  # anchored dxs with autodiff of the loss whose anchor is held fixed (stop_gradient).
  held = lambda xs_: model.bce_from_logits(
      model.forward(params, xs_) + jax.lax.stop_gradient(model.anchor_logit(xs_)), ys)
  recurrent = jax.grad(held)(xs)
  extra = np.asarray(anchored.dxs - recurrent)
  rounding = 1e-12 * float(np.max(np.abs(recurrent)))      # two summation orders
  assert np.max(np.abs(extra[:, :-1, :])) <= rounding
  assert np.max(np.abs(extra[:, -1, 1:])) <= rounding
  x = np.asarray(xs[:, -1, 0])
  inside = (x > EPS) & (x < 1 - EPS)
  assert 0 < inside.sum() < len(x)
  assert np.max(np.abs(extra[~inside, -1, 0])) <= rounding
  Q = (jax.nn.sigmoid(model.forward(params, xs, anchor=True)) - ys) / xs.shape[0]
  safe = np.where(inside, x, 0.5)
  expected = np.where(inside, np.asarray(Q).sum(axis=1) / (safe * (1 - safe)), 0.0)
  np.testing.assert_allclose(extra[:, -1, 0], expected, rtol=1e-10, atol=rounding)
  assert plain.dxs.shape == anchored.dxs.shape


def test_custom_vjp_loss_gives_the_hand_gradient(x64):
  params, xs, ys = draw(24, 50, 3, 3, 5, seed=3)
  hand = bptt.backward(params, xs, ys, anchor=True)
  value, (grads, dxs) = jax.jit(jax.value_and_grad(partial(bptt.loss, anchor=True),
                                                   argnums=(0, 1)))(params, xs, ys)
  assert float(value) == pytest.approx(float(hand.loss), rel=1e-14)
  for field in RNNParams._fields:
    assert rel_error(getattr(grads, field), getattr(hand.grads, field)) <= 1e-14, field
  assert rel_error(dxs, hand.dxs) <= 1e-14
  _, ref_grads, ref_dxs = _autodiff(params, xs, ys)
  for field in RNNParams._fields:
    assert rel_error(getattr(grads, field), getattr(ref_grads, field)) <= TOL, field
  assert rel_error(dxs, ref_dxs) <= TOL


def test_loss_and_grad_methods_agree_with_anchor(x64):
  params, xs, ys = draw(24, 7, 3, 3, 5, seed=4)
  auto = jax.jit(rnn_jax.value_and_grad("autodiff", anchor=True))(params, xs, ys)
  hand = jax.jit(rnn_jax.value_and_grad("hand", anchor=True))(params, xs, ys)
  assert float(auto[0]) == pytest.approx(float(hand[0]), rel=1e-14)
  for field in RNNParams._fields:
    assert rel_error(getattr(hand[1], field), getattr(auto[1], field)) <= TOL, field
  for method in rnn_jax.core.gradients.METHODS:
    f = rnn_jax.loss_fn(method, anchor=True)
    assert float(f(params, xs, ys)) == pytest.approx(float(auto[0]), rel=1e-14)
  plain = rnn_jax.loss_fn("autodiff")(params, xs, ys)
  assert float(plain) != pytest.approx(float(auto[0]), rel=1e-6)


def test_remat_and_unroll_keep_the_anchor(x64):
  params, xs, ys = draw(24, 7, 1, 3, 5, seed=5)
  ref = model.loss(params, xs, ys, anchor=True)
  for kwargs in ({"remat": True}, {"unroll": 8}):
    assert float(model.loss(params, xs, ys, anchor=True, **kwargs)) == pytest.approx(
        float(ref), rel=1e-14)


@pytest.mark.parametrize("dtype,tol", [(jnp.float64, 1e-14), (jnp.float32, 1e-6)])
def test_untrained_zero_head_predicts_persistence(x64, dtype, tol):
  B, T, D = 64, 12, 3
  rng = np.random.default_rng(0)
  xs = rng.standard_normal((B, T, D))
  xs[:, :, 0] = rng.uniform(size=(B, T))
  xs[:len(EDGE_READINGS), -1, 0] = EDGE_READINGS
  xs = jnp.asarray(xs, dtype)
  for scheme in model.INIT_SCHEMES:
    params = rnn_jax.init_params(jax.random.key(1), D, 20, 3, scheme=scheme, zero_head=True,
                                 dtype=dtype)
    z = np.asarray(rnn_jax.predict(params, xs, anchor=True), np.float64)
    last = np.clip(np.asarray(xs[:, -1, 0], np.float64), EPS, 1 - EPS)
    assert z.shape == (B, 3)
    np.testing.assert_allclose(z, np.repeat(last[:, None], 3, axis=1), rtol=tol, atol=0)
    # Without the anchor the same untrained network predicts 1/2 everywhere.
    np.testing.assert_array_equal(np.asarray(rnn_jax.predict(params, xs)), 0.5)


def test_zero_head_changes_only_the_head():
  for scheme in model.INIT_SCHEMES:
    default = rnn_jax.init_params(jax.random.key(2), 3, 16, 3, scheme=scheme)
    zero = rnn_jax.init_params(jax.random.key(2), 3, 16, 3, scheme=scheme, zero_head=True)
    for field in ("U", "V", "b", "c"):
      np.testing.assert_array_equal(getattr(default, field), getattr(zero, field))
    assert np.all(np.asarray(zero.W) == 0) and np.any(np.asarray(default.W) != 0)
    assert zero.W.dtype == default.W.dtype


def test_anchor_false_is_the_notes_network(x64):
  params, xs, ys = draw(24, 7, 3, 3, 5, seed=6)
  np.testing.assert_array_equal(model.forward(params, xs, anchor=False), model.forward(params, xs))
  np.testing.assert_array_equal(model.forward(params, xs),
                                model.head(params, model.hidden_states(params, xs)[:, -1]))
  np.testing.assert_array_equal(model.predict(params, xs, anchor=False), model.predict(params, xs))
  np.testing.assert_array_equal(model.loss(params, xs, ys, anchor=False), model.loss(params, xs, ys))
  plain, default = bptt.backward(params, xs, ys, anchor=False), bptt.backward(params, xs, ys)
  for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(default)):
    np.testing.assert_array_equal(a, b)
  assert rnn_jax.loss_fn("hand") is bptt.loss
  np.testing.assert_allclose(model.forward(params, xs, anchor=True) - model.forward(params, xs),
                             np.broadcast_to(model.anchor_logit(xs), (5, 3)), rtol=1e-12)


def test_anchor_logit_values():
  xs = jnp.zeros((5, 2, 1)).at[:, -1, 0].set(jnp.array([0.0, 0.5, 1.0, 2.0, 0.25]))
  a = np.asarray(model.anchor_logit(xs))[:, 0]
  lo = np.log(EPS / (1 - EPS))
  np.testing.assert_allclose(a, [lo, 0.0, -lo, -lo, np.log(1 / 3)], rtol=1e-5, atol=1e-6)
  assert np.all(np.isfinite(a))


def test_anchored_gradients_are_finite_for_any_reading(x64):
  params, xs, ys = draw(5, 7, 1, 3, 5)
  for reading in (-1e3, -1.0, 0.0, 1.0, 1e3, 1e-300, 1 - 1e-16):
    r = bptt.backward(params, xs.at[:, -1, 0].set(reading), ys, anchor=True)
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(r))

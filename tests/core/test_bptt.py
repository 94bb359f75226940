"""The hand BPTT (rnn_jax.bptt) against autodiff, the hidden-state VJP, finite differences with a
kink guard, hard cases, and the gradient-check script (experiments/gradcheck.py).

Relative error throughout: ``max |hand - ref| / max |ref|`` per parameter, or the absolute error
when the reference is all zero (rnn_jax.testing.errors). Tolerances: rnn_jax.testing.
Loss values are compared with the NumPy float64 reference (tests/core/bptt_reference.py), not
with rnn_jax.loss, which computes the hand BPTT's loss through the same code. Each step of the
BPTT on its own scale: test_bptt_per_step.py; forward mode: test_forward_mode.py; the hand BPTT
with differentiation patched out: test_no_autodiff.py.
"""
from __future__ import annotations

import ast
import contextlib
import inspect
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from jax._src import public_test_util
from jax.test_util import check_grads

import rnn_jax
from rnn_jax.common import cli
from rnn_jax.core import bptt, model
from rnn_jax import testing
from rnn_jax.testing import TOLERANCES, errors, step_errors, tree_errors

import bptt_reference as ref_bptt
from conftest import load_script

gradcheck = load_script("gradcheck.py")   # finite differences, the kink guard, check_rnn

TOL64 = TOLERANCES["float64"].autodiff   # 1e-10
TOL32 = TOLERANCES["float32", "highest"].autodiff   # 1e-4, IEEE float32, against float64


def draw(T, H, D, K, B, scheme="normal", targets="soft", seed=0, dtype=np.float64):
  """``(params, xs, ys)`` drawn with NumPy as rnn_jax.init_params would draw them."""
  return testing.rnn_problem(seed, T=T, H=H, D=D, K=K, B=B, scheme=scheme, targets=targets,
                               dtype=dtype)


@jax.jit
def hand_and_autodiff(params, xs, ys):
  """One compilation for both: ``((loss, grads) by the hand BPTT, (loss, grads) by jax.grad)``."""
  return bptt.loss_and_grads(params, xs, ys), jax.value_and_grad(model.loss)(params, xs, ys)


def assert_losses(losses, params, xs, ys, tol=TOL64, h0=None):
  """Each loss against the NumPy float64 reference (the hand BPTT's loss and rnn_jax.loss are
  the same expression through the same code: compared with each other, they agree exactly)."""
  expected = ref_bptt.loss(params, xs, ys, h0)
  for loss in losses:
    assert np.isfinite(float(loss)) and errors(loss, expected)[1] <= tol, (float(loss), expected)


def assert_close(hand, ref, tol, what=""):
  for field, (abs_err, rel) in tree_errors(hand, ref).items():
    assert np.isfinite(abs_err) and rel <= tol, (
        f"{what} grad {field}: relative error {rel:.2e} (abs {abs_err:.2e}) > {tol:g}")


# --------------------------------------------------------------------------- float64 grid

# A covering design rather than the full product (4*3*2*2*3*2*2 = 576 cases): every value of
# every axis appears, both schemes and both target kinds meet every T and every H, and the
# corner T=100, H=200, B=64 is taken with both schemes. (The float32 test below and
# experiments/gradcheck.py add the float32 side; the hypothesis test adds random shapes.)
#        T    H  D  K   B  scheme    targets
GRID = [(1,   1, 1, 1,  1, "normal", "soft"),
        (1,   7, 3, 3,  5, "irnn",   "onehot"),
        (1, 200, 1, 3, 64, "normal", "onehot"),
        (2,   1, 3, 3, 64, "irnn",   "soft"),
        (2, 200, 3, 1,  5, "normal", "onehot"),
        (24,  1, 1, 3,  5, "normal", "onehot"),
        (24,  7, 3, 1, 64, "normal", "soft"),
        (24,  7, 1, 3,  5, "irnn",   "onehot"),
        (24, 200, 1, 3, 1, "irnn",   "soft"),
        (24, 200, 1, 3, 64, "normal", "soft"),   # the notes' network
        (100, 1, 3, 1, 64, "irnn",   "soft"),
        (100, 7, 1, 3,  1, "normal", "onehot"),
        (100, 7, 3, 3,  5, "irnn",   "soft"),
        (100, 200, 3, 3, 64, "normal", "onehot"),  # corner
        (100, 200, 1, 1, 64, "irnn",  "soft")]     # corner


def _grid_id(case):
  T, H, D, K, B, scheme, targets = case
  return f"T{T}-H{H}-D{D}-K{K}-B{B}-{scheme}-{targets}"


def test_grid_covers_every_value():
  axes = list(zip(*GRID))
  wanted = [{1, 2, 24, 100}, {1, 7, 200}, {1, 3}, {1, 3}, {1, 5, 64}, {"normal", "irnn"},
            {"soft", "onehot"}]
  for axis, values in zip(axes, wanted):
    assert set(axis) == values
  for size in (0, 1):          # T, H
    for kind in (5, 6):        # scheme, targets
      assert {(c[size], c[kind]) for c in GRID} == {
          (v, k) for v in wanted[size] for k in wanted[kind]}
  assert {(100, 200, 64, "normal"), (100, 200, 64, "irnn")} <= {
      (T, H, B, s) for T, H, _, _, B, s, _ in GRID}


@pytest.mark.parametrize("case", GRID, ids=_grid_id)
def test_hand_bptt_matches_autodiff_float64(x64, case):
  T, H, D, K, B, scheme, targets = case
  params, xs, ys = draw(T, H, D, K, B, scheme, targets, seed=sum(case[:5]))
  (loss, hand), (loss_ref, ref) = hand_and_autodiff(params, xs, ys)
  assert all(g.dtype == jnp.float64 for g in hand)
  assert_losses((loss, loss_ref), params, xs, ys)
  assert_close(hand, ref, TOL64, _grid_id(case))


# float32 against a float64 reference, TOLERANCES["float32"] (1e-4; the derivation is in
# rnn_jax/testing.py: rounding of ~T*B*H accumulated terms at u = 6e-8). autodiff in float32
# is held to the same bound, so the tolerance measures float32, not the hand code.
@pytest.mark.parametrize("case", [(100, 200, 3, 3, 64, "irnn", "onehot")], ids=_grid_id)
def test_hand_bptt_float32_against_float64_reference(x64, case):
  T, H, D, K, B, scheme, targets = case
  p32, xs32, ys32 = draw(T, H, D, K, B, scheme, targets, seed=3, dtype=np.float32)
  p64, xs64, ys64 = testing.to_dtype((p32, xs32, ys32), jnp.float64)   # the same point
  # Both dtypes must sit on the same piece of the piecewise-linear recurrence.
  assert bool(gradcheck.same_relu_pattern(p32, xs32, p64, xs64))
  with testing.full_float32_matmuls():   # IEEE float32 on every backend (not TF32 on GPUs)
    (_, hand32), (_, auto32) = hand_and_autodiff(p32, xs32, ys32)
  (_, _), (_, ref64) = hand_and_autodiff(p64, xs64, ys64)
  assert all(g.dtype == jnp.float32 for g in hand32)
  assert_close(hand32, ref64, TOL32, "hand float32")
  assert_close(auto32, ref64, TOL32, "autodiff float32")


# The property test draws the values freely (seed, a gain on U from vanishing to exploding, the
# bias, an initial state, scheme, targets) and the shape from this list, which holds both ends
# of every range (T 1..12, H 1..9, D 1..3, K 1..4, B 1..6). Each shape is compiled before the
# examples run, so 50 examples cost ~0.5 s and the deadline times the check, not XLA.
#                  T  H  D  K  B
PROPERTY_SHAPES = [(1, 1, 1, 1, 1), (12, 9, 3, 4, 6), (1, 9, 3, 4, 1), (12, 1, 1, 1, 6),
                   (5, 4, 2, 3, 3)]


@jax.jit
def _property_outputs(params, xs, ys, h0):
  """``(hand result, hand delta_t)`` (testing.hand_steps) and ``(loss, grads)`` by jax.grad."""
  return (testing.hand_steps(params, xs, ys, h0),
          jax.value_and_grad(model.loss)(params, xs, ys, h0))


# 50 examples, derandomized so CI sees the same ones; each shape is compiled before the
# examples run, so the deadline times only the check (~10 ms an example)
@settings(max_examples=50, deadline=1000, derandomize=True)
@given(shape=st.sampled_from(PROPERTY_SHAPES), scheme=st.sampled_from(["normal", "irnn"]),
       targets=st.sampled_from(["soft", "onehot"]), seed=st.integers(0, 2**31 - 1),
       gain=st.floats(0.25, 4.0), bias=st.floats(-1.0, 1.0), with_h0=st.booleans())
def _property_example(shape, scheme, targets, seed, gain, bias, with_h0):
  T, H, D, K, B = shape
  params, xs, ys = draw(T, H, D, K, B, scheme, targets, seed)
  rng = np.random.default_rng(seed)
  params = params._replace(U=jnp.asarray(gain * np.asarray(params.U)),
                           b=jnp.asarray(bias * rng.standard_normal(H)))
  h0 = jnp.asarray(np.abs(rng.standard_normal((B, H))) if with_h0 else np.zeros((B, H)))
  steps = ref_bptt.backward(params, xs, ys, h0)
  # Not every prediction confidently right (see test_confidently_right_predictions_everywhere)
  assume(np.max(np.abs(ref_bptt.sigmoid(steps.logits) - np.asarray(ys))) > 1e-3)
  (result, delta), (loss_ref, ref) = _property_outputs(params, xs, ys, h0)
  assert all(g.dtype == jnp.float64 for g in result.grads)
  assert_losses((result.loss, loss_ref), params, xs, ys, h0=h0)
  assert_close(result.grads, ref, TOL64)
  assert np.max(step_errors(delta, steps.delta)) <= TOL64            # every step on its own
  norms = np.sqrt(np.sum(steps.g ** 2, axis=(0, 2)))
  assert np.max(step_errors(result.dh_norms, norms, axis=0)) <= TOL64


def test_property_hand_bptt_matches_autodiff(x64):
  for T, H, D, K, B in PROPERTY_SHAPES:      # compile every shape first
    _property_outputs(*draw(T, H, D, K, B), jnp.asarray(np.zeros((B, H))))
  _property_example()


# --------------------------------------------------------------------------- the other outputs


@jax.jit
def _autodiff_hidden_vjp(params, xs, h0, cotangent):
  return jax.vjp(rnn_jax.hidden_states, params, xs, h0)[1](cotangent)


@pytest.mark.parametrize("T,B,H,with_h0", [(1, 2, 3, False), (7, 4, 5, True), (30, 3, 16, True)])
def test_hidden_states_vjp_matches_jax_vjp(x64, T, B, H, with_h0):
  D = 2
  params, xs, _ = draw(T, H, D, 3, B, seed=T)
  params = params._replace(b=jnp.linspace(-0.2, 0.2, H))
  rng = np.random.default_rng(T + 1)
  h0 = jnp.asarray(np.abs(rng.standard_normal((B, H)))) if with_h0 else None
  cotangent = jnp.asarray(rng.standard_normal((B, T, H)))

  h0_ref = h0 if with_h0 else jnp.zeros((B, H))
  ref_params, ref_dxs, ref_dh0 = _autodiff_hidden_vjp(params, xs, h0_ref, cotangent)
  grads, dxs, dh0 = jax.jit(bptt.hidden_states_vjp)(params, xs, cotangent, h0)
  assert_close(grads, ref_params, TOL64, "hidden_states_vjp")
  assert np.max(step_errors(dxs, ref_dxs)) <= TOL64
  assert errors(dh0, ref_dh0)[1] <= TOL64
  assert dxs.shape == (B, T, D) and dh0.shape == (B, H)
  np.testing.assert_array_equal(grads.W, 0.0)   # no head in the hidden-state sequence
  np.testing.assert_array_equal(grads.c, 0.0)


def test_backward_input_gradients_match_autodiff(x64):
  params, xs, ys = draw(9, 6, 2, 3, 4, seed=5)
  h0 = jnp.asarray(np.abs(np.random.default_rng(0).standard_normal((4, 6))))
  result = jax.jit(bptt.backward)(params, xs, ys, h0)
  dxs, dys, dh0 = jax.jit(jax.grad(model.loss, argnums=(1, 2, 3)))(params, xs, ys, h0)
  for name, hand, ref in (("dxs", result.dxs, dxs), ("dys", result.dys, dys),
                          ("dh0", result.dh0, dh0)):
    assert errors(hand, ref)[1] <= TOL64, name


def _perturbed_loss(params, xs, ys, bumps):
  """The loss with ``h_t <- relu(A_t) + bumps_t``: its gradient in ``bumps`` at 0 is dL/dh_t."""
  def step(h, inputs):
    x, bump = inputs
    h = jax.nn.relu(h @ params.U.T + x @ params.V.T + params.b) + bump
    return h, None
  h0 = jnp.zeros((xs.shape[0], params.U.shape[0]), xs.dtype)
  hT, _ = jax.lax.scan(step, h0, (jnp.swapaxes(xs, 0, 1), bumps))
  return model.bce_from_logits(model.head(params, hT), ys)


@pytest.mark.parametrize("scheme", ["normal", "irnn"])
def test_dh_norms_match_autodiff(x64, scheme):
  T, B, H = 20, 4, 10
  params, xs, ys = draw(T, H, 2, 3, B, scheme, seed=11)
  dh = jax.jit(jax.grad(_perturbed_loss, argnums=3))(params, xs, ys, jnp.zeros((T, B, H)))
  ref = jnp.sqrt(jnp.sum(dh * dh, axis=(1, 2)))
  norms = jax.jit(bptt.grad_norms)(params, xs, ys)
  assert norms.shape == (T,)
  assert float(ref[-1]) > 0
  assert np.max(step_errors(norms, ref, axis=0)) <= TOL64   # every step on its own scale


def test_custom_vjp_and_loss_and_grad_equal_autodiff_under_vmap(x64):
  """Training vmaps over seeds: a batch of parameter pytrees, the same data."""
  seeds = [draw(*HARD, scheme, seed=s)[0] for s, scheme in
           enumerate(["normal", "irnn", "normal"])]
  stacked = jax.tree.map(lambda *a: jnp.stack(a), *seeds)
  _, xs, ys = draw(*HARD, seed=99)

  @jax.jit
  def everything(stacked, xs, ys):
    over_seeds = lambda f: jax.vmap(f, in_axes=(0, None, None))(stacked, xs, ys)
    return {"autodiff": over_seeds(rnn_jax.value_and_grad("autodiff")),
            "value_and_grad(bptt)": over_seeds(rnn_jax.value_and_grad("hand")),
            "autodiff remat": over_seeds(rnn_jax.value_and_grad("autodiff", remat=True)),
            "grad of bptt.loss": over_seeds(jax.value_and_grad(bptt.loss))}

  results = everything(stacked, xs, ys)
  ref_loss, ref_grads = results.pop("autodiff")
  numpy_loss = np.array([ref_bptt.loss(p, xs, ys) for p in seeds])
  assert errors(ref_loss, numpy_loss)[1] <= TOL64
  for what, (loss, grads) in results.items():
    assert errors(loss, numpy_loss)[1] <= TOL64, what
    assert_close(grads, ref_grads, TOL64, what)
  # and each vmapped lane is the unbatched computation (HARD is a grid shape: compiled once)
  for i, p in enumerate(seeds):
    loss, grads = hand_and_autodiff(p, xs, ys)[0]
    assert errors(loss, numpy_loss[i])[1] <= TOL64
    assert_close(grads, jax.tree.map(lambda g: g[i], ref_grads), TOL64, f"lane {i}")


# --------------------------------------------------------------------------- hard cases


# The hard cases take the shape of a grid case, (T, H, D, K, B) = (24, 7, 1, 3, 5), so the
# compiled hand_and_autodiff is reused.
HARD = (24, 7, 1, 3, 5)


def test_all_units_dead(x64):
  params, xs, ys = draw(*HARD, seed=1)
  params = params._replace(b=jnp.full((7,), -50.0, jnp.float64))   # every A far below 0
  # h_0 = 0, so A_1 = V x_1 + b; if every V x_t + b < 0 then h stays 0 and A_t = V x_t + b.
  assert np.all(np.asarray(xs) @ np.asarray(params.V).T + np.asarray(params.b) < 0)
  (loss, hand), (loss_ref, ref) = hand_and_autodiff(params, xs, ys)
  assert_losses((loss, loss_ref), params, xs, ys)
  assert_close(hand, ref, TOL64, "dead")
  for name in ("U", "V", "b", "W"):   # nothing flows through a dead network but the output bias
    np.testing.assert_array_equal(getattr(hand, name), 0.0)
  assert float(jnp.max(jnp.abs(hand.c))) > 0


@pytest.mark.parametrize("scheme", ["normal", "irnn"])
def test_inputs_of_magnitude_1e3(x64, scheme):
  params, xs, ys = draw(*HARD, scheme, seed=2)
  xs = 1e3 * xs
  (loss, hand), (loss_ref, ref) = hand_and_autodiff(params, xs, ys)
  assert_losses((loss, loss_ref), params, xs, ys)
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in hand)
  assert_close(hand, ref, TOL64, "x ~ 1e3")


def test_confidently_right_predictions_everywhere(x64):
  """Every logit large and right (B = K = 1, the target 1): the whole gradient is the tiny Q,
  which bptt must form without cancellation ((1 - y) sigmoid(l) - y sigmoid(-l), not
  sigmoid(l) - y, whose 1 - 2e-9 against 1 loses 8 digits); found by the property test."""
  params, xs, ys = draw(*HARD[:3], 1, 1, seed=5)
  params = params._replace(c=jnp.asarray([20.0]))
  ys = jnp.ones((1, 1))
  assert 1 - float(jax.nn.sigmoid(model.forward(params, xs))[0, 0]) < 1e-8
  (loss, hand), (loss_ref, ref) = hand_and_autodiff(params, xs, ys)
  assert_losses((loss, loss_ref), params, xs, ys)
  assert_close(hand, ref, TOL64, "confident and right")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_logits_of_1000_and_hard_targets(x64, dtype):
  """Logits of about +-1000 against targets of exactly 0 and 1, right and wrong."""
  params, xs, _ = draw(*HARD, seed=4, dtype=dtype)
  params = params._replace(c=jnp.asarray([1000.0, -1000.0, 1000.0], dtype))
  ys = jnp.asarray([[1, 0, 0], [0, 1, 1], [1, 1, 0], [0, 0, 1], [1, 0, 1]], dtype)
  # float32 in IEEE float32 on every backend (float64 is unaffected: keep its compiled code)
  precision = (testing.full_float32_matmuls() if dtype == "float32" else
               contextlib.nullcontext())
  with precision:
    logits = np.asarray(model.forward(params, xs), np.float64)
    (loss, hand), (loss_ref, ref) = hand_and_autodiff(params, xs, ys)
  assert np.all(np.abs(np.abs(logits) - 1000) < 20)
  # softplus(l) - y l: e^-1000 ~ 0 when the saturated prediction is right, |l| when wrong.
  wrong = (logits > 0) != (np.asarray(ys) == 1)
  assert 0 < wrong.sum() < wrong.size
  expected = np.mean(np.sum(wrong * np.abs(logits), axis=1))
  for value in (loss, loss_ref):
    assert np.isfinite(float(value)) and abs(float(value) - expected) <= 1e-6 * expected
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in hand)
  # z saturates exactly, so dL/dc = mean_b (z - y) = +-1/B per wrong example, exactly
  np.testing.assert_allclose(hand.c, (wrong * np.where(logits > 0, 1, -1)).sum(0) / 5.0,
                             rtol=4 * np.finfo(dtype).eps)
  assert float(jnp.max(jnp.abs(hand.U))) > 0   # the error does flow back through W
  assert_close(hand, ref, TOLERANCES[dtype].autodiff, "logits +-1000")


# --------------------------------------------------------------------------- finite differences


FD_EPS = 1e-6
FD_TOL = 1e-7           # float64 central differences at eps = 1e-6: measured ~1e-9
TANGENT_RADIUS = 6.0    # the box guard's own tests: any move with entries of at most 6


_bptt_loss = jax.jit(bptt.loss)     # module level: one compilation per shape across the tests
_model_loss = jax.jit(model.loss)


def _check_grads_on_hand_bptt(params, xs, ys):
  """check_grads in reverse mode on bptt.loss: its VJP is the hand BPTT (custom_vjp)."""
  check_grads(lambda p: _bptt_loss(p, xs, ys), (params,), order=1, modes=("rev",), eps=FD_EPS,
              atol=FD_TOL, rtol=FD_TOL)


def _guard_check_grads(params, xs):
  """kink_guard on exactly the segment check_grads will take: its own tangent
  (gradcheck.check_grads_tangents) as the one direction, with its step FD_EPS."""
  (tangent,) = gradcheck.check_grads_tangents((params,))
  return gradcheck.kink_guard(params, xs, FD_EPS,
                              directions=jax.tree.map(lambda t: jnp.asarray(t)[None], tangent))


@contextlib.contextmanager
def guarded_check_grads(params, xs):
  """While it lasts, every finite difference check_grads takes must be along
  gradcheck.check_grads_tangents' draw, on a segment that kink_guard (end-point ReLU patterns
  included) accepts; checked inside check_grads, on the tangent it actually uses."""
  expected = jax.tree.leaves(gradcheck.check_grads_tangents((params,)))
  original = public_test_util.numerical_jvp
  taken = []

  def numerical_jvp(f, primals, tangents, eps=public_test_util.EPS):
    for got, want in zip(jax.tree.leaves(tangents), expected, strict=True):
      np.testing.assert_array_equal(got, want)
    direction = jax.tree.map(lambda t: jnp.asarray(t)[None], tangents[0])
    guard = gradcheck.kink_guard(params, xs, eps, directions=direction)
    assert guard.ok, f"check_grads' finite difference is not guarded: {guard}"
    taken.append(eps)
    return original(f, primals, tangents, eps)

  with mock.patch.object(public_test_util, "numerical_jvp", numerical_jvp):
    yield
  assert taken, "check_grads took no finite difference through the guard"


@pytest.mark.parametrize("scheme", ["normal", "irnn"])
def test_finite_differences_at_guarded_points(x64, scheme):
  T, H, D, K, B = 5, 4, 2, 3, 3   # the shape of _kink_point below: compiled once
  problem, guard, _ = gradcheck.pick_guarded(
      lambda seed: draw(T, H, D, K, B, scheme, seed=seed),
      lambda pr: _guard_check_grads(pr[0], pr[1]), range(100, 120))
  assert guard.ok and guard.min_abs_A > 0
  params, xs, ys = problem
  with guarded_check_grads(params, xs):
    _check_grads_on_hand_bptt(params, xs, ys)
    # autodiff meets the same witness, in both modes
    check_grads(lambda p: _model_loss(p, xs, ys), (params,), order=1,
                modes=("fwd", "rev"), eps=FD_EPS, atol=FD_TOL, rtol=FD_TOL)


def _kink_point(offset):
  """h_0 = 0, b = 0 and x_1 = offset: every A_1 = offset * (V 1), at the kink for offset 0."""
  params, xs, ys = draw(5, 4, 2, 3, 3, seed=0)
  return params, xs.at[:, 0].set(offset), ys


def test_guard_rejects_points_at_and_near_the_kink(x64):
  for offset in (0.0, 1e-9):
    params, xs, _ = _kink_point(offset)
    guard = gradcheck.kink_guard(params, xs, FD_EPS, radius=TANGENT_RADIUS)
    assert not guard.ok and guard.min_abs_A <= 1e-8 and guard.worst_ratio < 1
  params, xs, _ = _kink_point(1.0)
  assert gradcheck.kink_guard(params, xs, FD_EPS, radius=TANGENT_RADIUS).ok


def test_finite_differences_do_fail_where_the_guard_rejects(x64):
  """Why the guard exists: across the kink the central difference averages two slopes."""
  assert not _guard_check_grads(*_kink_point(1e-9)[:2]).ok
  with pytest.raises(AssertionError, match="cotangent projection"):
    _check_grads_on_hand_bptt(*_kink_point(1e-9))
  assert _guard_check_grads(*_kink_point(1.0)[:2]).ok
  _check_grads_on_hand_bptt(*_kink_point(1.0))   # away from the kink: the same check passes


def test_direction_guard_checks_the_relu_pattern_at_both_ends(x64):
  params, xs, _ = _kink_point(1.0)
  A = gradcheck.preactivations(params, xs)
  t, b, i = np.unravel_index(int(jnp.argmin(jnp.abs(A))), A.shape)
  # Move the bias of the unit closest to its kink by just over its distance: it must cross.
  step = 1.5 * float(jnp.abs(A[t, b, i]))
  direction = jax.tree.map(lambda a: jnp.zeros((1,) + a.shape, a.dtype), params)
  direction = direction._replace(b=direction.b.at[0, i].set(1.0))
  crossing = gradcheck.kink_guard(params, xs, step, directions=direction)
  assert not crossing.ok and not crossing.patterns_agree
  assert gradcheck.kink_guard(params, xs, FD_EPS, directions=direction).ok


def test_guarded_step_shrinks_eps_near_a_kink_but_not_below_min_eps(x64):
  params, xs, ys = _kink_point(2e-6)   # every A_1 ~ 2e-6: too close for eps = 1e-6
  (_, hand), (_, grads) = hand_and_autodiff(params, xs, ys)
  directions, _ = gradcheck.probe_directions(grads, 0)
  assert not gradcheck.kink_guard(params, xs, 1e-6, directions=directions).ok
  guard, step = gradcheck.guarded_step(params, xs, directions, 1e-6, 1e-9)
  assert guard.ok and step < 1e-6
  assert guard.worst_ratio == pytest.approx(2 * gradcheck.GUARD_SAFETY, rel=1e-6)
  guard, step = gradcheck.guarded_step(params, xs, directions, 1e-6, 9e-7)
  assert not guard.ok and step == 9e-7
  # central differences at the shrunk step agree with the hand gradient
  guard, step = gradcheck.guarded_step(params, xs, directions, 1e-6, 1e-9)
  fd = gradcheck.central_differences(model.loss, params, directions, step, xs, ys)
  assert errors(gradcheck.directional(hand, directions), fd)[1] <= TOLERANCES["float64"].fd


def test_pick_guarded_redraws_until_the_guard_holds(x64):
  points = {0: _kink_point(0.0), 1: _kink_point(1e-9), 2: _kink_point(1.0)}
  accept = lambda pr: _guard_check_grads(pr[0], pr[1])
  (params, xs, ys), guard, index = gradcheck.pick_guarded(points.__getitem__, accept, range(3))
  assert index == 2 and guard.ok
  with guarded_check_grads(params, xs):
    _check_grads_on_hand_bptt(params, xs, ys)
  with pytest.raises(gradcheck.NoGuardedPoint, match="no point passed the kink guard in 2 draws"):
    gradcheck.pick_guarded(points.__getitem__, accept, range(2))


# --------------------------------------------------------------------------- no autodiff in bptt

FORBIDDEN = {"grad", "value_and_grad", "vjp", "jvp", "linearize", "jacfwd", "jacrev", "hessian",
             "jacobian", "linear_transpose", "jet"}   # run-time check: test_no_autodiff.py


def autodiff_calls(source: str) -> list[str]:
  """Every use of a JAX differentiation function in Python source (names, attributes, imports)."""
  found = []
  for node in ast.walk(ast.parse(source)):
    if isinstance(node, ast.Attribute) and node.attr in FORBIDDEN:
      found.append(f"line {node.lineno}: .{node.attr}")
    elif isinstance(node, ast.Name) and node.id in FORBIDDEN:
      found.append(f"line {node.lineno}: {node.id}")
    elif isinstance(node, ast.ImportFrom):
      found += [f"line {node.lineno}: import {a.name}" for a in node.names if a.name in FORBIDDEN]
  return found


def test_bptt_source_never_calls_jax_differentiation():
  assert autodiff_calls(inspect.getsource(bptt)) == []
  # the detector itself does detect
  assert len(autodiff_calls("import jax\ng = jax.grad(f)\nfrom jax import vjp\njvp(f)")) == 3
  assert len(autodiff_calls("jax.jacobian(f)\njax.linear_transpose(f, x)\n"
                            "from jax.experimental.jet import jet")) == 3


# --------------------------------------------------------------------------- the library and script


def test_errors_is_absolute_when_the_reference_is_zero():
  assert errors(np.array([0.0, 3e-12]), np.zeros(2)) == (3e-12, 3e-12)
  assert errors(np.array([1.0, 2.5]), np.array([1.0, 2.0])) == (0.5, 0.25)


def test_check_rnn_needs_float64():
  if jax.config.read("jax_enable_x64"):
    pytest.skip("float64 is enabled globally in this session")
  with pytest.raises(ValueError, match="needs float64"):
    gradcheck.check_rnn("float32", T=2, H=2)


def test_gradcheck_script(x64, capsys, monkeypatch):
  """check_rnn and check_mlp in both dtypes through the script: every parameter, every error
  within its tolerance, exit status 0; 1 past a tolerance; 2 for a bad argument."""
  script = gradcheck
  argv = ["--window", "6", "--hidden-size", "8", "--batch-size", "4", "--seed", "1"]
  assert script.main(argv + ["--input-size", "2"]) == 0
  out = capsys.readouterr().out
  assert "all within tolerance" in out
  assert out.startswith("matmul precision: highest ('highest': IEEE float32 products) on ")
  lines = [line.split() for line in out.splitlines()]
  for dtype in ("float32", "float64"):
    for net, params in (("rnn", "U V b W c"), ("mlp", "V W")):
      for name in params.split():
        row = [line for line in lines if line[:3] == [net, dtype, name]]
        assert len(row) == 1 and row[0][-1] == "yes", (net, dtype, name)
        rel_ad, tol_ad, rel_fd, tol_fd = (float(row[0][i]) for i in (6, 7, 9, 10))
        assert rel_ad <= tol_ad and rel_fd <= tol_fd
  # exit status 1, and a "NO" on exactly the U rows, for a wrong gradient: the notes' U vs U^T
  def transposed(params, xs, ys):
    loss, grads = bptt.loss_and_grads(params, xs, ys)
    return loss, grads._replace(U=grads.U.T)
  monkeypatch.setattr(gradcheck, "_rnn_hand", jax.jit(transposed))
  assert script.main(argv + ["--input-size", "2"]) == 1
  out = capsys.readouterr().out
  assert "FAILED" in out
  failed = [line.split()[:3] for line in out.splitlines() if line.endswith(" NO")]
  assert failed == [["rnn", "float32", "U"], ["rnn", "float64", "U"]]
  # and 2, one line, for a bad argument
  assert script.main(["--window", "0"]) == 2
  err = capsys.readouterr().err
  assert err.startswith("error: ") and "--window" in err and err.count("\n") == 1

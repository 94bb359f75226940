"""The pinball (quantile) loss on the logit scale (rnn_jax.core.model.pinball_from_logits) and its
hand gradient (rnn_jax.core.bptt with ``taus``): only Q = dL/dlogits and dL/dy change, so the
hand BPTT must equal autodiff for every parameter, for dxs, dh0 and dys, and at every time step,
with and without the anchor, both ways of forming the sums, in float64 (1e-10) and float32
(1e-4 against float64); the loss value equals the NumPy reference (tests/core/bptt_reference.py).

Targets include the clip's edge cases (an empty room, a full one, the bounds eps and 1 - eps,
values just inside and outside them), where dL/dy is 0 outside the clip. Ties (``y~ = l``) are
taken on purpose at the head. And a small training run recovers the quantiles of a known
distribution.
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import rnn_jax
from rnn_jax import testing
from rnn_jax.core import bptt, gradients, model
from rnn_jax.core.model import ANCHOR_EPS, RNNParams
from rnn_jax.testing import TOLERANCES, errors, hand_steps, step_errors, tree_errors

import bptt_reference as ref_bptt

TOL64 = TOLERANCES["float64"].autodiff   # 1e-10
TOL32 = TOLERANCES["float32"].autodiff   # 1e-4, against a float64 reference
EPS = ANCHOR_EPS

# Targets on every branch of the clip: an empty room, a full one, both bounds, just outside and
# just inside them, beyond capacity (a reading can exceed a fitted capacity a little).
EDGE_TARGETS = [0.0, 1.0, EPS, 1 - EPS, EPS / 2, 1 - EPS / 2, EPS * 1.5, 1 - EPS * 1.5, 1.02]


def problem(T, H, D, K, B, scheme="normal", seed=0, h0=False, anchor=False, dtype=np.float64):
  """``(params, xs, ys, h0, taus)``: rnn_jax.testing.rnn_problem with a small random bias, every
  third target replaced by one of ``EDGE_TARGETS`` (all of them once B K >= 27; in float32 those
  off the exact bounds), K quantile
  levels drawn in (0.02, 0.98), feature 0 a fraction in [0, 1] when ``anchor``; ``h0`` a
  positive initial state (else None)."""
  params, xs, ys = testing.rnn_problem(seed, T=T, H=H, D=D, K=K, B=B, scheme=scheme)
  rng = np.random.default_rng(seed + 1)
  params = params._replace(b=jnp.asarray(0.1 * rng.standard_normal(H)))
  if anchor:
    xs = xs.at[:, :, 0].set(rng.uniform(size=(B, T)))
  # float32 rounds eps and 1 - eps to numbers just inside the clip's float64 bounds
  edges = EDGE_TARGETS if dtype == np.float64 else [0.0, 1.0, EPS / 2, EPS * 1.5, 1.02]
  flat = np.asarray(ys).reshape(-1).copy()
  for i in range(0, flat.size, 3):
    flat[i] = edges[(i // 3) % len(edges)]
  ys = jnp.asarray(flat.reshape(B, K))
  init = jnp.asarray(np.abs(rng.standard_normal((B, H)))) if h0 else None
  taus = tuple(float(t) for t in rng.uniform(0.02, 0.98, K))
  params, xs, ys, init = testing.to_dtype((params, xs, ys, init), dtype)
  return params, xs, ys, init, taus


@partial(jax.jit, static_argnames=("anchor", "sums", "taus"))
def hand_and_autodiff(params, xs, ys, h0, anchor, sums, taus):
  """``(bptt.backward, (loss, (grads, dxs, dys, dh0)) by jax.value_and_grad of model.loss)``."""
  auto = jax.value_and_grad(partial(model.loss, anchor=anchor, taus=taus), argnums=(0, 1, 2, 3))
  return (bptt.backward(params, xs, ys, h0, anchor=anchor, sums=sums, taus=taus),
          auto(params, xs, ys, h0))


def assert_close(what, hand, ref, tol=TOL64):
  abs_err, rel = errors(hand, ref)
  assert np.isfinite(abs_err) and rel <= tol, f"{what}: relative error {rel:.2e} > {tol:g}"


def assert_steps_close(what, x, ref, axis=1, tol=TOL64):
  errs = step_errors(x, ref, axis)
  worst = int(np.argmax(errs))
  assert np.all(np.isfinite(errs)) and errs[worst] <= tol, (
      f"{what}: relative error {errs[worst]:.2e} at step {worst + 1} of {len(errs)} > {tol:g}")


#        T    H  D  K   B  scheme    h0     anchor sums
CASES = [(1,   1, 1, 1,  1, "normal", False, False, None),
         (2,   7, 3, 3,  5, "irnn",   True,  True,  None),
         (24, 200, 1, 3, 64, "normal", False, False, "stacked"),   # the notes' network
         (24, 200, 1, 3, 64, "normal", False, False, "carry"),
         (24,  50, 3, 3, 32, "normal", True,  True,  "stacked"),
         (24,  50, 3, 3, 32, "normal", True,  True,  "carry"),
         (100, 16, 2, 9, 9, "irnn",   True,  False, None),      # K = 9: three horizons x 3
         (60,  16, 1, 6, 12, "normal", False, True, "carry")]


def _case_id(case):
  T, H, D, K, B, scheme, h0, anchor, sums = case
  return (f"T{T}-H{H}-D{D}-K{K}-B{B}-{scheme}{'-h0' if h0 else ''}{'-anchor' if anchor else ''}"
          f"-{sums or 'by-shape'}")


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_hand_bptt_matches_autodiff_float64(x64, case):
  T, H, D, K, B, scheme, with_h0, anchor, sums = case
  params, xs, ys, h0, taus = problem(T, H, D, K, B, scheme, seed=T + H + K, h0=with_h0,
                                     anchor=anchor)
  h0 = jnp.zeros((B, H)) if h0 is None else h0
  hand, (loss, (grads, dxs, dys, dh0)) = hand_and_autodiff(params, xs, ys, h0, anchor, sums, taus)
  expected = ref_bptt.loss(params, xs, ys, h0, anchor, taus)     # NumPy, no shared code
  assert_close("hand loss vs numpy", hand.loss, expected)
  assert_close("autodiff loss vs numpy", loss, expected)
  assert all(g.dtype == jnp.float64 for g in hand.grads)
  for field, (_, rel) in tree_errors(hand.grads, grads).items():
    assert rel <= TOL64, f"grad {field}: relative error {rel:.2e} > {TOL64:g}"
  assert_close("dxs", hand.dxs, dxs)
  assert_close("dh0", hand.dh0, dh0)
  assert_close("dys", hand.dys, dys)
  # dL/dy is zero exactly where the clip holds the target (an empty or a full room)
  inside = np.asarray(model.anchor_inside(ys))
  assert (~inside).any() and np.all(np.asarray(hand.dys)[~inside] == 0)
  assert np.all(np.asarray(hand.dys)[inside] != 0)
  if T > 1:
    assert float(jnp.max(jnp.abs(grads.U))) > 0


def test_cases_reach_every_branch(x64):
  """The grid takes both sums paths with and without the anchor, and its targets hit every
  edge of the clip, on both sides of the logits."""
  assert {(c[7], c[8]) for c in CASES} >= {(False, "stacked"), (False, "carry"),
                                            (True, "stacked"), (True, "carry")}
  _, _, ys, _, _ = problem(24, 50, 3, 3, 32, seed=0)
  assert set(EDGE_TARGETS) <= set(np.asarray(ys).reshape(-1).tolist())


def autodiff_steps(params, xs, ys, h0, anchor, taus):
  """Autodiff's ``delta_t = dL/dA_t`` ``[B,T,H]``: ``jax.vjp`` of rnn_jax.hidden_states (on the
  rnn_jax.testing.augment-ed network) with the pinball head's ``jax.grad`` as cotangent at T."""
  D = xs.shape[-1]
  p_aug, xs_aug = testing.augment(params, xs)
  hs, vjp = jax.vjp(lambda p, x: rnn_jax.hidden_states(p, x, h0), p_aug, xs_aug)
  head = lambda hT: model.pinball_from_logits(model.logits_of(params, hT, xs, anchor), ys, taus)
  g_T = jax.grad(head)(hs[:, -1])
  _, dxs_aug = vjp(jnp.zeros_like(hs).at[:, -1].set(g_T))
  return dxs_aug[..., D:]


@partial(jax.jit, static_argnames=("anchor", "sums", "taus"))
def both_steps(params, xs, ys, h0, anchor, sums, taus):
  return (hand_steps(params, xs, ys, h0, anchor=anchor, sums=sums, taus=taus),
          autodiff_steps(params, xs, ys, h0, anchor, taus))


@pytest.mark.parametrize("case", [c for c in CASES if c[0] >= 24], ids=_case_id)
def test_every_step_matches_autodiff_and_numpy(x64, case):
  """dL/dA_t at every step on its own scale (rnn_jax.testing.step_errors): hand, autodiff and
  the NumPy reference pairwise; ||dL/dh_t||, dL/dx_t and dL/dh_0 against NumPy."""
  T, H, D, K, B, scheme, with_h0, anchor, sums = case
  params, xs, ys, h0, taus = problem(T, H, D, K, B, scheme, seed=T + H + K, h0=with_h0,
                                     anchor=anchor)
  h0 = jnp.zeros((B, H)) if h0 is None else h0
  ref = ref_bptt.backward(params, xs, ys, h0, anchor, taus)
  (result, delta), auto_delta = both_steps(params, xs, ys, h0, anchor, sums, taus)
  assert np.abs(ref.delta[:, -1]).max() > 0
  assert_steps_close("hand delta_t vs numpy", delta, ref.delta)
  assert_steps_close("autodiff delta_t vs numpy", auto_delta, ref.delta)
  assert_steps_close("hand delta_t vs autodiff", delta, auto_delta)
  norms = np.sqrt(np.sum(ref.g ** 2, axis=(0, 2)))
  assert_steps_close("hand ||dL/dh_t|| vs numpy", result.dh_norms, norms, axis=0)
  assert_steps_close("hand dL/dx_t vs numpy", result.dxs, ref.dxs)
  assert_close("dh0 vs numpy", result.dh0, ref.dh0)
  for field in RNNParams._fields:
    assert_close(f"grad {field} vs numpy", getattr(result.grads, field),
                 getattr(ref.grads, field))
  assert_close("loss vs numpy", result.loss, ref.loss)


@pytest.mark.parametrize("anchor", [False, True], ids=["plain", "anchor"])
def test_hand_bptt_float32_against_float64_reference(x64, anchor):
  T, H, D, K, B = 100, 200, 3, 3, 64
  p32, xs32, ys32, _, taus = problem(T, H, D, K, B, "irnn", seed=3, anchor=anchor,
                                     dtype=np.float32)
  p64, xs64, ys64 = testing.to_dtype((p32, xs32, ys32), jnp.float64)   # the same point
  h32, h64 = jnp.zeros((B, H), jnp.float32), jnp.zeros((B, H))
  with testing.full_float32_matmuls():
    hand32, (loss32, (auto32, *_)) = hand_and_autodiff(p32, xs32, ys32, h32, anchor, None, taus)
  hand64, _ = hand_and_autodiff(p64, xs64, ys64, h64, anchor, None, taus)
  # the same ReLU pattern and the same side of every quantile: the same piece of the loss
  same_relu = np.array_equal(np.asarray(model.preactivations(p32, xs32) > 0),
                             np.asarray(model.preactivations(p64, xs64) > 0))
  l32 = model.forward(p32, xs32, anchor=anchor)
  l64 = model.forward(p64, xs64, anchor=anchor)
  same_side = np.array_equal(np.asarray(model.clipped_logit(ys32) < l32),
                             np.asarray(model.clipped_logit(ys64) < l64))
  same_clip = np.array_equal(np.asarray(model.anchor_inside(ys32)),
                             np.asarray(model.anchor_inside(ys64)))
  assert same_relu and same_side and same_clip
  assert all(g.dtype == jnp.float32 for g in hand32.grads)
  for who, grads in (("hand", hand32.grads), ("autodiff", auto32)):
    for field, (_, rel) in tree_errors(grads, hand64.grads).items():
      assert rel <= TOL32, f"{who} float32 grad {field}: relative error {rel:.2e} > {TOL32:g}"
  assert_close("dxs float32", hand32.dxs, hand64.dxs, TOL32)
  assert_close("dys float32", hand32.dys, hand64.dys, TOL32)
  expected = ref_bptt.loss(p64, xs64, ys64, None, anchor, taus)
  assert_close("hand loss float32", hand32.loss, expected, TOL32)
  assert_close("autodiff loss float32", loss32, expected, TOL32)


# --------------------------------------------------------------------------- the head by hand


def _head_only(K, B, c, seed=0):
  """A network whose logits are exactly ``c`` for every example: W = 0."""
  params, xs, _ = testing.rnn_problem(seed, T=3, H=4, D=1, K=K, B=B)
  return params._replace(W=jnp.zeros_like(params.W), c=jnp.asarray(c, jnp.float64)), xs


def test_q_by_hand_has_no_sigmoid_factor(x64):
  """dL/dc = sum_b (1{y~ < l} - tau) / B, checked with numbers worked out by hand, far out in
  the tails where z (1 - z) would be ~1e-9: an empty room forecast at logit -20 (z = 2e-9) pulls
  the logit up as hard as anywhere else."""
  taus = (0.1, 0.5, 0.9)
  params, xs = _head_only(3, 2, [-20.0, 0.0, 20.0])
  ys = jnp.asarray([[0.0, 0.5, 1.0],        # y~ = -6.9 > -20; y~ = 0 = l (a tie); 6.9 < 20
                    [0.0, 0.9, 0.2]])       # y~ > -20;          y~ = 2.2 > 0;      y~ < 20
  result = jax.jit(partial(bptt.backward, taus=taus))(params, xs, ys)
  # Q_bk = (1{y~ < l} - tau) / 2; the tie sits on the tau side: 1{0 < 0} = 0
  Q = np.array([[0 - 0.1, 0 - 0.5, 1 - 0.9],
                [0 - 0.1, 0 - 0.5, 1 - 0.9]]) / 2
  np.testing.assert_allclose(result.grads.c, Q.sum(0), rtol=1e-14, atol=0)
  # L = mean_b sum_k rho: rho_0.1(-6.9 + 20), rho_0.5(0), rho_0.9(6.9 - 20) and the second row
  y_t = np.log(np.array([[EPS, 0.5, 1 - EPS], [EPS, 0.9, 0.2]]) /
               (1 - np.array([[EPS, 0.5, 1 - EPS], [EPS, 0.9, 0.2]])))
  u = y_t - np.array([-20.0, 0.0, 20.0])
  rho = np.where(u < 0, (np.array(taus) - 1) * u, np.array(taus) * u)
  np.testing.assert_allclose(result.loss, rho.sum(1).mean(), rtol=1e-14)
  # dL/dy: -Q / (y (1 - y)) inside the clip, 0 at y = 0 and y = 1
  dys = np.where([[0, 1, 0], [0, 1, 1]], -Q / (ys * (1 - ys)), 0.0)
  np.testing.assert_allclose(result.dys, dys, rtol=1e-14, atol=0)


def test_ties_match_autodiff(x64):
  """At ``l = y~`` exactly (c set to the targets' clipped logits, W = 0), the hand rule takes
  the subgradient autodiff takes through the loss's ``where``: dL/dl = -tau / B."""
  taus = (0.05, 0.5, 0.95)
  ys = jnp.asarray([[0.3, 0.0, 1.0]])
  params, xs = _head_only(3, 1, model.clipped_logit(ys)[0])
  assert np.array_equal(np.asarray(model.forward(params, xs)), np.asarray(model.clipped_logit(ys)))
  h0 = jnp.zeros((1, 4))
  hand, (_, (grads, _, dys, _)) = hand_and_autodiff(params, xs, ys, h0, False, None, taus)
  np.testing.assert_array_equal(hand.grads.c, -np.asarray(taus))
  np.testing.assert_array_equal(grads.c, hand.grads.c)
  np.testing.assert_allclose(hand.dys, dys, rtol=1e-14, atol=0)


def test_fraction_scale_quantile_is_sigmoid_of_logit_scale(x64):
  """Quantiles commute with the increasing logit: on sample data, the tau-quantile on the
  logit scale, through the sigmoid, is the tau-quantile of the clipped fractions, and it
  minimises the pinball loss on the logit scale among the candidate logits."""
  rng = np.random.default_rng(0)
  y = np.clip(rng.beta(0.5, 2.0, size=401), 0, 1)
  y[:40] = 0.0                                              # empty rooms
  y_t = np.asarray(model.clipped_logit(jnp.asarray(y)))
  for tau in (0.1, 0.5, 0.9):
    q_logit = np.quantile(y_t, tau, method="inverted_cdf")
    q_frac = np.quantile(np.clip(y, EPS, 1 - EPS), tau, method="inverted_cdf")
    assert abs(1 / (1 + np.exp(-q_logit)) - q_frac) < 1e-12
    at = jax.vmap(lambda c: model.pinball_from_logits(jnp.full((401, 1), c), y[:, None], (tau,)))
    losses = np.asarray(at(jnp.asarray(y_t)))
    assert losses.min() == pytest.approx(float(at(jnp.asarray([q_logit]))[0]), rel=1e-12)


# --------------------------------------------------------------------------- API


def test_custom_vjp_and_methods_give_the_hand_gradient(x64):
  """bptt.loss (custom_vjp, taus static), rnn_jax.value_and_grad("hand"/"autodiff", taus=...)
  and loss_fn agree, also under vmap over parameter pytrees (training vmaps over seeds)."""
  params, xs, ys, _, taus = problem(12, 9, 2, 3, 6, seed=4, anchor=True)
  seeds = [problem(12, 9, 2, 3, 6, seed=s)[0] for s in (5, 6)]
  stacked = jax.tree.map(lambda *a: jnp.stack(a), *seeds)

  @jax.jit
  def everything(params, stacked, xs, ys):
    over = lambda f: jax.vmap(f, in_axes=(0, None, None))(stacked, xs, ys)
    out = {}
    for anchor in (False, True):
      out[anchor] = {
          "autodiff": gradients.value_and_grad("autodiff", anchor=anchor, taus=taus)(
              params, xs, ys),
          "hand": gradients.value_and_grad("hand", anchor=anchor, taus=list(taus))(
              params, xs, ys),
          "grad of bptt.loss": jax.value_and_grad(partial(bptt.loss, anchor=anchor, taus=taus))(
              params, xs, ys),
          "loss_and_grads": bptt.loss_and_grads(params, xs, ys, anchor=anchor, taus=taus),
          "vmap autodiff": over(rnn_jax.value_and_grad("autodiff", anchor=anchor, taus=taus)),
          "vmap hand": over(rnn_jax.value_and_grad("hand", anchor=anchor, taus=taus))}
    return out

  out = everything(params, stacked, xs, ys)
  for anchor in (False, True):
    results = out[anchor]
    expected = ref_bptt.loss(params, xs, ys, None, anchor, taus)
    ref_loss, ref_grads = results.pop("autodiff")
    vmap_loss, vmap_grads = results.pop("vmap autodiff")
    assert_close("autodiff loss", ref_loss, expected)
    for what, (loss, grads) in results.items():
      if what == "vmap hand":
        ref_l, ref_g = vmap_loss, vmap_grads
      else:
        ref_l, ref_g = ref_loss, ref_grads
      assert_close(f"{what} loss", loss, ref_l)
      for field in RNNParams._fields:
        assert_close(f"{what} grad {field}", getattr(grads, field), getattr(ref_g, field))
    for i, p in enumerate(seeds):
      assert_close(f"vmap lane {i}", vmap_loss[i], ref_bptt.loss(p, xs, ys, None, anchor, taus))


def test_default_is_the_cross_entropy(x64):
  """taus=None everywhere is the notes' loss, bit for bit, and loss_fn("hand") is bptt.loss."""
  params, xs, ys, _, _ = problem(6, 5, 1, 3, 4, seed=2)
  assert float(model.loss(params, xs, ys)) == float(model.loss(params, xs, ys, taus=None))
  assert float(model.loss(params, xs, ys)) == float(
      model.bce_from_logits(model.forward(params, xs), ys))
  a = bptt.backward(params, xs, ys)
  b = bptt.backward(params, xs, ys, taus=None)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_array_equal(x, y)
  assert gradients.loss_fn("hand") is bptt.loss
  assert float(model.loss(params, xs, ys, taus=(0.5,) * 3)) != float(model.loss(params, xs, ys))


@pytest.mark.parametrize("taus,match", [
    ((0.1, 0.5), r"one quantile level per output \(3\), got 2"),
    ((0.1, 0.5, 0.9, 0.95), r"one quantile level per output \(3\), got 4"),
    ((0.0, 0.5, 0.9), "strictly between 0 and 1, got 0.0"),
    ((0.1, 0.5, 1.0), "strictly between 0 and 1, got 1.0"),
    ((-0.1, 0.5, 0.9), "strictly between 0 and 1, got -0.1"),
    ((0.1, float("nan"), 0.9), "strictly between 0 and 1, got nan"),
    ((), "at least one quantile level"),
    (("a", 0.5, 0.9), "a sequence of quantile levels"),
    (0.5, "a sequence of quantile levels")])
def test_bad_taus_are_refused(taus, match):
  params, xs, ys = testing.rnn_problem(0, T=2, H=3, D=1, K=3, B=2, dtype=np.float32)
  calls = {"model.loss": lambda: model.loss(params, xs, ys, taus=taus),
           "model.pinball_from_logits": lambda: model.pinball_from_logits(ys, ys, taus),
           "bptt.loss": lambda: bptt.loss(params, xs, ys, taus=taus),
           "bptt.backward": lambda: bptt.backward(params, xs, ys, taus=taus),
           "bptt.loss_and_grads": lambda: bptt.loss_and_grads(params, xs, ys, taus=taus),
           "bptt.grad_norms": lambda: bptt.grad_norms(params, xs, ys, taus=taus),
           "hand": lambda: gradients.value_and_grad("hand", taus=taus)(params, xs, ys),
           "autodiff": lambda: gradients.value_and_grad("autodiff", taus=taus)(params, xs, ys)}
  for name, call in calls.items():
    with pytest.raises(ValueError, match=match):
      call()
    if "per output" not in match:      # loss_fn cannot know K; it refuses the rest at once
      with pytest.raises(ValueError, match=match):
        gradients.loss_fn("hand", taus=taus)


# --------------------------------------------------------------------------- training


def test_training_recovers_the_quantiles():
  """Two groups flagged by the last input, targets uniform on [0, 0.5] or [0.5, 1] (with empty
  rooms in the first): Adam on the hand gradient of the pinball loss brings sigmoid of the
  three outputs to the 0.1, 0.5 and 0.9 sample quantiles of each group's (clipped) targets."""
  taus = (0.1, 0.5, 0.9)
  rng = np.random.default_rng(0)
  B, T = 1000, 2
  group = rng.integers(0, 2, B)
  xs = np.zeros((B, T, 1), np.float32)
  xs[:, -1, 0] = group
  ys = rng.uniform(0, 0.5, B) + 0.5 * group
  ys[(group == 0) & (rng.uniform(size=B) < 0.15)] = 0.0
  ys = np.repeat(ys[:, None], 3, axis=1).astype(np.float32)
  params = model.init_params(jax.random.key(0), 1, 8, 3)
  params = params._replace(b=jnp.full((8,), 0.1))      # no dead units at the start
  schedule = optax.cosine_decay_schedule(0.05, 1500, alpha=0.01)
  opt = optax.adam(schedule)
  value_and_grad = rnn_jax.value_and_grad("hand", taus=taus)

  @jax.jit
  def train(params):
    def step(carry, _):
      p, s = carry
      _, g = value_and_grad(p, xs, ys)
      updates, s = opt.update(g, s, p)
      return (optax.apply_updates(p, updates), s), None
    return jax.lax.scan(step, (params, opt.init(params)), None, length=1500)[0][0]

  trained = train(params)
  z = np.asarray(model.predict(trained, xs))
  clipped = np.clip(ys[:, 0], EPS, 1 - EPS)
  for g in (0, 1):
    expected = np.quantile(clipped[group == g], taus)
    got = z[group == g].mean(axis=0)
    assert np.abs(got - expected).max() < 0.02, (g, got, expected)
    assert np.ptp(z[group == g], axis=0).max() < 1e-5          # one forecast per group

"""The hand BPTT step by step: dL/dA_t, ||dL/dh_t|| and each step's contribution to grad_U,
grad_V and grad_b, every step held to 1e-10 of its own size, in float64.

Why per step: the per-parameter relative error ``max |hand - ref| / max |ref|`` is set by the
last steps. With the normal init at T = 100, H = 200, ||dL/dh_1|| / ||dL/dh_T|| is ~1e-15
(``test_early_steps_are_invisible_per_parameter`` measures it), so a BPTT wrong by any factor
in its first steps passes every per-parameter check. Here each step is compared with its own
``max |ref_t|`` (rnn_jax.testing.step_errors).

The hand code's per-step deltas come out of its own outputs (rnn_jax.testing.hand_steps):
on the same network with H more inputs, all zero, each wired to one unit (``V' = [V, I]``,
``xs' = [xs, 0]``; nothing in the forward pass changes), ``dL/dx'_t`` is ``delta_t [V, I]``, so
its last H columns are the hand's ``delta_t = dL/dA_t`` at every step. The references: autodiff (``jax.vjp`` of
``rnn_jax.hidden_states`` with the head's cotangent at T and zero elsewhere) and the notes'
equations in NumPy (tests/core/bptt_reference.py), three witnesses that share no code.

Each step's contributions ``delta_t^T h_{t-1}``, ``delta_t^T x_t``, ``sum_b delta_t`` are the
hand's one-step VJP at that step's data (``hidden_states_vjp`` on the step alone, from h_{t-1},
with the reference's dL/dh_t as cotangent). The hand's *accumulation* of them over a long
scan is checked with cotangents chosen so that dL/dh_t is O(1) at every step
(``test_every_step_weighs_the_same``): there a slip at any step moves the sum.
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnn_jax
from rnn_jax.core import bptt, model
from rnn_jax import testing
from rnn_jax.testing import TOLERANCES, augment, errors, hand_steps, step_errors

import bptt_reference as ref_bptt

TOL64 = TOLERANCES["float64"].autodiff   # 1e-10, now per step


def autodiff_steps(params, xs, ys, h0, anchor=False):
  """Autodiff's ``(delta [B,T,H], grads of U, V, b)``: ``jax.vjp`` of rnn_jax.hidden_states
  with the head's cotangent ``dL/dh_T`` (itself ``jax.grad`` of the head and loss) at T."""
  D = xs.shape[-1]
  p_aug, xs_aug = augment(params, xs)
  hs, vjp = jax.vjp(lambda p, x: rnn_jax.hidden_states(p, x, h0), p_aug, xs_aug)
  head = lambda hT: model.bce_from_logits(model.logits_of(params, hT, xs, anchor), ys)
  g_T = jax.grad(head)(hs[:, -1])
  grads, dxs_aug = vjp(jnp.zeros_like(hs).at[:, -1].set(g_T))
  return dxs_aug[..., D:], grads._replace(V=grads.V[:, :D])


@partial(jax.jit, static_argnames=("anchor", "sums"))
def both_steps(params, xs, ys, h0, anchor=False, sums=None):
  """One compilation for both: ``(testing.hand_steps(...), autodiff_steps(...))``."""
  return (hand_steps(params, xs, ys, h0, anchor=anchor, sums=sums),
          autodiff_steps(params, xs, ys, h0, anchor))


@jax.jit
def hand_step_contributions(params, xs, h0, g):
  """Each step's ``(delta_t^T h_{t-1}, delta_t^T x_t, sum_b delta_t)`` by the hand VJP of that
  step alone (``hidden_states_vjp`` on ``x_t`` from ``h_{t-1}``, cotangent ``g_t``), ``[T, ...]``."""
  hs = rnn_jax.hidden_states(params, xs, h0)
  h_prev = jnp.concatenate([h0[:, None], hs[:, :-1]], axis=1)
  one = lambda x, h, ct: bptt.hidden_states_vjp(params, x[:, None], ct[:, None], h)[0]
  grads = jax.vmap(one, in_axes=(1, 1, 1))(xs, h_prev, g)
  return grads.U, grads.V, grads.b


def assert_steps_close(x, ref, what, axis=1, tol=TOL64):
  errs = step_errors(x, ref, axis)
  worst = int(np.argmax(errs))
  assert np.all(np.isfinite(errs)) and errs[worst] <= tol, (
      f"{what}: relative error {errs[worst]:.2e} at step {worst + 1} of {len(errs)} > {tol:g}")


def problem(T, H, D, K, B, scheme="normal", seed=0, h0=False, readings=False):
  """A gradcheck problem in float64; ``readings``: feature 0 a fraction in [0, 1] (the anchor's
  input, most readings inside its clip); ``h0``: a positive initial state (else None)."""
  params, xs, ys = testing.rnn_problem(seed, T=T, H=H, D=D, K=K, B=B, scheme=scheme)
  rng = np.random.default_rng(seed + 1)
  if readings:
    xs = xs.at[:, :, 0].set(rng.uniform(size=(B, T)))
  params = params._replace(b=jnp.asarray(0.1 * rng.standard_normal(H)))
  init = jnp.asarray(np.abs(rng.standard_normal((B, H)))) if h0 else None
  return params, xs, ys, init


#        T    H  D  K   B  scheme    h0     anchor
CASES = [(100, 200, 1, 3, 64, "normal", False, False),   # a vanishing case: T=100
         (100, 200, 3, 3, 64, "irnn",   False, False),
         (24,  50,  3, 3,  5, "normal", True,  True),
         (60,  16,  2, 1,  3, "normal", True,  False),
         (1,    7,  3, 3,  5, "irnn",   True,  True)]


def _case_id(case):
  T, H, D, K, B, scheme, h0, anchor = case
  return f"T{T}-H{H}-D{D}-K{K}-B{B}-{scheme}{'-h0' if h0 else ''}{'-anchor' if anchor else ''}"


# The vanishing case both ways the hand BPTT forms its sums ("stacked": one GEMM over the
# deltas the reverse scan stacks; "carry": accumulated in the scan's carry), the others the way
# it picks by shape (bptt.sums_for: "stacked" at all of these), the anchored case "carry" too.
SUMS_CASES = ([(CASES[0], "stacked"), (CASES[0], "carry")] + [(c, None) for c in CASES[1:]] +
              [(CASES[2], "carry")])


@pytest.mark.parametrize("case,sums", SUMS_CASES, ids=lambda c: (
    _case_id(c) if isinstance(c, tuple) else f"sums-{c or 'by-shape'}"))
def test_every_step_matches_autodiff_and_numpy(x64, case, sums):
  T, H, D, K, B, scheme, with_h0, anchor = case
  params, xs, ys, h0 = problem(T, H, D, K, B, scheme, seed=T + H, h0=with_h0, readings=anchor)
  ref = ref_bptt.backward(params, xs, ys, h0, anchor)
  (result, delta), (auto_delta, auto_grads) = both_steps(params, xs, ys, h0, anchor, sums)
  assert np.abs(ref.delta[:, -1]).max() > 0            # the head does reach the recurrence

  # dL/dA_t at every step: hand, autodiff and NumPy pairwise
  assert_steps_close(delta, ref.delta, "hand delta_t vs numpy")
  assert_steps_close(auto_delta, ref.delta, "autodiff delta_t vs numpy")
  assert_steps_close(delta, auto_delta, "hand delta_t vs autodiff")
  # ||dL/dh_t|| (the hand's own g_t, dead units included), dL/dh_0 and dL/dx_t
  norms = np.sqrt(np.sum(ref.g ** 2, axis=(0, 2)))
  assert_steps_close(result.dh_norms, norms, "hand ||dL/dh_t|| vs numpy", axis=0)
  assert errors(result.dh0, ref.dh0)[1] <= TOL64
  assert_steps_close(result.dxs, ref.dxs, "hand dL/dx_t vs numpy")
  # and the parameter-level checks, against both references
  for field in ("U", "V", "b", "W", "c"):
    assert errors(getattr(result.grads, field), getattr(ref.grads, field))[1] <= TOL64, field
  for field in ("U", "V", "b"):
    assert errors(getattr(auto_grads, field), getattr(ref.grads, field))[1] <= TOL64, field
  assert errors(result.loss, ref.loss)[1] <= TOL64


@pytest.mark.parametrize("case", CASES[:1] + CASES[3:4], ids=_case_id)
def test_every_step_contribution_matches_numpy(x64, case):
  T, H, D, K, B, scheme, with_h0, anchor = case
  params, xs, ys, h0 = problem(T, H, D, K, B, scheme, seed=T + H, h0=with_h0, readings=anchor)
  ref = ref_bptt.backward(params, xs, ys, h0, anchor)
  h0 = jnp.zeros((B, H)) if h0 is None else h0
  dU, dV, db = hand_step_contributions(params, xs, h0, jnp.asarray(ref.g))
  assert_steps_close(dU, ref.dU, "delta_t^T h_{t-1}", axis=0)
  assert_steps_close(dV, ref.dV, "delta_t^T x_t", axis=0)
  assert_steps_close(db, ref.db, "sum_b delta_t", axis=0)


def test_early_steps_are_invisible_per_parameter(x64):
  """The hole this file closes, measured: at the first case (T=100, H=200, B=64) the first 20
  steps weigh under 1e-10 of dL/dh_T, so dropping them entirely passes the per-parameter bar."""
  T, H, D, K, B, scheme, _, _ = CASES[0]
  params, xs, ys, h0 = problem(T, H, D, K, B, scheme, seed=T + H)
  ref = ref_bptt.backward(params, xs, ys, h0)
  norms = np.sqrt(np.sum(ref.g ** 2, axis=(0, 2)))
  assert norms[19] / norms[-1] < 1e-10 and norms[0] / norms[-1] < 1e-12
  late = ref.delta.copy()
  late[:, :20] = 0.0                              # a BPTT that ignores steps 1..20
  h_prev = np.concatenate([np.zeros((B, 1, H)), ref.hs[:, :-1]], axis=1)
  dropped = ref_bptt.outer_per_step(late, h_prev).sum(0)
  assert errors(dropped, ref.grads.U)[1] <= TOL64          # passes per parameter
  assert step_errors(late, ref.delta)[:20].min() == 1.0    # fails at every dropped step


@partial(jax.jit, static_argnames="sums")
def _flat_vjps(params, xs, h0, cotangent, sums):
  """Hand and autodiff VJPs of rnn_jax.hidden_states with the same per-step cotangent."""
  p_aug, xs_aug = augment(params, xs)
  hand = bptt.hidden_states_vjp(p_aug, xs_aug, cotangent, h0, sums=sums)
  auto = jax.vjp(lambda p, x: rnn_jax.hidden_states(p, x, h0), p_aug, xs_aug)[1](cotangent)
  return hand, auto


@pytest.mark.parametrize("scheme,sums", [("normal", "stacked"), ("normal", "carry"),
                                         ("irnn", None)])
def test_every_step_weighs_the_same(x64, scheme, sums):
  """Cotangents ``c_t = r_t - (r_{t+1} * m_{t+1}) U`` (m the ReLU mask, r ~ N(0, 1)) make
  dL/dh_t = r_t at every step, so every step adds an O(1) term to grad_U, grad_V, grad_b and the
  hand's accumulation over the long reverse scan is seen at every step (a slip of 1e-7 at any
  one step moves a sum of T = 100 such terms by ~1e-8 >> 1e-10), both ways it forms the sums
  (``sums``: one GEMM over the stacked deltas, or the scan's carry). The reference is closed form:
  ``grad_U = sum_t (r_t m_t)^T h_{t-1}`` and so on, with no recursion at all."""
  T, H, D, B = 100, 200, 1, 64
  params, xs, _, h0 = problem(T, H, D, 3, B, scheme, seed=7, h0=True)
  hs = ref_bptt.forward(params, xs, h0)[0]
  mask = (hs > 0).astype(np.float64)
  r = np.random.default_rng(8).standard_normal(hs.shape)
  U = np.asarray(params.U)
  cotangent = r.copy()
  cotangent[:, :-1] -= (r[:, 1:] * mask[:, 1:]) @ U
  delta = r * mask
  h_prev = np.concatenate([np.asarray(h0)[:, None], hs[:, :-1]], axis=1)
  expected = {"U": ref_bptt.outer_per_step(delta, h_prev).sum(0),
              "V": ref_bptt.outer_per_step(delta, np.asarray(xs)).sum(0), "b": delta.sum((0, 1))}
  (grads, dxs, dh0), (auto_grads, auto_dxs) = _flat_vjps(params, xs, h0, jnp.asarray(cotangent),
                                                          sums)
  for field, value in expected.items():
    for who, got in (("hand", grads), ("autodiff", auto_grads)):
      got = getattr(got, field)[:, :D] if field == "V" else getattr(got, field)
      assert errors(got, value)[1] <= TOL64, f"{who} grad_{field}"
  assert_steps_close(dxs[..., D:], delta, "hand delta_t (flat)")
  assert_steps_close(auto_dxs[..., D:], delta, "autodiff delta_t (flat)")
  assert errors(dh0, delta[:, 0] @ U)[1] <= TOL64

"""The two ways the hand BPTT forms grad_U, grad_V, grad_b (rnn_jax.core.bptt._reverse), and the
forward pass's hoisted transpose (rnn_jax.core.model._step_fn), in float64.

``sums="stacked"``: the reverse scan stacks delta_t and each sum is one GEMM over all T*B rows
after it; ``sums="carry"``: the sums run in the scan's carry, step by step. They add the same
terms in another order, so each is held to 1e-12 of autodiff (jax.grad / jax.vjp of the scan)
and of the other, per parameter, and dL/dx step by step (each step against its own size).
``sums=None`` picks one by shape (``bptt.sums_for``); the dispatch is checked on the traced
program, not by timing.
"""
from __future__ import annotations

import jax
import jax.extend.core
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_jax import testing
from rnn_jax.core import bptt, model
from rnn_jax.testing import errors, step_errors, tree_errors

TOL = 1e-12   # float64: the two orders of summation and autodiff's agree to a few ulp

#        T  H  D  K  B  h0     anchor
CASES = [(1, 5, 2, 3, 4, True, False),
         (9, 6, 2, 3, 5, True, False),
         (24, 7, 1, 3, 1, False, False),   # B = 1: the matrix-vector path of the forward pass
         (24, 7, 1, 3, 6, True, True),
         (40, 16, 3, 2, 3, True, False)]


def _case_id(case):
  T, H, D, K, B, h0, anchor = case
  return f"T{T}-H{H}-D{D}-K{K}-B{B}" + ("-h0" if h0 else "") + ("-anchor" if anchor else "")


def _problem(case):
  T, H, D, K, B, with_h0, anchor = case
  params, xs, ys = testing.rnn_problem(sum(case[:5]), T=T, H=H, D=D, K=K, B=B,
                                         scheme="normal", targets="soft", dtype=np.float64)
  params = params._replace(b=jnp.linspace(-0.2, 0.2, H))      # a bias, so its path counts
  if anchor:   # readings in (0, 1) as the anchor expects, with one clipped at each end
    xs = jnp.abs(jnp.tanh(xs)).at[0, -1, 0].set(0.0).at[-1, -1, 0].set(1.0)
  rng = np.random.default_rng(T)
  h0 = jnp.asarray(np.abs(rng.standard_normal((B, H)))) if with_h0 else None
  return params, xs, ys, h0, anchor


def assert_tree_close(got, ref, tol, what):
  for field, (abs_err, rel) in tree_errors(got, ref).items():
    assert np.isfinite(abs_err) and rel <= tol, f"{what} {field}: {rel:.2e} (abs {abs_err:.2e})"


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_both_sums_equal_autodiff_and_each_other(x64, case):
  params, xs, ys, h0, anchor = _problem(case)
  h0_ref = jnp.zeros((xs.shape[0], params.U.shape[0])) if h0 is None else h0
  ref_loss, ref = jax.value_and_grad(model.loss)(params, xs, ys, h0_ref, anchor=anchor)
  ref_dxs, ref_dh0 = jax.grad(model.loss, argnums=(1, 3))(params, xs, ys, h0_ref, anchor=anchor)
  results = {s: jax.jit(bptt.backward, static_argnames=("anchor", "sums"))(
      params, xs, ys, h0, anchor=anchor, sums=s) for s in bptt.SUMS}
  for s, r in results.items():
    assert errors(r.loss, ref_loss)[1] <= TOL, s
    assert_tree_close(r.grads, ref, TOL, f"{s} vs jax.grad:")
    assert np.max(step_errors(r.dxs, ref_dxs)) <= TOL, s
    assert errors(r.dh0, ref_dh0)[1] <= TOL, s
  stacked, carry = results["stacked"], results["carry"]
  assert_tree_close(stacked.grads, carry.grads, TOL, "stacked vs carry:")
  assert np.max(step_errors(stacked.dxs, carry.dxs)) <= TOL
  assert np.max(step_errors(stacked.dh_norms, carry.dh_norms, axis=0)) <= TOL
  # the sums are not trivially zero: every parameter receives gradient
  assert all(float(jnp.max(jnp.abs(g))) > 0 for g in stacked.grads)


@pytest.mark.parametrize("sums", bptt.SUMS)
def test_custom_vjp_loss_runs_the_chosen_sums(x64, sums):
  """jax.grad of bptt.loss(sums=...) runs that way (its backward rule) and is the hand gradient."""
  params, xs, ys, h0, _ = _problem(CASES[1])
  H = params.U.shape[0]
  carry = _reverse_scan_carry_shapes(jax.grad(lambda p: bptt.loss(p, xs, ys, h0, sums=sums)),
                                     params)
  assert ((H, H) in carry) == (sums == "carry")
  grads = jax.jit(jax.grad(bptt.loss), static_argnames="sums")(params, xs, ys, h0, sums=sums)
  _, hand = bptt.loss_and_grads(params, xs, ys, h0, sums=sums)
  assert_tree_close(grads, hand, TOL, f"{sums}:")
  assert_tree_close(grads, jax.grad(model.loss)(params, xs, ys, h0), TOL, f"{sums} vs jax.grad:")


@pytest.mark.parametrize("sums", bptt.SUMS)
def test_hidden_states_vjp_both_sums(x64, sums):
  T, B, H, D = 11, 3, 8, 2
  params, xs, _, h0, _ = _problem((T, H, D, 3, B, True, False))
  cotangent = jnp.asarray(np.random.default_rng(5).standard_normal((B, T, H)))
  ref_params, ref_dxs, ref_dh0 = jax.vjp(model.hidden_states, params, xs, h0)[1](cotangent)
  grads, dxs, dh0 = jax.jit(bptt.hidden_states_vjp, static_argnames="sums")(
      params, xs, cotangent, h0, sums=sums)
  assert_tree_close(grads._replace(W=ref_params.W, c=ref_params.c), ref_params, TOL, sums)
  assert np.max(step_errors(dxs, ref_dxs)) <= TOL
  assert errors(dh0, ref_dh0)[1] <= TOL


def _eqns(jaxpr):
  """Every equation of ``jaxpr`` and of the jaxprs nested in it (jit, custom_vjp, scan bodies)."""
  for eqn in jaxpr.eqns:
    yield eqn
    for value in eqn.params.values():
      for sub in (value if isinstance(value, (tuple, list)) else (value,)):
        if isinstance(sub, jax.extend.core.ClosedJaxpr):
          yield from _eqns(sub.jaxpr)
        elif isinstance(sub, jax.extend.core.Jaxpr):
          yield from _eqns(sub)


def _reverse_scan_carry_shapes(fn, *args):
  """The shapes in the carry of the one reverse scan that ``fn(*args)`` traces."""
  jaxpr = jax.make_jaxpr(lambda *a: fn(*a))(*args).jaxpr      # a fresh trace: no cached jaxpr
  scans = [e for e in _eqns(jaxpr) if e.primitive.name == "scan" and e.params["reverse"]]
  assert len(scans) == 1
  eqn = scans[0]
  first = eqn.params["num_consts"]
  return [v.aval.shape for v in eqn.invars[first:first + eqn.params["num_carry"]]]


def test_default_sums_follow_the_shape(monkeypatch):
  """sums=None runs what sums_for picks: the carry holds [H,H] (grad_U) only for "carry"."""
  T, H, B = 6, 5, 4
  params, xs, ys = testing.rnn_problem(0, T=T, H=H, D=1, K=3, B=B, dtype=np.float32)
  assert bptt.sums_for(T, B, H) == "stacked"
  assert (H, H) not in _reverse_scan_carry_shapes(bptt.loss_and_grads, params, xs, ys)
  monkeypatch.setattr(bptt, "STACKED_MAX_ELEMENTS", T * B * H - 1)
  assert bptt.sums_for(T, B, H) == "carry"
  assert (H, H) in _reverse_scan_carry_shapes(bptt.loss_and_grads, params, xs, ys)


def test_sums_for_the_benchmark_shapes():
  """The measured choice at T=24, H=200 (see bptt.STACKED_MAX_ELEMENTS): the stacked GEMMs up to
  B=128, the carry from B=256 on."""
  assert [bptt.sums_for(24, B, 200) for B in (1, 32, 128, 256, 1024, 4096)] == [
      "stacked", "stacked", "stacked", "carry", "carry", "carry"]


def test_unknown_sums_is_refused():
  params, xs, ys = testing.rnn_problem(0, T=3, H=4, D=1, K=3, B=2, dtype=np.float32)
  for call in (lambda: bptt.loss_and_grads(params, xs, ys, sums="gemm"),
               lambda: bptt.loss(params, xs, ys, sums="gemm"),
               lambda: bptt.hidden_states_vjp(params, xs, jnp.zeros((2, 3, 4)), sums="gemm")):
    with pytest.raises(ValueError, match="sums: expected one of"):
      call()


@pytest.mark.parametrize("B", [1, 4])
@pytest.mark.parametrize("unroll", [1, 5])
def test_forward_with_and_without_the_hoisted_transpose(x64, B, unroll):
  """Every branch of model._step_fn (B = 1, B > 1, rolled, unrolled) computes model.cell."""
  params, xs, _, h0, _ = _problem((5, 6, 2, 3, B, True, False))
  h, hs_ref = h0, []
  for t in range(xs.shape[1]):
    h, _ = model.cell(params, h, xs[:, t])
    hs_ref.append(h)
  hs = model.hidden_states(params, xs, h0, unroll=unroll)
  assert errors(hs, jnp.stack(hs_ref, axis=1))[1] <= TOL
  hT, h_prev, active = model._run_for_bptt(params, xs, h0)
  assert errors(hT, h)[1] <= TOL
  assert errors(h_prev[0], h0)[1] == 0 and errors(h_prev[1:], jnp.stack(hs_ref[:-1]))[1] <= TOL
  A = jnp.swapaxes(model.preactivations(params, xs, h0), 0, 1)
  np.testing.assert_array_equal(active, A > 0)


def _scan_unrolls(fn, *args):
  """The ``unroll`` of every ``scan`` in the jaxpr of ``fn(*args)``."""
  return [e.params["unroll"] for e in jax.make_jaxpr(fn)(*args).jaxpr.eqns
          if e.primitive.name == "scan"]


def test_inference_and_the_loss_scan_rolled_by_default(x64):
  """forward (so predict) and the loss run the notes' rolled scan unless told otherwise."""
  params, xs, ys = testing.rnn_problem(0, T=6, H=5, D=2, K=3, B=4, dtype=np.float64)
  assert _scan_unrolls(model.forward, params, xs) == [1]
  assert _scan_unrolls(model.loss, params, xs, ys) == [1]

"""Every JAX variant of ``rnn_jax.bench.workloads`` trains the same model as a plain optax step:
the per-step variants step by step, the fused call as its steps run one by one, and model i of
vmap16 as model i trained alone."""
from __future__ import annotations

import jax
import numpy as np
import pytest

from bench_reference import B, CFG, H, T, TOL, close, reference_step  # noqa: F401 (fixture)
from rnn_jax import bench as bm
from rnn_jax.core import model


@pytest.mark.parametrize("variant", ["autodiff", "autodiff_unroll", "hand"])
def test_step_variants_train_like_a_plain_optax_step(variant, reference_step):  # noqa: F811
  ref, opt = reference_step
  params, xs, ys = bm.problem(CFG, B, T, H)
  state = (params, opt.init(params))
  work = bm.build(CFG, variant, B, T, H)
  assert work.compile_s > 0 and work.samples_per_call == B
  losses = []
  for _ in range(2):
    out = work.call()
    p, s, loss = ref(*state, xs, ys)
    state = (p, s)
    np.testing.assert_allclose(out[2], loss, **TOL)
    assert bool(out[3])
    close(out[0], p)
    losses.append(float(out[2]))
  assert losses[1] != losses[0]                               # it trained


def test_forward_variant_is_model_forward():
  params, xs, _ = bm.problem(CFG, B, T, H)
  work = bm.build(CFG, "forward", B, T, H)
  assert work.independent
  np.testing.assert_allclose(work.call(), model.forward(params, xs), **TOL)


def _epoch_reference(ref, params, opt_state, xs, ys, perm, steps):
  losses = []
  for s in range(steps):
    idx = np.asarray(perm[s * B:(s + 1) * B])
    params, opt_state, loss = ref(params, opt_state, xs[idx], ys[idx])
    losses.append(loss)
  return params, np.asarray(losses)


@pytest.mark.parametrize("variant", ["fused", "hand_fused"])
def test_fused_variant_runs_the_steps_of_its_permutation(variant, reference_step):  # noqa: F811
  """``fused`` (autodiff) and ``hand_fused`` (the hand BPTT) both equal the reference's steps."""
  ref, opt = reference_step
  (params, opt_state, xs, ys, perm), steps = bm.fused_inputs(CFG, B, T, H)
  assert steps == 2 and xs.shape == (steps * B, T, 1)
  work = bm.build(CFG, variant, B, T, H)
  assert work.samples_per_call == steps * B and work.info["steps_per_call"] == steps
  out = work.call()
  want_params, want_losses = _epoch_reference(ref, params, opt.init(params), xs, ys, perm, steps)
  np.testing.assert_allclose(out[2], want_losses, **TOL)
  close(out[0], want_params)


def test_vmap16_trains_each_model_like_one_model_alone(reference_step):  # noqa: F811
  ref, opt = reference_step
  (params, _, xs, ys, perm), steps = bm.fused_inputs(CFG, B, T, H, models=bm.MODELS)
  assert perm.shape == (bm.MODELS, steps * B)
  assert not np.allclose(params.U[0], params.U[1])            # independent initialisations
  work = bm.build(CFG, "vmap16", B, T, H)
  assert work.samples_per_call == bm.MODELS * steps * B
  out = work.call()
  assert out[2].shape == (bm.MODELS, steps)
  for i in (0, 7, bm.MODELS - 1):
    p_i = jax.tree.map(lambda a: a[i], params)
    want_params, want_losses = _epoch_reference(ref, p_i, opt.init(p_i), xs, ys, perm[i], steps)
    np.testing.assert_allclose(out[2][i], want_losses, **TOL)
    close(jax.tree.map(lambda a: a[i], out[0]), want_params)

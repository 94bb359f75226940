"""rnn_jax.train's optimizer step, the fused epoch, the batch size; JAX's failure modes (one step
changes every parameter, dtypes survive under x64, the epoch compiles once)."""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_jax import train
from rnn_jax.core import gradients, model
from rnn_jax.train import TrainConfig

from train_helpers import B, BASE, D, H, K, N, TRAIN


def small_problem(dtype=jnp.float32, scheme="normal"):
  """Parameters drawn with numpy (no jax.random program to compile) and one batch."""
  rng = np.random.default_rng(3)
  draw = lambda *shape: rng.normal(0, 1 / np.sqrt(shape[-1]), shape)
  U = np.eye(H) if scheme == "irnn" else draw(H, H)
  params = model.RNNParams(U=U, V=draw(H, D), b=np.zeros(H), W=draw(K, H), c=np.zeros(K))
  params = jax.tree.map(lambda a: jnp.asarray(a, dtype), params)
  return params, jnp.asarray(TRAIN[0][:B], dtype), jnp.asarray(TRAIN[1][:B], dtype)


@pytest.fixture(scope="module")
def base_fns():
  """BASE's optimizer with its jitted step and (trace-counted) jitted epoch, shared below."""
  opt = train.make_optimizer(BASE)
  step = jax.jit(train.make_train_step(opt))
  epoch = jax.jit(chex.assert_max_traces(train.make_epoch_fn(opt, B), n=1))
  return opt, step, epoch


def test_one_step_changes_every_parameter(base_fns):
  opt, step, _ = base_fns
  params, xs, ys = small_problem()
  new, state, loss, finite = step(params, opt.init(params), xs, ys)
  assert bool(finite) and np.isfinite(float(loss))
  for name in model.RNNParams._fields:
    assert not np.array_equal(getattr(new, name), getattr(params, name)), name
  np.testing.assert_allclose(loss, model.loss(params, xs, ys), rtol=1e-6)


def test_step_reports_nonfinite_gradients(base_fns):
  opt, step, _ = base_fns
  params, xs, ys = small_problem()
  _, _, _, finite = step(params, opt.init(params), xs.at[0, 0, 0].set(jnp.nan), ys)
  assert not bool(finite)
  _, _, _, finite = step(params, opt.init(params), xs, ys)
  assert bool(finite)


def test_dtypes_survive_a_step_under_x64(x64):
  params, xs, ys = small_problem(jnp.float64)
  opt = train.make_optimizer(TrainConfig(optimizer="adam", clip=1.0))
  state = opt.init(params)
  new, state, loss, _ = jax.jit(train.make_train_step(opt))(params, state, xs, ys)
  assert all(leaf.dtype == jnp.float64 for leaf in jax.tree.leaves(new))
  assert loss.dtype == jnp.float64
  assert {leaf.dtype for leaf in jax.tree.leaves(state)} == {jnp.dtype("float64"),
                                                             jnp.dtype("int32")}


def test_hand_and_autodiff_train_to_the_same_params(x64):
  params, xs, ys = small_problem(jnp.float64, scheme="irnn")
  opt = train.make_optimizer(TrainConfig(optimizer="adam", lr=1e-2))
  out = {}
  for method in ("autodiff", "hand"):
    step = jax.jit(train.make_train_step(opt, method))
    p, s = params, opt.init(params)
    for i in range(4):
      p, s, loss, _ = step(p, s, xs[::-1] if i % 2 else xs, ys[::-1] if i % 2 else ys)
    out[method] = p
  for a, b in zip(out["autodiff"], out["hand"]):
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_remat_gives_identical_gradients_and_reaches_the_step(x64):
  params, xs, ys = small_problem(jnp.float64)
  plain = jax.jit(gradients.value_and_grad("autodiff"))(params, xs, ys)
  remat = jax.jit(gradients.value_and_grad("autodiff", remat=True))(params, xs, ys)
  for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(remat)):
    np.testing.assert_allclose(a, b, rtol=1e-14, atol=0)
  # cfg.remat reaches the loss: the step's program contains the rematerialised scan body.
  for flag in (False, True):
    cfg = TrainConfig(remat=flag)
    opt = train.make_optimizer(cfg)
    jaxpr = str(jax.make_jaxpr(train.make_train_step(cfg))(params, opt.init(params), xs, ys))
    assert ("remat" in jaxpr or "checkpoint" in jaxpr) == flag


# --------------------------------------------------------------------------- the fused epoch

def test_epoch_is_the_steps_over_the_permutation_and_compiles_once(base_fns):
  opt, step, epoch = base_fns
  params, _, _ = small_problem()
  xs, ys = jnp.asarray(TRAIN[0]), jnp.asarray(TRAIN[1])
  p, s = params, opt.init(params)
  for e in (1, 2, 3):                                 # the same compiled call every epoch
    perm = np.random.default_rng(e).permutation(N)
    p_ref, s_ref, losses_ref = p, s, []
    for i in range(N // B):
      idx = perm[i * B:(i + 1) * B]
      p_ref, s_ref, loss, _ = step(p_ref, s_ref, xs[idx], ys[idx])
      losses_ref.append(loss)
    p, s, losses, finite = epoch(p, s, xs, ys, perm)
    assert losses.shape == (N // B,) and bool(finite.all())
    np.testing.assert_allclose(losses, losses_ref, rtol=1e-5)
    for a, b in zip(p, p_ref):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_epoch_flags_the_first_nonfinite_step(base_fns):
  opt, step, epoch = base_fns
  params, _, _ = small_problem()
  xs, ys = jnp.asarray(TRAIN[0]), jnp.asarray(TRAIN[1])
  perm = jnp.arange(N)
  bad = 2 * B + 3                                      # a window of step 3
  _, _, losses, finite = epoch(params, opt.init(params), xs.at[bad].set(jnp.inf), ys, perm)
  np.testing.assert_array_equal(np.asarray(finite)[:3], [True, True, False])
  p_ref, s_ref, losses_ref = params, opt.init(params), []
  for i in range(2):
    p_ref, s_ref, loss, _ = step(p_ref, s_ref, xs[i * B:(i + 1) * B], ys[i * B:(i + 1) * B])
    losses_ref.append(loss)
  np.testing.assert_allclose(np.asarray(losses)[:2], losses_ref, rtol=1e-5)


def test_batch_larger_than_the_data_uses_all_windows():
  assert train.effective_batch_size(64, 50) == 50
  assert train.effective_batch_size(64, 50, n_devices=4) == 48
  assert train.effective_batch_size(16, 50, n_devices=4) == 16

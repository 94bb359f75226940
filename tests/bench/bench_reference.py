"""What the workload and peer tests share: the tiny config, and the plain optax step written
out here that every variant must train like (a helper module, not collected)."""
from __future__ import annotations

import jax
import numpy as np
import optax
import pytest

from rnn_jax import bench as bm
from rnn_jax.core import model, precision

B, T, H = 2, 4, 8
CFG = bm.BenchConfig(batch_sizes=(B,), windows=(T,), hidden_sizes=(H,), seconds=0.01,
                     repeats=2, fuse_steps=2, fuse_windows=1)
TOL = dict(rtol=2e-5, atol=2e-6)


def _reference_optimizer():
  return optax.chain(optax.clip_by_global_norm(CFG.clip), optax.adam(CFG.lr))


@pytest.fixture(scope="module")
def reference_step():
  """A plain optax step on ``jax.value_and_grad(model.loss)``, written out here, its products
  at the variants' precision (``CFG.precision``: IEEE float32 on every backend, which TOL
  assumes; a GPU's default TF32 would differ by ~1e-3)."""
  opt = _reference_optimizer()

  def step(params, opt_state, xs, ys):
    loss, grads = jax.value_and_grad(model.loss)(params, xs, ys)
    updates, opt_state = opt.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  return jax.jit(precision.with_precision(step, CFG.precision)), opt


def close(a, b):
  jax.tree.map(lambda x, y: np.testing.assert_allclose(np.asarray(x), np.asarray(y), **TOL),
               a, b)

"""The data and parameters a cell trains on, placed on the device before anything is timed:
one batch (``problem``), 16 independently initialised models (``many_models``), and the windows,
permutation and optimizer state of one fused call (``fused_inputs``).
"""
from __future__ import annotations

import jax
import numpy as np

from rnn_jax.bench.config import MODELS, BenchConfig, fused_steps, make_optimizer
from rnn_jax.core import model


def problem(cfg: BenchConfig, batch: int, T: int, H: int, n: int | None = None,
            seed_offset: int = 0):
  """``(params, xs [n,T,D], ys [n,K])`` on the default device; ``n`` defaults to ``batch``.

  Inputs are N(0, 1), targets uniform in [0, 1] (soft occupancies), parameters the notes'
  N(0, 1/fan_in) draw.
  """
  n = batch if n is None else n
  key = jax.random.fold_in(jax.random.PRNGKey(cfg.seed), seed_offset)
  params = model.init_params(key, cfg.input_size, H, cfg.output_size)
  rng = np.random.default_rng([cfg.seed, seed_offset])
  xs = rng.standard_normal((n, T, cfg.input_size), dtype=np.float32)
  ys = rng.random((n, cfg.output_size), dtype=np.float32)
  return jax.block_until_ready(jax.device_put((params, xs, ys)))


def many_models(cfg: BenchConfig, H: int, models: int = MODELS):
  """``models`` independently initialised parameter sets, stacked on a leading axis
  (model i from ``fold_in(PRNGKey(seed + 1), i)``)."""
  base = jax.random.PRNGKey(cfg.seed + 1)
  each = [model.init_params(jax.random.fold_in(base, i), cfg.input_size, H, cfg.output_size)
          for i in range(models)]
  return jax.device_put(jax.tree.map(lambda *a: np.stack([np.asarray(x) for x in a]), *each))


def fused_inputs(cfg: BenchConfig, batch: int, T: int, H: int, models: int | None = None):
  """``(params, opt_state, xs [S*B,T,D], ys, perm)`` of one fused call (perm ``[M, S*B]``
  with a model axis when ``models`` is given), on the device."""
  S = fused_steps(cfg, batch)
  params, xs, ys = problem(cfg, batch, T, H, n=S * batch)
  rng = np.random.default_rng([cfg.seed, 1])
  if models is None:
    perm = rng.permutation(S * batch).astype(np.int32)
  else:
    params = many_models(cfg, H, models)
    perm = np.stack([rng.permutation(S * batch) for _ in range(models)]).astype(np.int32)
  opt = make_optimizer(cfg)
  opt_state = jax.jit(opt.init if models is None else jax.vmap(opt.init))(params)
  return jax.block_until_ready(jax.device_put((params, opt_state, xs, ys, perm))), S

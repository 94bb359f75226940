"""The data and parameters a cell trains on, placed on the device before anything is timed:
one batch (``problem``), 16 independently initialised models (``many_models``), and the windows,
permutation and optimizer state of one fused call (``fused_inputs``). The draws themselves are
the gradient checks' (rnn_jax.testing.rnn_problem): one set of random-problem
generators for the tests and the benchmark.
"""
from __future__ import annotations

import jax
import numpy as np

from rnn_jax.bench.config import MODELS, BenchConfig, fused_steps, make_optimizer
from rnn_jax.testing import rnn_problem


def problem(cfg: BenchConfig, batch: int, T: int, H: int, n: int | None = None,
            seed_offset: int = 0):
  """``(params, xs [n,T,D], ys [n,K])`` on the default device; ``n`` defaults to ``batch``.

  Inputs are N(0, 1), targets uniform in [0, 1] (soft occupancies), parameters the notes'
  N(0, 1/fan_in) draw, in float32.
  """
  n = batch if n is None else n
  drawn = rnn_problem((cfg.seed, seed_offset), T=T, H=H, D=cfg.input_size, K=cfg.output_size,
                      B=n, dtype=np.float32)
  return jax.block_until_ready(jax.device_put(drawn))


def many_models(cfg: BenchConfig, H: int, models: int = MODELS):
  """``models`` independently initialised parameter sets, stacked on a leading axis
  (model i drawn from the seed ``(seed + 1, i)``)."""
  each = [rnn_problem((cfg.seed + 1, i), T=1, H=H, D=cfg.input_size, K=cfg.output_size, B=1,
                      dtype=np.float32)[0] for i in range(models)]
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

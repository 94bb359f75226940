"""What a cell is measured against: the FLOPs of one window, and the machine's rate for the
matrix product that dominates them.

FLOPs per window (sample), counting matrix products only (a multiply-add is 2 FLOPs; the
bias adds, ReLU, masks, loss and optimizer update are O(T H) or O(parameters / B) and left out)::

    forward  = T (2 H^2 + 2 H D) + 2 K H
    training = T (6 H^2 + 4 H D) + 6 K H

Training is the forward pass plus, per step t of the backward pass, ``dL/dh_{t-1} = delta_t U``
(2 H^2), ``grad_U += delta_t^T h_{t-1}`` (2 H^2) and ``grad_V += delta_t^T x_t`` (2 H D), and for
the head ``grad_W = Q^T h_T`` and ``dL/dh_T = Q W`` (2 K H each); ``dL/dx`` is not needed. For
the notes' network (T=24, H=200, D=1, K=3): 1,930,800 forward and 5,782,800 training FLOPs.

The peak. The dominant operation is ``[B,H] x [H,H]``, 24 times in a chain where each product
needs the previous one. ``matmul_peak`` times exactly that in the same run: a jitted
``lax.scan`` of T dependent products ``h <- h @ U`` (U orthogonal, so h neither grows nor
shrinks), scan rolled and fully unrolled, the better of the two. Every row shows its GFLOP/s
and the percentage of that rate for its (B, H, T). For vmap16 the rate of 16 such chains at once
(``[16,B,H] x [16,H,H]`` batched) is measured too (``peak_batched``): at B=1 each step streams all
16 models' U (16 x H^2 x 4 bytes = 2.5 MB for H=200, more than this CPU's L2), so cache
bandwidth, not arithmetic, bounds it.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from rnn_jax.bench.config import BenchConfig
from rnn_jax.bench.timing import Workload, compile_timed, measure

FLOP_FORMULAS = {"forward": "T*(2*H*H + 2*H*D) + 2*K*H",
                 "training": "T*(6*H*H + 4*H*D) + 6*K*H"}


def flops_per_sample(T: int, H: int, D: int = 1, K: int = 3, *, training: bool = True) -> int:
  """Matrix-product FLOPs per window (see the module docstring for the derivation).

  ``forward = T (2H^2 + 2HD) + 2KH``; ``training = T (6H^2 + 4HD) + 6KH``.
  """
  if training:
    return T * (6 * H * H + 4 * H * D) + 6 * K * H
  return T * (2 * H * H + 2 * H * D) + 2 * K * H


def _orthogonal(key, H, models=None):
  shape = (H, H) if models is None else (models, H, H)
  return jnp.linalg.qr(jax.random.normal(key, shape, jnp.float32))[0]


def matmul_peak(cfg: BenchConfig, batch: int, T: int, H: int, *,
                models: int | None = None) -> dict:
  """The attainable rate of T dependent ``[B,H] x [H,H]`` products (``models``: that many at
  once, ``[M,B,H] x [M,H,H]``), GFLOP/s, the better of a rolled and an unrolled scan."""
  key = jax.random.PRNGKey(cfg.seed + 2)
  U = _orthogonal(key, H, models)
  h = jax.random.normal(jax.random.fold_in(key, 1), (batch, H) if models is None
                        else (models, batch, H), jnp.float32)
  product = (lambda h, U: h @ U) if models is None else (
      lambda h, U: jnp.einsum("mbh,mhk->mbk", h, U))
  flops = 2 * batch * H * H * T * (models or 1)
  best = None
  for unroll in (1, T):
    def chain(h, U, unroll=unroll):
      return jax.lax.scan(lambda c, _: (product(c, U), None), h, None, length=T,
                          unroll=unroll)[0]
    jitted, _ = compile_timed(chain, h, U)
    state = [jax.block_until_ready(h)]

    def call(jitted=jitted, state=state):
      state[0] = jitted(state[0], U)
      return state[0]

    r = measure(Workload("peak", 1, call), cfg.seconds / 2, cfg.repeats)
    gflops = r["samples_per_s"] * flops / 1e9
    result = {"batch": batch, "T": T, "H": H, "gflops": gflops, "unroll": unroll,
              "spread": {k: v * flops / 1e9 for k, v in r["spread"].items()}}
    if models is not None:
      result["models"] = models
    if best is None or gflops > best["gflops"]:
      best = result
  return best

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
needs the previous one. ``chain_workloads`` builds exactly that, timed in the same run beside
the variants: a jitted ``lax.scan`` of T dependent products ``h <- h @ U`` (U orthogonal, so h
neither grows nor shrinks), scan rolled and fully unrolled; ``chain_peak`` keeps the better.
Every row shows its GFLOP/s and the percentage of that rate for its (B, H, T). For vmap16 the rate of 16 such chains at once
(``[16,B,H] x [16,H,H]`` batched) is measured too (``peak_batched``): at B=1 each step streams all
16 models' U (16 x H^2 x 4 bytes = 2.5 MB for H=200, more than this CPU's L2), so cache
bandwidth, not arithmetic, bounds it.

The dense rate. Nothing can run faster than the machine's dense fp32 GEMM rate, so that is the
honest ceiling of every record (``pct_dense``): ``dense_peak`` times square products
``[n,n] x [n,n]`` (n = ``--dense-size`` and its half and quarter, once per run: the best n
depends on the caches) and the cell's own ``[T*B,H] x [H,H]`` as one product (independent
rows), and keeps the highest, or the chain peak where that is higher still (a chain is matrix
products too; at B=1024 its [B,H] operand stays in cache where the [T*B,H] one does not). They
take the fastest repetition (noise only slows a repetition down), the records their median. A record
above the dense rate means a wrong measurement: ``check_below_dense`` raises ``CeilingError``.

The roofline. Of the training FLOPs, the forward recurrence ``h_{t-1} U^T`` and the backward
``dL/dh_{t-1} = delta_t U`` are T products each where every product needs the previous one:
at best the chain rate (``chain_peak``). The rest (``grad_U``, ``grad_V``, the input term
``x V^T``, the head) need not be: each can be one large GEMM over all T*B rows, at the dense
rate. ``flop_split`` divides the FLOPs so; ``roofline`` turns the two rates into the fastest
time per window, ``chain / chain rate + dense / dense rate``, and a record's share of it is
``pct_roofline`` (the serial sum: work overlapped across cores can exceed it; not asserted).
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


def chain_workloads(cfg: BenchConfig, batch: int, T: int, H: int, *,
                    models: int | None = None) -> list[Workload]:
  """The chain peak's workloads: T dependent ``[B,H] x [H,H]`` products (``models``: that many
  chains at once, ``[M,B,H] x [M,H,H]``) as a jitted ``lax.scan``, rolled and fully unrolled;
  ``info`` holds each one's ``unroll`` and FLOPs per call."""
  key = jax.random.PRNGKey(cfg.seed + 2)
  U = _orthogonal(key, H, models)
  h = jax.random.normal(jax.random.fold_in(key, 1), (batch, H) if models is None
                        else (models, batch, H), jnp.float32)
  product = (lambda h, U: h @ U) if models is None else (
      lambda h, U: jnp.einsum("mbh,mhk->mbk", h, U))
  flops = 2 * batch * H * H * T * (models or 1)
  works = []
  for unroll in (1, T):
    def chain(h, U, unroll=unroll):
      return jax.lax.scan(lambda c, _: (product(c, U), None), h, None, length=T,
                          unroll=unroll)[0]
    jitted, _ = compile_timed(chain, h, U)
    state = [jax.block_until_ready(h)]

    def call(jitted=jitted, state=state):
      state[0] = jitted(state[0], U)
      return state[0]

    works.append(Workload("peak", 1, call, info={"unroll": unroll, "flops": flops}))
  return works


def chain_peak(works: list[Workload], results: list[dict], batch: int, T: int, H: int, *,
               models: int | None = None) -> dict:
  """The better of ``chain_workloads``' two timings (``results``, in the same order), GFLOP/s:
  ``{"batch", "T", "H", "gflops", "unroll", "spread"[, "models"]}``."""
  best = None
  for work, r in zip(works, results, strict=True):
    flops = work.info["flops"]
    result = {"batch": batch, "T": T, "H": H, "gflops": r["samples_per_s"] * flops / 1e9,
              "unroll": work.info["unroll"],
              "spread": {k: v * flops / 1e9 for k, v in r["spread"].items()}}
    if models is not None:
      result["models"] = models
    if best is None or result["gflops"] > best["gflops"]:
      best = result
  return best


class CeilingError(RuntimeError):
  """A record ran faster than the dense GEMM rate of this machine: the measurement is wrong."""


def flop_split(T: int, H: int, D: int = 1, K: int = 3, *, training: bool = True
               ) -> tuple[int, int]:
  """``(chain, dense)`` FLOPs per window: the dependent ``[B,H]x[H,H]`` products (2 H^2 T for
  the forward recurrence, as much again for the backward dL/dh recursion when training), and
  everything else in ``flops_per_sample`` (grad_U, grad_V, the input term, the head)."""
  chain = 2 * H * H * T * (2 if training else 1)
  return chain, flops_per_sample(T, H, D, K, training=training) - chain


def roofline(chain_flops: float, dense_flops: float, chain_gflops: float,
             dense_gflops: float) -> dict:
  """The fastest a window can go: the chain at ``chain_gflops``, the rest at ``dense_gflops``.

  Returns ``{"samples_per_s", "gflops", "chain_s", "dense_s"}`` (seconds per window).
  """
  chain_s = chain_flops / (chain_gflops * 1e9)
  dense_s = dense_flops / (dense_gflops * 1e9)
  seconds = chain_s + dense_s
  return {"samples_per_s": 1.0 / seconds, "gflops": (chain_flops + dense_flops) / seconds / 1e9,
          "chain_s": chain_s, "dense_s": dense_s}


def _best_gflops(cfg: BenchConfig, fn, args, flops: int) -> float:
  """GFLOP/s of ``fn(*args)`` (compiled, independent calls), its fastest repetition."""
  jitted, _ = compile_timed(fn, *args)
  r = measure(Workload("dense", 1, lambda: jitted(*args), independent=True), cfg.seconds / 2,
              cfg.repeats)
  return r["spread"]["max"] * flops / 1e9


def square_peak(cfg: BenchConfig) -> dict:
  """The best rate of ``[n,n] x [n,n]`` fp32 products for ``n = cfg.dense_size`` and its half
  and quarter: ``{"n": the best n, "gflops", "by_n": {n: gflops}}``."""
  key = jax.random.PRNGKey(cfg.seed + 3)
  by_n = {}
  for n in sorted({max(1, cfg.dense_size // 4), max(1, cfg.dense_size // 2), cfg.dense_size}):
    a, b = (jax.random.normal(k, (n, n), jnp.float32) for k in jax.random.split(key))
    by_n[n] = _best_gflops(cfg, jnp.matmul, (a, b), 2 * n ** 3)
  best = max(by_n, key=by_n.get)
  return {"n": best, "gflops": by_n[best], "by_n": {str(n): g for n, g in by_n.items()}}


def dense_peak(cfg: BenchConfig, batch: int, T: int, H: int, square: dict,
               chain: dict | None = None) -> dict:
  """The dense rate for a cell: the best of ``square`` (``square_peak``), one
  ``[T*B,H] x [H,H]`` product and, when given, the cell's ``chain`` peak (``chain_peak``)."""
  key = jax.random.PRNGKey(cfg.seed + 4)
  rows = jax.random.normal(key, (T * batch, H), jnp.float32)
  U = _orthogonal(jax.random.fold_in(key, 1), H)
  rows_gflops = _best_gflops(cfg, jnp.matmul, (rows, U), 2 * T * batch * H * H)
  chain_gflops = chain["gflops"] if chain else 0.0
  return {"batch": batch, "T": T, "H": H, "rows_gflops": rows_gflops,
          "square_gflops": square["gflops"], "chain_gflops": chain_gflops,
          "gflops": max(rows_gflops, square["gflops"], chain_gflops)}


def check_below_dense(record: dict) -> None:
  """Raises ``CeilingError`` naming the cell if ``record["pct_dense"]`` exceeds 100."""
  if not record["pct_dense"] <= 100.0:
    raise CeilingError(
        f"{record['variant']} B={record['batch']} T={record['T']} H={record['H']}: "
        f"{record['gflops']:.1f} GFLOP/s is {record['pct_dense']:.1f}% of the dense GEMM rate "
        f"{record['dense_gflops']:.1f} GFLOP/s measured in this run; nothing runs faster than "
        "that, so a measurement is wrong (a busy machine while the dense rate was timed?)")

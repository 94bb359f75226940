"""What a cell is measured against (docs/benchmarking.md, "Method" and "FLOP count"): FLOPs per
window (matrix products only), the chain peak, the dense rate and the roofline. Ceilings take
the fastest repetition (noise only slows one down), records their median.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from rnn_jax.bench.config import BenchConfig
from rnn_jax.bench.timing import Workload, compile_timed, measure

FLOP_FORMULAS = {"forward": "T*(2*H*H + 2*H*D) + 2*K*H",
                 "training": "T*(6*H*H + 4*H*D) + 6*K*H"}


def flops_per_sample(T: int, H: int, D: int = 1, K: int = 3, *, training: bool = True) -> int:
  """Matrix-product FLOPs per window (``FLOP_FORMULAS``)."""
  if training:
    return T * (6 * H * H + 4 * H * D) + 6 * K * H
  return T * (2 * H * H + 2 * H * D) + 2 * K * H


def flop_split(T: int, H: int, D: int = 1, K: int = 3, *, training: bool = True
               ) -> tuple[int, int]:
  """``(chain, dense)`` FLOPs per window: the dependent products ``h U`` (2 H^2 T forward, as
  much again backward, ``delta_t U``, when training) and the rest of ``flops_per_sample``."""
  chain = 2 * H * H * T * (2 if training else 1)
  return chain, flops_per_sample(T, H, D, K, training=training) - chain


def _orthogonal(key, H, models=None):
  shape = (H, H) if models is None else (models, H, H)
  return jnp.linalg.qr(jax.random.normal(key, shape, jnp.float32))[0]


def chain_workloads(cfg: BenchConfig, batch: int, T: int, H: int, *,
                    models: int | None = None) -> list[Workload]:
  """The chain peak's workloads: T dependent ``[B,H] x [H,H]`` products ``h <- h @ U``, the
  operation that dominates the RNN with its dependency chain (``models`` chains at once:
  ``[M,B,H] x [M,H,H]``), in a jitted ``lax.scan``, rolled and fully unrolled."""
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
  """The better of ``chain_workloads``' two ``results``: ``{"batch", "T", "H", "gflops",
  "unroll", "spread"[, "models"]}``."""
  work, r = max(zip(works, results, strict=True), key=lambda wr: wr[1]["samples_per_s"])
  flops = work.info["flops"]
  best = {"batch": batch, "T": T, "H": H, "gflops": r["samples_per_s"] * flops / 1e9,
          "unroll": work.info["unroll"],
          "spread": {k: v * flops / 1e9 for k, v in r["spread"].items()}}
  return best if models is None else dict(best, models=models)


def _best_gflops(cfg: BenchConfig, fn, args, flops: int) -> float:
  """GFLOP/s of ``fn(*args)`` (compiled, independent calls), its fastest repetition."""
  jitted, _ = compile_timed(fn, *args)
  r = measure(Workload("dense", 1, lambda: jitted(*args), independent=True), cfg.seconds / 2,
              cfg.repeats)
  return r["spread"]["max"] * flops / 1e9


def square_peak(cfg: BenchConfig) -> dict:
  """The best rate of ``[n,n] x [n,n]`` products, n = ``dense_size``, its half and quarter (the
  best n depends on the caches): ``{"n", "gflops", "by_n": {n: gflops}}``."""
  key = jax.random.PRNGKey(cfg.seed + 3)
  by_n = {}
  for n in sorted({max(1, cfg.dense_size // 4), max(1, cfg.dense_size // 2), cfg.dense_size}):
    a, b = (jax.random.normal(k, (n, n), jnp.float32) for k in jax.random.split(key))
    by_n[n] = _best_gflops(cfg, jnp.matmul, (a, b), 2 * n ** 3)
  best = max(by_n, key=by_n.get)
  return {"n": best, "gflops": by_n[best], "by_n": {str(n): g for n, g in by_n.items()}}


def dense_peak(cfg: BenchConfig, batch: int, T: int, H: int, square: dict,
               chain: dict | None = None) -> dict:
  """The dense rate of a cell, faster than which nothing runs: the best of ``square``, one
  ``[T*B,H] x [H,H]`` product and the cell's ``chain`` peak (matrix products too; at B=1024
  its operand stays in cache)."""
  key = jax.random.PRNGKey(cfg.seed + 4)
  rows = jax.random.normal(key, (T * batch, H), jnp.float32)
  U = _orthogonal(jax.random.fold_in(key, 1), H)
  rows_gflops = _best_gflops(cfg, jnp.matmul, (rows, U), 2 * T * batch * H * H)
  chain_gflops = chain["gflops"] if chain else 0.0
  return {"batch": batch, "T": T, "H": H, "rows_gflops": rows_gflops,
          "square_gflops": square["gflops"], "chain_gflops": chain_gflops,
          "gflops": max(rows_gflops, square["gflops"], chain_gflops)}


def roofline(chain_flops: float, dense_flops: float, chain_gflops: float,
             dense_gflops: float) -> dict:
  """The fastest a window can go, the chain at ``chain_gflops`` then the rest at
  ``dense_gflops`` (added serially): ``{"samples_per_s", "gflops", "chain_s", "dense_s"}``."""
  chain_s = chain_flops / (chain_gflops * 1e9)
  dense_s = dense_flops / (dense_gflops * 1e9)
  seconds = chain_s + dense_s
  return {"samples_per_s": 1.0 / seconds, "gflops": (chain_flops + dense_flops) / seconds / 1e9,
          "chain_s": chain_s, "dense_s": dense_s}


class CeilingError(RuntimeError):
  """A record ran faster than the dense GEMM rate of this machine: the measurement is wrong."""


def check_below_dense(record: dict) -> None:
  """Raises ``CeilingError`` naming the cell if ``record["pct_dense"]`` exceeds 100."""
  if not record["pct_dense"] <= 100.0:
    raise CeilingError(
        f"{record['variant']} B={record['batch']} T={record['T']} H={record['H']}: "
        f"{record['gflops']:.1f} GFLOP/s is {record['pct_dense']:.1f}% of the dense GEMM rate "
        f"{record['dense_gflops']:.1f} GFLOP/s measured in this run; nothing runs faster than "
        "that, so a measurement is wrong (a busy machine while the dense rate was timed?)")

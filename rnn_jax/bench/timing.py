"""How a cell is timed (``Workload``, ``measure``) and what it is measured against: FLOPs per
window (matrix products only), the chain peak, the dense rate and the roofline
(docs/benchmarking.md, "Method" and "FLOP count"). Compile time is reported apart. A record is
the median repetition, a ceiling the fastest (noise only slows one down). Every program and
ceiling is traced at ``cfg.precision`` (rnn_jax.core.precision), and every call's outputs are
waited for (``Workload.block``: ``jax.block_until_ready``; the torch peer's loss, after
``torch.cuda.synchronize()`` on CUDA) before a repetition's clock stops."""
from __future__ import annotations

import collections
import dataclasses
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from rnn_jax.bench.config import BenchConfig
from rnn_jax.core import precision


@dataclasses.dataclass
class Workload:
  """``call()`` does ``samples_per_call`` windows of work and returns what ``block`` waits for."""
  variant: str
  samples_per_call: int
  call: Callable[[], Any]
  block: Callable[[Any], Any] = jax.block_until_ready
  independent: bool = False      # calls do not feed each other: each output is waited for
  compile_s: float | None = None
  info: dict = dataclasses.field(default_factory=dict)


# Independent calls left outstanding as the next is issued. % of the chain peak, forward, T=24,
# H=200, B=32 / 256 / 1024, side by side: waiting after each call 81.8 / 91.5 / 90.6, one
# outstanding 95.4 / 92.0 / 92.2, four 93.5 / 93.0 / 93.0.
IN_FLIGHT = 1


def compile_timed(fn: Callable, *args):
  """``(jax.jit(fn), seconds to lower and compile it for args)``; a jitted ``fn`` is kept."""
  jitted = fn if hasattr(fn, "lower") else jax.jit(fn)
  t0 = time.perf_counter()
  jitted.lower(*args).compile()
  return jitted, time.perf_counter() - t0


def measure(work: Workload, seconds: float, repeats: int) -> dict:
  """``work`` timed alone: ``{samples_per_s (median), spread, calls, per_repeat}``."""
  return measure_side_by_side([work], seconds, repeats)[0]


def measure_side_by_side(works: list[Workload], seconds, repeats: int) -> list[dict]:
  """``measure`` of several in rounds (one repetition of each per round), so a slow moment of a
  shared machine falls on all of them; ``seconds``: one number or one per workload."""
  if isinstance(seconds, (int, float)):
    seconds = [seconds] * len(works)
  calls = []
  for work, s in zip(works, seconds, strict=True):
    work.block(work.call())                        # warm-up: allocation, page-in
    per_repeat_s, k, t0 = s / repeats, 0, time.perf_counter()
    while True:
      work.block(work.call())
      k += 1
      elapsed = time.perf_counter() - t0
      if elapsed >= 0.02 or k >= 3 or elapsed >= per_repeat_s:
        break
    calls.append(max(1, int(round(per_repeat_s / max(elapsed / k, 1e-9)))))
  rates = [[] for _ in works]
  for _ in range(repeats):
    for work, n, r in zip(works, calls, rates):
      r.append(_repetition(work, n))
  results = []
  for r, n in zip(rates, calls):
    r = np.asarray(r)
    q1, med, q3 = np.percentile(r, [25, 50, 75])
    results.append({"samples_per_s": float(med),
                    "spread": {"min": float(r.min()), "q1": float(q1), "q3": float(q3),
                               "max": float(r.max())}, "calls": n, "per_repeat": r.tolist()})
  return results


def _repetition(work: Workload, n: int) -> float:
  """One timed repetition of ``n`` calls; samples per second."""
  call, block = work.call, work.block
  out, pending = None, collections.deque()
  t0 = time.perf_counter()
  for _ in range(n):
    out = call()
    if work.independent:
      pending.append(out)
      if len(pending) > IN_FLIGHT:
        block(pending.popleft())
  block(list(pending) if work.independent else out)
  return n * work.samples_per_call / (time.perf_counter() - t0)


FLOP_FORMULAS = {"forward": "T*(2*H*H + 2*H*D) + 2*K*H",
                 "training": "T*(6*H*H + 4*H*D) + 6*K*H"}


def flops_per_sample(T: int, H: int, D: int = 1, K: int = 3, *, training: bool = True) -> int:
  """Matrix-product FLOPs per window (``FLOP_FORMULAS``)."""
  if training:
    return T * (6 * H * H + 4 * H * D) + 6 * K * H
  return T * (2 * H * H + 2 * H * D) + 2 * K * H


def flop_split(T: int, H: int, D: int = 1, K: int = 3, *, training: bool = True
               ) -> tuple[int, int]:
  """``(chain, dense)`` FLOPs per window: ``h U`` and (training) ``delta_t U``, 2 H^2 T each."""
  chain = 2 * H * H * T * (2 if training else 1)
  return chain, flops_per_sample(T, H, D, K, training=training) - chain


def _orthogonal(key, H, models=None):
  shape = (H, H) if models is None else (models, H, H)
  return jnp.linalg.qr(jax.random.normal(key, shape, jnp.float32))[0]


def chain_workloads(cfg: BenchConfig, batch: int, T: int, H: int, *,
                    models: int | None = None) -> list[Workload]:
  """The chain peak: T dependent ``h <- h @ U``, ``[B,H] x [H,H]`` (``models``: ``[M,B,H] x
  [M,H,H]``), the RNN's dominant op, in a jitted ``lax.scan``, rolled and fully unrolled."""
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
    jitted, _ = compile_timed(precision.with_precision(chain, cfg.precision), h, U)
    state = [jax.block_until_ready(h)]

    def call(jitted=jitted, state=state):
      state[0] = jitted(state[0], U)
      return state[0]

    works.append(Workload("peak", 1, call, info={"unroll": unroll, "flops": flops}))
  return works


def chain_peak(works: list[Workload], results: list[dict], batch: int, T: int, H: int, *,
               models: int | None = None) -> dict:
  """The faster of ``chain_workloads``' two ``results``, in GFLOP/s."""
  work, r = max(zip(works, results, strict=True), key=lambda wr: wr[1]["samples_per_s"])
  flops = work.info["flops"]
  best = {"batch": batch, "T": T, "H": H, "gflops": r["samples_per_s"] * flops / 1e9,
          "unroll": work.info["unroll"],
          "spread": {k: v * flops / 1e9 for k, v in r["spread"].items()}}
  return best if models is None else dict(best, models=models)


def _best_gflops(cfg: BenchConfig, fn, args, flops: int) -> float:
  """GFLOP/s of ``fn(*args)`` (compiled at ``cfg.precision``, independent calls), its fastest
  repetition."""
  jitted, _ = compile_timed(precision.with_precision(fn, cfg.precision), *args)
  r = measure(Workload("dense", 1, lambda: jitted(*args), independent=True), cfg.seconds / 2,
              cfg.repeats)
  return r["spread"]["max"] * flops / 1e9


def square_peak(cfg: BenchConfig) -> dict:
  """Best GFLOP/s of ``[n,n] x [n,n]``, n = ``dense_size``, half, quarter (caches decide)."""
  key = jax.random.PRNGKey(cfg.seed + 3)
  by_n = {}
  for n in sorted({max(1, cfg.dense_size // 4), max(1, cfg.dense_size // 2), cfg.dense_size}):
    a, b = (jax.random.normal(k, (n, n), jnp.float32) for k in jax.random.split(key))
    by_n[n] = _best_gflops(cfg, jnp.matmul, (a, b), 2 * n ** 3)
  best = max(by_n, key=by_n.get)
  return {"n": best, "gflops": by_n[best], "by_n": {str(n): g for n, g in by_n.items()}}


def dense_peak(cfg: BenchConfig, batch: int, T: int, H: int, square: dict, chain: dict) -> dict:
  """The cell's dense rate, nothing runs faster: the best of ``square``, one ``[T*B,H] x [H,H]``
  and the ``chain`` peak (matrix products too; at B=1024 its operand stays in cache)."""
  key = jax.random.PRNGKey(cfg.seed + 4)
  rows = jax.random.normal(key, (T * batch, H), jnp.float32)
  U = _orthogonal(jax.random.fold_in(key, 1), H)
  rows_gflops = _best_gflops(cfg, jnp.matmul, (rows, U), 2 * T * batch * H * H)
  return {"batch": batch, "T": T, "H": H, "rows_gflops": rows_gflops,
          "square_gflops": square["gflops"], "chain_gflops": chain["gflops"],
          "gflops": max(rows_gflops, square["gflops"], chain["gflops"])}


def roofline(chain_flops: float, dense_flops: float, chain_gflops: float,
             dense_gflops: float) -> dict:
  """Fastest a window can go: the chain at ``chain_gflops``, then the rest at ``dense_gflops``."""
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

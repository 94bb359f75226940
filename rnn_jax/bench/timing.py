"""How one cell is timed: a ``Workload`` (the call), its compile time, and ``measure``.

The compile time (``lower().compile()``) is reported on its own and never counted. ``measure``
runs the workload once as warm-up and at least once more to calibrate how many calls ``n`` fill
the time (neither counted), then times ``repeats`` repetitions of ``n`` back-to-back calls,
waiting for the result at the end of each. Training calls feed each other, so waiting for the
last waits for all; ``independent`` calls (``forward``, the dense products) are timed as a
stream, each output waited for once ``IN_FLIGHT`` newer calls are issued. The throughput is the
median over the repetitions; the spread is their min, quartiles and max.
"""
from __future__ import annotations

import collections
import dataclasses
import time
from typing import Any, Callable

import jax
import numpy as np


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


# Outputs of independent calls left outstanding while the next is issued: the device always has
# the next call queued (no host round trip between calls). Measured side by side (T=24, H=200,
# forward, % of the chain peak at B=32 / 256 / 1024): waiting after each call 81.8 / 91.5 /
# 90.6%, one outstanding 95.4 / 92.0 / 92.2%, four 93.5 / 93.0 / 93.0%.
IN_FLIGHT = 1


def compile_timed(fn: Callable, *args):
  """``(jax.jit(fn), seconds to trace, lower and compile it for args)``; later calls find the
  executable in JAX's cache. A function jitted already (with shardings, say) is kept as is."""
  jitted = fn if hasattr(fn, "lower") else jax.jit(fn)
  t0 = time.perf_counter()
  jitted.lower(*args).compile()
  return jitted, time.perf_counter() - t0


def measure(work: Workload, seconds: float, repeats: int) -> dict:
  """Times ``work`` alone: ``{"samples_per_s": median, "spread": {min, q1, q3, max},
  "calls": n per repetition, "per_repeat": [...]}``."""
  return measure_side_by_side([work], seconds, repeats)[0]


def measure_side_by_side(works: list[Workload], seconds, repeats: int) -> list[dict]:
  """``measure`` of several workloads in rounds, one repetition of each per round, ``seconds``
  (one number, or one per workload) for each. A slow moment of a shared machine falls on every
  workload of that round, so the ratios between them do not depend on when each ran."""
  if isinstance(seconds, (int, float)):
    seconds = [seconds] * len(works)
  calls = []
  for work, s in zip(works, seconds, strict=True):
    work.block(work.call())                        # warm-up: allocation, page-in
    # calibration: blocked calls for >= 20 ms or 3 calls (or the whole repetition's time)
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


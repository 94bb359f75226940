"""``rnn_jax.bench.timing.measure``'s counting and blocking, with fake calls (nothing is timed)."""
from __future__ import annotations

from rnn_jax import bench as bm


def test_measure_blocks_and_counts_without_timing_anything():
  calls, blocked = [], []
  work = bm.Workload("fake", 3, lambda: calls.append(1) or len(calls),
                     block=lambda x: blocked.append(x) or x)
  r = bm.measure(work, seconds=0.002, repeats=3)
  assert len(r["per_repeat"]) == 3 and r["calls"] >= 1
  # warm-up (1) and calibration (>= 1) are not timed; every repetition ends with a block
  assert len(calls) >= 2 + 3 * r["calls"]
  assert blocked[-1] == len(calls)
  blocked.clear()
  bm.measure(bm.Workload("fake", 1, lambda: 0, block=lambda x: blocked.append(x),
                         block_each=True), seconds=0.002, repeats=2)
  assert len(blocked) >= 2 + 2 * 2                           # after every call

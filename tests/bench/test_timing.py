"""``rnn_jax.bench.timing.measure``'s counting and blocking, with fake calls (nothing is timed)."""
from __future__ import annotations

from rnn_jax import bench as bm
from rnn_jax.bench import timing


def test_measure_blocks_and_counts_without_timing_anything():
  calls, blocked = [], []
  work = bm.Workload("fake", 3, lambda: calls.append(1) or len(calls),
                     block=lambda x: blocked.append(x) or x)
  r = bm.measure(work, seconds=0.002, repeats=3)
  assert len(r["per_repeat"]) == 3 and r["calls"] >= 1
  # warm-up (1) and calibration (>= 1) are not timed; every repetition ends with a block
  assert len(calls) >= 2 + 3 * r["calls"]
  assert blocked[-1] == len(calls)


def test_independent_calls_are_all_waited_for_with_a_bounded_number_in_flight():
  # A stream of independent calls: every output is blocked on (none still running when the
  # clock stops), the oldest as soon as more than IN_FLIGHT are outstanding, the rest at the end.
  issued, waited = [], []

  def call():
    issued.append(len(issued))
    outstanding = len(issued) - len(waited)
    assert outstanding <= timing.IN_FLIGHT + 1, outstanding
    return issued[-1]

  def block(x):
    waited.extend(x if isinstance(x, list) else [x])
    return x

  r = bm.measure(bm.Workload("fake", 1, call, block=block, independent=True),
                 seconds=0.002, repeats=2)
  assert r["calls"] > timing.IN_FLIGHT                      # the window was exercised
  assert sorted(waited) == issued                           # each output waited for once


def test_jax_workloads_wait_with_block_until_ready():
  """Every JAX cell waits for its outputs with jax.block_until_ready (a GPU runs kernels
  asynchronously: a clock stopped at dispatch would time the host)."""
  import jax
  from bench_reference import B, CFG, H, T
  for variant in ("autodiff", "fused", "forward"):
    assert bm.build(CFG, variant, B, T, H).block is jax.block_until_ready, variant

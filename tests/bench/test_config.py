"""Values ``rnn_jax.bench.config`` derives from a ``BenchConfig`` (its flag errors are tested
through the script, in test_suite.py)."""
from __future__ import annotations

from rnn_jax import bench as bm


def test_fused_steps_stay_within_bounds():
  cfg = bm.BenchConfig(fuse_steps=64, fuse_windows=4096)
  assert [bm.fused_steps(cfg, b) for b in (1, 32, 256, 1024, 4096, 8192)] == [64, 64, 16, 4, 2, 2]

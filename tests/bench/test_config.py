"""``rnn_jax.bench.config``: a ``BenchConfig``'s checks (one line naming the flag; through the
script in test_suite.py) and the values derived from it."""
from __future__ import annotations

import numpy as np
import pytest

from rnn_jax import bench as bm
from rnn_jax.common.errors import InputError


def test_fused_steps_stay_within_bounds():
  cfg = bm.BenchConfig(fuse_steps=64, fuse_windows=4096)
  assert [bm.fused_steps(cfg, b) for b in (1, 32, 256, 1024, 4096, 8192)] == [64, 64, 16, 4, 2, 2]


@pytest.mark.parametrize("kwargs,message", [
    (dict(batch_sizes=(1, 0)), "--batch-sizes: expected positive integers, got 0"),
    (dict(windows=()), "--windows: expected a comma-separated list of positive integers, got ()"),
    (dict(hidden_sizes=(True,)), "--hidden-sizes: expected positive integers, got True"),
    (dict(fuse_steps=1), "--fuse-steps: expected an integer >= 2, got 1"),
    (dict(seed=-1), "--seed: expected an integer >= 0, got -1"),
    (dict(repeats=2.5), "--repeats: expected a positive integer, got 2.5"),
    (dict(seconds=0), "--seconds: expected a finite positive number, got 0"),
    (dict(lr=float("nan")), "--lr: expected a finite positive number, got nan"),
    (dict(clip=-1), "--clip: expected a finite number >= 0 (0 = off), got -1"),
    (dict(optimizer="rmsprop"), "--optimizer: expected one of sgd, adam, got 'rmsprop'"),
    (dict(grad="numeric"), "--grad: expected one of autodiff, hand, got 'numeric'"),
    (dict(precision="fp16"),
     "--precision: expected one of highest, tf32, bf16, default, got 'fp16'"),
    (dict(remat_memory=1), "--remat-memory: expected true or false, got 1"),
])
def test_config_refuses_with_one_line_naming_the_flag(kwargs, message):
  with pytest.raises(InputError) as err:
    bm.BenchConfig(**kwargs)
  assert str(err.value) == message


def test_config_stores_checked_values():
  """Lists become tuples, whole floats ints (a config read back from JSON); clip 0 is off."""
  cfg = bm.BenchConfig(batch_sizes=[1, 32.0], repeats=3.0, seed=np.int64(2), clip=0, grad="hand")
  assert cfg.batch_sizes == (1, 32) and all(type(b) is int for b in cfg.batch_sizes)
  assert (cfg.repeats, cfg.seed) == (3, 2) and type(cfg.repeats) is int and type(cfg.seed) is int
  assert cfg.clip == 0 and cfg.grad == "hand"

"""Shared by the rnn_jax.train tests: a tiny problem and the helpers that compare runs.

Sizes are tiny (N=50 windows of T=5 steps, H=6) and most fit() runs share one configuration
(BASE below: only epochs, patience and seed vary, which do not change the compiled program),
so the compiled code is reused across tests.
"""
from __future__ import annotations

import json

import jax
import numpy as np

from rnn_jax.train import TrainConfig

N, T, D, K, H, B = 50, 5, 2, 3, 6, 8        # 6 steps per epoch, 2 windows dropped
BASE = TrainConfig(hidden_size=H, batch_size=B, lr=3e-2, epochs=6, patience=0, seed=0)


def make_data(n, seed, flip=False):
  """Windows whose targets depend on the inputs (so training has something to learn)."""
  rng = np.random.default_rng(seed)
  xs = rng.uniform(0, 1, (n, T, D)).astype(np.float32)
  m = xs.mean(axis=(1, 2))
  ys = np.stack([m, xs[:, -1, 0], 1 - m], axis=1).astype(np.float32)
  if flip:                                   # a validation set that disagrees with training
    ys = 1 - ys
  return xs, ys


TRAIN = make_data(N, 0)
VAL = make_data(20, 1)


def evaluate(params):
  """A stand-in for a caller's metric (e.g. validation MAE): here a norm, computed by numpy."""
  return {"u_norm": float(np.linalg.norm(np.asarray(params.U)))}


def strip_time(history):
  return [{k: v for k, v in row.items() if k != "elapsed_s"} for row in history]


def assert_trees_equal(a, b):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def read_metrics(path):
  return [json.loads(line) for line in path.read_text().splitlines()]

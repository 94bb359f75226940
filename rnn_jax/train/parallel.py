"""Data-parallel training over a 1-D ``jax.sharding.Mesh`` (axis ``'data'``): parameters,
optimizer state and data replicated, each step's batch ``[B, T, D]`` split along B; XLA's SPMD
partitioner inserts the all-reduce of the gradient (the mean of the per-device batch-mean
gradients is the single-device gradient, up to the order of the float additions).

Multi-host: every process calls ``jax.distributed.initialize`` first and runs the same program on
the same data and flags (README, "Several processes"); ``data_mesh`` spans every host's devices
and only process 0 writes. tests/train/test_multiprocess.py runs two processes."""
from __future__ import annotations

from typing import Any, Callable

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from rnn_jax.common.errors import InputError

AXIS = "data"


def device_count(devices: int | None = None) -> int:
  """How many devices ``devices`` asks for: None or 0 = all of ``jax.devices()``."""
  available = jax.device_count()
  if devices is None or devices == 0:
    return available
  if devices > available:
    raise InputError(f"--devices: asked for {devices} devices, only {available} available "
                     f"({jax.devices()[0].platform})")
  return int(devices)


def data_mesh(devices: int | None = None) -> Mesh:
  """A 1-D mesh over the first ``device_count(devices)`` devices, axis name ``'data'``."""
  n = device_count(devices)
  return Mesh(np.asarray(jax.devices()[:n]), (AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis split over the mesh, the rest whole."""
  return NamedSharding(mesh, P(AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  """Every device holds the whole array."""
  return NamedSharding(mesh, P())


def put(tree: Any, sharding: NamedSharding) -> Any:
  """Places every array leaf of ``tree`` with ``sharding`` (multi-host safe)."""
  def one(x):
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])
  return jax.tree.map(one, tree)


def constrain_batch(x: jax.Array, mesh: Mesh | None) -> jax.Array:
  """Inside jit: asks for ``x`` split along its leading axis (identity when ``mesh`` is None)."""
  if mesh is None:
    return x
  return jax.lax.with_sharding_constraint(x, batch_sharding(mesh))


def replicate(tree: Any, mesh: Mesh | None) -> Any:
  """Inside jit: every leaf of ``tree`` whole on every device (identity when ``mesh`` is None)."""
  if mesh is None:
    return tree
  return jax.lax.with_sharding_constraint(tree, replicated(mesh))


def shard_step(step: Callable, mesh: Mesh) -> Callable:
  """``jax.jit`` of a ``step(params, opt_state, xs, ys) -> (params, opt_state, loss, finite)``
  with parameters and state replicated and the batch (a multiple of the devices) sharded."""
  rep, data = replicated(mesh), batch_sharding(mesh)
  return jax.jit(step, in_shardings=(rep, rep, data, data), out_shardings=rep)

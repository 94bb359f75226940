"""The arrays fit receives, checked before anything is compiled: each ``(xs [N,T,D], ys [N,K])``
pair (an InputError naming the bad array), validation against training, and the batch against
the data and the devices; and their fingerprint, which ``--resume`` compares."""
from __future__ import annotations

import hashlib

import jax
import jax.numpy as jnp
import numpy as np

from rnn_jax.common.errors import InputError
from rnn_jax.train import parallel
from rnn_jax.train.config import TrainConfig
from rnn_jax.train.step import effective_batch_size


def check_pair(name: str, pair) -> tuple[np.ndarray, np.ndarray]:
  """``pair = (xs [N,T,D], ys [N,K])`` as numpy arrays of finite numbers, else InputError."""
  try:
    xs, ys = pair
  except (TypeError, ValueError):
    raise InputError(f"{name}: expected a pair (xs, ys)") from None
  xs, ys = np.asarray(xs), np.asarray(ys)
  if xs.ndim != 3 or xs.shape[0] < 1 or xs.shape[1] < 1 or xs.shape[2] < 1:
    raise InputError(f"{name} xs: expected shape [N, T, D] with N, T, D >= 1, "
                     f"got {list(xs.shape)}")
  if ys.ndim != 2 or ys.shape[0] != xs.shape[0] or ys.shape[1] < 1:
    raise InputError(f"{name} ys: expected shape [{xs.shape[0]}, K], got {list(ys.shape)}")
  for what, a in (("xs", xs), ("ys", ys)):
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
      raise InputError(f"{name} {what}: expected numbers, got dtype {a.dtype}")
    if not np.all(np.isfinite(a)):
      raise InputError(f"{name} {what}: contains NaN or infinite values")
  return xs, ys


def check_data(train, val) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """``(xs, ys, vxs, vys)``: both pairs checked, val with train's D inputs and K outputs."""
  xs, ys = check_pair("train", train)
  vxs, vys = check_pair("val", val)
  if vxs.shape[2] != xs.shape[2] or vys.shape[1] != ys.shape[1]:
    raise InputError(f"val: expected D={xs.shape[2]} inputs and K={ys.shape[1]} outputs like "
                     f"train, got D={vxs.shape[2]}, K={vys.shape[1]}")
  return xs, ys, vxs, vys


def train_dtype(xs: np.ndarray) -> np.dtype:
  """The dtype training runs in: that of floating ``xs``, else float32; float32 unless x64 is on."""
  dtype = jnp.dtype(xs.dtype if np.issubdtype(xs.dtype, np.floating) else jnp.float32)
  return jax.dtypes.canonicalize_dtype(dtype)


def _fingerprint(a: np.ndarray) -> dict:
  a = np.ascontiguousarray(a)
  return {"shape": list(a.shape), "dtype": str(a.dtype),
          "sha256": hashlib.sha256(a.tobytes()).hexdigest()}


def fingerprint(xs, ys, vxs, vys) -> dict:
  """Shape, dtype and SHA-256 of each array (checkpoint field ``data``)."""
  return {"train_xs": _fingerprint(xs), "train_ys": _fingerprint(ys),
          "val_xs": _fingerprint(vxs), "val_ys": _fingerprint(vys)}


def batch_plan(cfg: TrainConfig, n: int) -> tuple[int, int, list[str]]:
  """``(n_devices, batch, notes)`` for ``n`` training windows: the batch of every step
  (``effective_batch_size``) and a note when it differs from ``cfg.batch_size``; InputError
  when the windows or the batch do not split over the devices."""
  n_dev = parallel.device_count(cfg.devices)
  if n < n_dev:
    raise InputError(f"train: {n} windows cannot be split over {n_dev} devices")
  if cfg.batch_size % n_dev:
    raise InputError(f"--batch-size: {cfg.batch_size} is not a multiple of the {n_dev} "
                     "devices (--devices)")
  batch = effective_batch_size(cfg.batch_size, n, n_dev)
  notes = []
  if batch != cfg.batch_size:
    notes.append(f"batch size {cfg.batch_size} exceeds the {n} training windows; "
                 f"used batches of {batch}")
  return n_dev, batch, notes


def check_inputs(cfg: TrainConfig, train, val) -> None:
  """Every InputError that ``fit``/``fit_many`` could raise in their setup, raised now: the
  arrays and the batch against the data and the devices. A caller that writes files before
  training (a run directory's config.json) calls this first, so a refused run leaves nothing."""
  xs, _, _, _ = check_data(train, val)
  batch_plan(cfg.validate(), xs.shape[0])

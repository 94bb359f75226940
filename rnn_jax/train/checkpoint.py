"""Training checkpoints: one msgpack file (``flax.serialization``), checksummed, written atomically
(rnn_jax.common.fileio.write_bytes), and the run it records (``record``, ``restore_run``).

On disk: a msgpack map of ``format``, ``payload`` and ``sha256`` (of ``payload``, hex), checked
before anything is decoded, so a changed byte is refused with one line naming the file. The
payload is ``msgpack_serialize(to_state_dict(state))``: NamedTuples become dicts keyed by field
name or position, arrays raw bytes with shape and dtype (floats come back bit for bit)."""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import serialization

from rnn_jax.common import fileio
from rnn_jax.common.errors import InputError
from rnn_jax.core.model import RNNParams

FORMAT = "rnn_jax.checkpoint/2"
UNCHECKED_FORMATS = ("rnn_jax.checkpoint/1",)   # older formats, without a checksum: refused
FILENAME = "checkpoint.msgpack"
MAY_CHANGE = ("epochs", "devices")   # the settings a resumed run may change


def to_host(tree: Any) -> Any:
  """Numpy copies of the (possibly replicated, multi-host) jax arrays in ``tree``."""
  def one(x):
    if isinstance(x, jax.Array):
      if not x.is_fully_addressable:    # replicated over hosts: any local shard is the whole
        x = x.addressable_data(0)
      return np.asarray(x)
    return x
  return jax.tree.map(one, tree)


def save(path: str | os.PathLike, state: dict) -> None:
  """Writes ``state`` (a dict of pytrees, numbers and strings) atomically to ``path``."""
  state = {"format": FORMAT, **state}
  payload = serialization.msgpack_serialize(to_host(serialization.to_state_dict(state)))
  envelope = {"format": FORMAT, "sha256": hashlib.sha256(payload).hexdigest(), "payload": payload}
  fileio.write_bytes(path, serialization.msgpack_serialize(envelope))


def _restore_bytes(path: Path, data: bytes):
  try:
    return serialization.msgpack_restore(data)
  except Exception as err:  # msgpack raises several types for damaged input
    raise InputError(f"{path}: not a readable checkpoint (truncated or damaged: "
                     f"{type(err).__name__})") from None


def load(path: str | os.PathLike) -> dict:
  """The raw state dict of a checkpoint, else an InputError naming the file."""
  path = Path(path)
  if not path.exists():
    raise InputError(f"{path}: checkpoint not found")
  if path.is_dir():
    raise InputError(f"{path}: expected a checkpoint file, found a directory")
  try:
    data = path.read_bytes()
  except OSError as err:
    raise InputError(f"{path}: cannot read checkpoint ({err.strerror})") from None
  if not data:
    raise InputError(f"{path}: empty file, expected an rnn_jax checkpoint")
  envelope = _restore_bytes(path, data)
  fmt = envelope.get("format") if isinstance(envelope, dict) else None
  if fmt in UNCHECKED_FORMATS:
    raise InputError(f"{path}: checkpoint format {fmt!r} has no checksum and is no longer "
                     f"loaded (expected {FORMAT!r}); train again to write a checked one")
  if fmt != FORMAT:
    raise InputError(f"{path}: not an rnn_jax checkpoint (expected format {FORMAT!r})")
  payload, digest = envelope.get("payload"), envelope.get("sha256")
  if (not isinstance(payload, bytes) or not isinstance(digest, str)
      or set(envelope) != {"format", "sha256", "payload"}):
    raise InputError(f"{path}: damaged checkpoint (expected a payload and its sha256)")
  if hashlib.sha256(payload).hexdigest() != digest:
    raise InputError(f"{path}: damaged checkpoint: its contents do not match their SHA-256 "
                     "checksum")
  state = _restore_bytes(path, payload)
  if not isinstance(state, dict) or state.get("format") != FORMAT:
    raise InputError(f"{path}: not an rnn_jax checkpoint (expected format {FORMAT!r})")
  return state


def restore(template: Any, state: Any, *, path: str | os.PathLike, name: str) -> Any:
  """``state`` (from ``load``) poured into the structure of ``template``, else an InputError naming
  the file and the field (``name``) of a leaf that is missing or of another shape or dtype."""
  try:
    restored = serialization.from_state_dict(template, state)
  except (ValueError, KeyError, TypeError) as err:
    raise InputError(f"{path}: checkpoint field {name!r} does not match this configuration "
                     f"({err})") from None
  leaves_t, leaves_r = jax.tree_util.tree_leaves_with_path(template), jax.tree.leaves(restored)
  if len(leaves_t) != len(leaves_r):
    raise InputError(f"{path}: checkpoint field {name!r} has {len(leaves_r)} arrays, "
                     f"expected {len(leaves_t)}")
  for (key_path, t), r in zip(leaves_t, leaves_r):
    t_shape, r_shape = np.shape(t), np.shape(r)
    t_dtype, r_dtype = (np.dtype(x.dtype) if hasattr(x, "dtype") else np.asarray(x).dtype
                        for x in (t, r))
    if t_shape != r_shape or t_dtype != r_dtype:
      where = name + jax.tree_util.keystr(key_path)
      raise InputError(f"{path}: checkpoint array {where} is {r_dtype}{list(r_shape)}, this "
                       f"configuration expects {t_dtype}{list(t_shape)}")
  return restored


def load_params(path: str | os.PathLike, *, best: bool = True) -> RNNParams:
  """The best (``best=False``: the latest) RNNParams of a checkpoint, ``[S, ...]`` from fit_many."""
  return params_of(load(path), path, best=best)


def params_of(state: dict, path: str | os.PathLike, *, best: bool = True) -> RNNParams:
  """``load_params`` of a state already ``load``ed from ``path`` (named in the error)."""
  key = "best_params" if best else "params"
  fields = state.get(key)
  if not isinstance(fields, dict) or set(fields) != set(RNNParams._fields):
    raise InputError(f"{path}: checkpoint has no {key} with fields {list(RNNParams._fields)}")
  return RNNParams(**{f: np.asarray(fields[f]) for f in RNNParams._fields})


def check_writable(directory: str | os.PathLike, nbytes: int = 1 << 20) -> Path:
  """Creates ``directory`` and proves it can hold ``nbytes`` more with a fsynced probe file (a
  full disk reports ENOSPC now, not at the first checkpoint); on failure removes the directories
  it made and raises InputError naming the directory and the reason."""
  directory = Path(directory)
  missing = [p for p in (directory, *directory.parents) if not p.exists()]   # deepest first
  probe = directory / fileio.WRITE_PROBE
  try:
    if directory.exists() and not directory.is_dir():
      raise InputError(f"{directory}: output directory is an existing file, expected a directory")
    directory.mkdir(parents=True, exist_ok=True)
    with open(probe, "wb") as f:
      for done in range(0, nbytes, 1 << 20):
        f.write(b"\0" * min(1 << 20, nbytes - done))
      f.flush()
      os.fsync(f.fileno())
    probe.unlink()
  except (OSError, InputError) as err:
    with contextlib.suppress(OSError):
      probe.unlink()
    for d in missing:
      with contextlib.suppress(OSError):
        d.rmdir()
    if isinstance(err, InputError):
      raise
    reason = err.strerror or type(err).__name__
    raise InputError(f"{directory}: cannot write the output directory ({reason}); "
                     "choose another --out or free some space") from None
  return directory


def record(st, *, cfg, n_models: int, fingerprint: dict, data_keys) -> dict:
  """The checkpoint of RunState ``st`` with ``cfg``, ``n_models`` (0 for fit: no model axis; S for
  fit_many), the data's ``fingerprint`` and the models' ``data_keys [S, 2]``."""
  return {"config": json.dumps(cfg.to_dict()), "n_models": n_models,
          "data": json.dumps(fingerprint), "epoch": st.epoch, "params": st.params,
          "opt_state": st.opt_state, "best_params": st.best_params, "best_epoch": st.best_epoch,
          "best_val_loss": st.best_val, "wait": st.wait, "status": json.dumps(list(st.status)),
          "data_key": data_keys, "history": json.dumps([list(h) for h in st.history]),
          "elapsed_s": st.elapsed_s}


def restore_run(path: str | os.PathLike, initial, *, cfg, n_models: int, fingerprint: dict,
                data_keys: np.ndarray):
  """The run state saved in ``path``, shaped like ``initial``, if it is of the same run (settings
  but MAY_CHANGE, models, data, data key); else InputError naming the file and the difference."""
  path, S = Path(path), len(initial.status)
  raw = load(path)
  try:
    config, saved, data = json.loads(raw["config"]), int(raw["n_models"]), json.loads(raw["data"])
    status = tuple(json.loads(raw["status"]))
    history = tuple(tuple(h) for h in json.loads(raw["history"]))
    epoch, elapsed_s = int(raw["epoch"]), float(raw["elapsed_s"])
  except (KeyError, TypeError, ValueError) as err:
    raise InputError(f"{path}: checkpoint is missing or has a damaged field ({err})") from None
  defaults = {f.name: f.default for f in dataclasses.fields(cfg)}   # settings added since
  for k, mine in cfg.to_dict().items():
    if k not in MAY_CHANGE and config.get(k, defaults.get(k, object())) != mine:
      raise InputError(f"{path}: the run was made with {k}={config.get(k)!r}, this run asks for "
                       f"{k}={mine!r}; resume with the same settings (only --epochs and "
                       "--devices may change) or start a new --out")
  if saved != n_models:
    raise InputError(f"{path}: checkpoint holds {saved or 1} model(s) "
                     f"({'fit_many' if saved else 'fit'}); this run trains {S}")
  if data != fingerprint:
    raise InputError(f"{path}: the run was trained on different data (shapes or contents "
                     "differ); resume with the same data or start a new --out")

  def field(name, template):
    return restore(template, raw.get(name), path=path, name=name)

  if not np.array_equal(field("data_key", data_keys), data_keys):
    raise InputError(f"{path}: checkpoint data_key does not match --seed {cfg.seed}")
  if len(status) != S or len(history) != S:
    raise InputError(f"{path}: checkpoint status/history do not hold {S} model(s)")
  return initial._replace(
      epoch=epoch, params=field("params", initial.params),
      opt_state=field("opt_state", initial.opt_state),
      best_params=field("best_params", initial.params),
      best_epoch=field("best_epoch", initial.best_epoch),
      best_val=field("best_val_loss", initial.best_val), wait=field("wait", initial.wait),
      status=status, history=history, elapsed_s=elapsed_s)

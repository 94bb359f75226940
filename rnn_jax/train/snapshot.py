"""What a run writes to its checkpoint after every epoch, and how ``--resume`` reads it back:
``record`` makes the checkpoint's fields (listed in rnn_jax.train.checkpoint) from the run's
state; ``restore`` checks that the checkpoint is of the same run (settings, number of models,
data, seed) and returns its state, else an InputError naming the file and the difference."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rnn_jax.common.errors import InputError
from rnn_jax.train import checkpoint
from rnn_jax.train.config import TrainConfig
from rnn_jax.train.state import RunState

MAY_CHANGE = ("epochs", "devices")   # the settings a resumed run may change


def record(st: RunState, *, cfg: TrainConfig, n_models: int, fingerprint: dict,
           data_keys: np.ndarray) -> dict:
  """The checkpoint of ``st``; ``n_models`` is 0 for fit (no model axis), S for fit_many."""
  return {
      "config": json.dumps(cfg.to_dict()),
      "n_models": n_models,
      "data": json.dumps(fingerprint),
      "epoch": st.epoch,
      "params": st.params,
      "opt_state": st.opt_state,
      "best_params": st.best_params,
      "best_epoch": st.best_epoch,
      "best_val_loss": st.best_val,
      "wait": st.wait,
      "status": json.dumps(list(st.status)),
      "data_key": data_keys,
      "history": json.dumps([list(h) for h in st.history]),
      "elapsed_s": st.elapsed_s,
  }


def _comparable(d: dict) -> dict:
  return {k: v for k, v in d.items() if k not in MAY_CHANGE}


def _fields(raw: dict, path: Path) -> dict:
  """The checkpoint's scalar and JSON fields, decoded; InputError when one is missing."""
  try:
    return {"config": json.loads(raw["config"]), "n_models": int(raw["n_models"]),
            "data": json.loads(raw["data"]), "status": tuple(json.loads(raw["status"])),
            "history": tuple(tuple(h) for h in json.loads(raw["history"])),
            "epoch": int(raw["epoch"]), "elapsed_s": float(raw["elapsed_s"])}
  except (KeyError, TypeError, ValueError) as err:
    raise InputError(f"{path}: checkpoint is missing or has a damaged field ({err})") from None


def _check_same_run(path: Path, fields: dict, *, cfg: TrainConfig, n_models: int, S: int,
                    fingerprint: dict) -> None:
  """InputError unless the settings (but MAY_CHANGE), the models and the data are this run's."""
  mine, theirs = _comparable(cfg.to_dict()), _comparable(fields["config"])
  for k in mine:
    if theirs.get(k, object()) != mine[k]:
      raise InputError(f"{path}: the run was made with {k}={theirs.get(k)!r}, this run asks "
                       f"for {k}={mine[k]!r}; resume with the same settings (only --epochs "
                       "and --devices may change) or start a new --out")
  saved = fields["n_models"]
  if saved != n_models:
    raise InputError(f"{path}: checkpoint holds {saved or 1} model(s) "
                     f"({'fit_many' if saved else 'fit'}); this run trains {S}")
  if fields["data"] != fingerprint:
    raise InputError(f"{path}: the run was trained on different data (shapes or contents "
                     "differ); resume with the same data or start a new --out")


def restore(path: Path, initial: RunState, *, cfg: TrainConfig, n_models: int,
            fingerprint: dict, data_keys: np.ndarray) -> RunState:
  """The state saved in ``path``, shaped like ``initial`` (host arrays), after the checks of
  ``_check_same_run``, that its data key is the seed's and that it holds S models."""
  raw = checkpoint.load(path)
  fields = _fields(raw, path)
  S = len(initial.status)
  _check_same_run(path, fields, cfg=cfg, n_models=n_models, S=S, fingerprint=fingerprint)
  arrays = {}
  for name, template in (("best_epoch", initial.best_epoch), ("best_val_loss", initial.best_val),
                         ("wait", initial.wait), ("data_key", data_keys)):
    arrays[name] = checkpoint.restore(template, raw.get(name), path=path, name=name)
  if not np.array_equal(arrays["data_key"], data_keys):
    raise InputError(f"{path}: checkpoint data_key does not match --seed {cfg.seed}")
  if len(fields["status"]) != S or len(fields["history"]) != S:
    raise InputError(f"{path}: checkpoint status/history do not hold {S} model(s)")

  def tree(name, template):
    return checkpoint.restore(template, raw.get(name), path=path, name=name)

  return RunState(
      epoch=fields["epoch"], params=tree("params", initial.params),
      opt_state=tree("opt_state", initial.opt_state),
      best_params=tree("best_params", initial.params),
      best_epoch=arrays["best_epoch"], best_val=arrays["best_val_loss"], wait=arrays["wait"],
      status=fields["status"], history=fields["history"], elapsed_s=fields["elapsed_s"])

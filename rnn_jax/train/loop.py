"""The host loop of training: ``fit`` (one model) and ``fit_many`` (many seeds at once, vmap),
the epochs of one run with its tqdm bar, ``metrics.jsonl`` and an atomic checkpoint each epoch,
resume, Ctrl-C and non-finite faults.

Generic over arrays: ``train = (xs [N, T, D], ys [N, K])`` with ys in [0, 1], likewise ``val``;
this module knows nothing about CSV files (rnn_jax.data makes the arrays). The compiled pieces
are in rnn_jax.train.step (data order in its docstring), the rules between epochs (early
stopping, Prechelt 1998) in rnn_jax.train.state.

Metrics per epoch (history, metrics.jsonl): ``train_loss`` is the mean of the epoch's step
losses (each at the parameters before its step), ``val_loss`` the loss on the whole validation
set after the epoch, then whatever ``evaluate(params)`` returns, and ``elapsed_s`` the training
wall-clock seconds so far (including epoch 1's compilation).

Determinism and resume: everything a later epoch depends on (parameters, optimizer state, best
parameters, early-stopping counters, the data key, history) is in the checkpoint, and the data
order of epoch e depends only on (seed, e). On CPU XLA is deterministic, so a run resumed from
the checkpoint after epoch k computes the same epochs k+1.. bit for bit as an uninterrupted run.
An interrupted epoch is discarded and redone on resume. The only field of the history that
differs is the wall clock ``elapsed_s``.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from pathlib import Path
from typing import Callable

import jax
import numpy as np
from tqdm.auto import tqdm

from rnn_jax.common import fileio
from rnn_jax.common.errors import InputError
from rnn_jax.core.model import RNNParams
from rnn_jax.train import checkpoint, inputs, programs, results, snapshot, state
from rnn_jax.train.checkpoint import to_host
from rnn_jax.train.config import TrainConfig
from rnn_jax.train.results import FitResult, ManyFitResult
from rnn_jax.train.state import RUNNING, RunState

METRICS = "metrics.jsonl"


def _is_writer() -> bool:
  return jax.process_index() == 0


def _json_value(v):
  v = float(np.asarray(v))
  return v if math.isfinite(v) else None


class _Run:
  """One training run of S models (``vmapped``) or of one model; shared by fit and fit_many.

  Built in the order its checks run: settings, arrays, batch and devices, output directory
  (proven writable), then the compiled programs and the initial (or resumed) state, on device.
  """

  def __init__(self, cfg: TrainConfig, train, val, *, vmapped: bool, out_dir, resume: bool,
               progress: bool, evaluate):
    cfg.validate()
    xs, ys, vxs, vys = inputs.check_data(train, val)
    self.cfg, self.vmapped, self.progress, self.evaluate = cfg, vmapped, progress, evaluate
    self.n_models = cfg.seeds if vmapped else 1
    self.seeds = [cfg.seed + i for i in range(self.n_models)]
    self.labels = [f"model {i} (seed {s}): " if vmapped else "" for i, s in enumerate(self.seeds)]
    self.dtype = inputs.train_dtype(xs)
    self.fingerprint = inputs.fingerprint(xs, ys, vxs, vys)
    self.N, _, self.D = xs.shape
    self.K = ys.shape[1]
    n_dev, self.batch, self.notes = inputs.batch_plan(cfg, self.N)
    self.steps = self.N // self.batch
    self._open_out_dir(out_dir, resume)
    self._start(n_dev, resume)
    self._place(xs, ys, vxs, vys)

  def _open_out_dir(self, out_dir, resume: bool) -> None:
    """The output directory: proven writable before any training."""
    self.out_dir = self.ckpt_path = None
    if out_dir is not None:
      self.out_dir = Path(out_dir)
      self.ckpt_path = self.out_dir / checkpoint.FILENAME
      if resume:
        if not self.ckpt_path.exists():
          raise InputError(f"{self.ckpt_path}: no checkpoint to resume from (run without "
                           "--resume to start a new run)")
      if _is_writer():
        H, D, K = self.cfg.hidden_size, self.D, self.K
        n_bytes = (H * H + H * D + H + K * H + K) * self.dtype.itemsize * self.n_models
        checkpoint.check_writable(self.out_dir, 6 * n_bytes + (1 << 20))   # 3 params + adam
    elif resume:
      raise InputError("--resume needs --out, the directory of the run to resume")

  def _start(self, n_dev: int, resume: bool) -> None:
    """The compiled programs and the initial state (host arrays, templates for the checkpoint);
    the checkpoint's state when resuming."""
    key = dataclasses.replace(self.cfg, epochs=1, patience=0, seed=0, seeds=1, devices=n_dev)
    self.prog = prog = programs.build(key, self.batch, self.vmapped)
    params, data_keys = prog.init(np.asarray(self.seeds, np.int32), D=self.D, K=self.K,
                                  dtype=self.dtype.name)
    params = to_host(params)
    if not self.vmapped:
      params = jax.tree.map(lambda a: a[0], params)
    opt_state = to_host(prog.opt_init(params))
    self.optimizer = prog.optimizer
    self.data_keys = np.asarray(data_keys)            # [S, 2] uint32
    self.initial = state.initial_state(params, opt_state, self.n_models)
    self.state = self._load() if resume else self.initial

  def _place(self, xs, ys, vxs, vys) -> None:
    """The data set and the state on the device(s), in the training dtype."""
    dtype = self.dtype
    self.put = self.prog.put
    self.xs, self.ys, self.vxs, self.vys = self.put(
        (xs.astype(dtype), ys.astype(dtype), vxs.astype(dtype), vys.astype(dtype)))
    self.state = self.state._replace(
        params=self.put(self.state.params), opt_state=self.put(self.state.opt_state),
        best_params=self.put(self.state.best_params))

  # ---- checkpoint and metrics

  def _save(self, st: RunState) -> None:
    if self.ckpt_path is None or not _is_writer():
      return
    checkpoint.save(self.ckpt_path, snapshot.record(
        st, cfg=self.cfg, n_models=self.n_models if self.vmapped else 0,
        fingerprint=self.fingerprint, data_keys=self.data_keys))

  def _load(self) -> RunState:
    return snapshot.restore(self.ckpt_path, self.initial, cfg=self.cfg,
                          n_models=self.n_models if self.vmapped else 0,
                          fingerprint=self.fingerprint, data_keys=self.data_keys)

  def _write_metrics(self, st: RunState) -> None:
    if self.out_dir is None or not _is_writer():
      return
    rows = sorted((r for h in st.history for r in h), key=lambda r: (r["epoch"],
                                                                      r.get("model", 0)))
    fileio.write_text(self.out_dir / METRICS, "".join(json.dumps(r) + "\n" for r in rows))

  def _append_metrics(self, rows: list[dict]) -> None:
    if self.out_dir is None or not _is_writer():
      return
    for r in rows:
      fileio.append_line(self.out_dir / METRICS, json.dumps(r))

  # ---- one epoch

  def _model(self, tree, i):
    return jax.tree.map(lambda a: a[i], tree) if self.vmapped else tree

  def _train(self, st: RunState, e: int):
    """Epoch ``e`` on the device: ``(params, opt_state, losses [S, steps], finite [S, steps],
    val [S] float64)``, the last three on the host."""
    S = self.n_models
    perm = self.prog.perm(self.data_keys, e, n=self.N)
    perm = self.put(to_host(perm))
    params, opt_state, losses, finite = self.prog.epoch(st.params, st.opt_state, self.xs,
                                                        self.ys, perm)
    val = to_host(self.prog.val_loss(params, self.vxs, self.vys)).astype(np.float64).reshape(S)
    return params, opt_state, to_host(losses).reshape(S, -1), to_host(finite).reshape(S, -1), val

  def _row(self, e: int, i: int, losses, val, params, elapsed: float) -> dict:
    """Model i's metrics after epoch e (metrics.jsonl), ``evaluate`` called on its params."""
    row = {"epoch": e}
    if self.vmapped:
      row.update(model=i, seed=self.seeds[i])
    row.update(train_loss=_json_value(losses.mean()), val_loss=_json_value(val))
    if self.evaluate is not None:
      for k, v in dict(self.evaluate(self._model(params, i))).items():
        row[k] = _json_value(v)
    row["elapsed_s"] = round(elapsed, 3)
    return row

  def _epoch(self, st: RunState, started: float, base_elapsed: float):
    """Runs epoch ``st.epoch + 1``; returns (new state, metric rows, fault messages)."""
    e = st.epoch + 1
    params, opt_state, losses, finite, val = self._train(st, e)
    elapsed = base_elapsed + (time.perf_counter() - started)
    status, advance, faults = state.check_finite(st.status, finite, losses, val, epoch=e,
                                                 labels=self.labels)
    history, rows = [list(h) for h in st.history], []
    for i in range(self.n_models):
      if advance[i]:
        rows.append(self._row(e, i, losses[i], val[i], params, elapsed))
        history[i].append(rows[-1])
    best_epoch, best_val, wait, status, improved = state.early_stopping(
        st, status, advance, val, epoch=e, patience=self.cfg.patience)
    masks = self.put((advance, improved) if self.vmapped else (advance[0], improved[0]))
    new_params, new_opt_state, new_best = self.prog.commit(*masks, (params, opt_state),
                                                           (st.params, st.opt_state),
                                                           st.best_params)
    new = RunState(epoch=e, params=new_params, opt_state=new_opt_state, best_params=new_best,
                   best_epoch=best_epoch, best_val=best_val, wait=wait, status=tuple(status),
                   history=tuple(tuple(h) for h in history), elapsed_s=elapsed)
    return new, rows, faults

  # ---- the loop

  def _bar(self, st: RunState):
    return tqdm(total=self.cfg.epochs, initial=min(st.epoch, self.cfg.epochs), desc="train",
                unit="epoch", disable=not self.progress, dynamic_ncols=True, leave=True)

  @staticmethod
  def _postfix(rows: list[dict]) -> dict:
    keys = [k for k in rows[0] if k not in ("epoch", "model", "seed", "elapsed_s")]
    out = {}
    for k in keys:
      vals = [r[k] for r in rows if r.get(k) is not None]
      if vals:
        out[k] = f"{np.mean(vals):.4g}"
    return out

  def run(self) -> tuple[RunState, str, list[str]]:
    """Trains until every model stopped or ``epochs``; returns (state, outcome, messages)."""
    st = self.state
    if self.out_dir is not None:
      self._write_metrics(st)   # a fresh run empties metrics.jsonl; a resumed one rewrites it
      if st.epoch == 0:
        self._save(st)
    messages = list(self.notes)
    outcome = "completed"
    bar = self._bar(st)
    started, base_elapsed = time.perf_counter(), st.elapsed_s
    try:
      while st.epoch < self.cfg.epochs and RUNNING in st.status:
        new, rows, faults = self._epoch(st, started, base_elapsed)
        if faults and not self.vmapped:
          # One model: keep the last good checkpoint (not rewritten) and state.
          st = st._replace(status=new.status)
          messages.extend(faults)
          outcome = "nonfinite"
          break
        st = new
        self._save(st)
        self._append_metrics(rows)
        messages.extend(faults)
        if rows:
          bar.set_postfix(self._postfix(rows), refresh=False)
        bar.update(1)
    except KeyboardInterrupt:
      outcome = "interrupted"
      if self.out_dir is not None:
        self._save(st)              # the last complete epoch; an interrupted one is redone
        self._write_metrics(st)
    finally:
      bar.close()
    return st, outcome, messages

  def describe(self, st: RunState, outcome: str, messages: list[str]) -> str:
    """The result's message (rnn_jax.train.results.describe)."""
    return results.describe(st, outcome, messages, vmapped=self.vmapped,
                            patience=self.cfg.patience, checkpoint=self.ckpt_path)


def fit(cfg: TrainConfig, train: tuple, val: tuple, *, out_dir: str | os.PathLike | None = None,
        resume: bool = False, progress: bool = True,
        evaluate: Callable[[RNNParams], dict] | None = None) -> FitResult:
  """Trains one model: ``train = (xs [N,T,D], ys [N,K])``, ``val`` likewise.

  Minibatches and data order as in rnn_jax.train.step; the validation loss after every
  epoch drives early stopping and picks the returned (best) parameters. ``evaluate(params)``
  (optional) returns extra metrics (e.g. validation MAE) shown in the progress bar and logged.

  With ``out_dir``: the directory is created and proven writable (a probe file) before any
  training, else InputError; ``metrics.jsonl`` gets one JSON line per epoch (epoch,
  train_loss, val_loss, the evaluate() values, elapsed_s) and ``checkpoint.msgpack``
  (rnn_jax.train.checkpoint) is rewritten atomically after every epoch. A fresh run overwrites both;
  refusing to overwrite a previous run is the caller's decision. ``resume=True`` continues
  from the checkpoint, bit-identically on CPU; the settings must match except ``epochs`` and
  ``devices``. ``cfg.seeds`` is ignored here (see fit_many).

  Faults: Ctrl-C (KeyboardInterrupt) saves the last complete epoch and returns
  ``stopped="interrupted"``; a non-finite loss or gradient stops with ``stopped="nonfinite"``,
  a message naming epoch and step, and the checkpoint of the last good epoch untouched.
  """
  run = _Run(cfg, train, val, vmapped=False, out_dir=out_dir, resume=resume, progress=progress,
             evaluate=evaluate)
  st, outcome, messages = run.run()
  stopped = results.outcome_per_model(st, outcome)[0]
  if outcome == "nonfinite":
    stopped = "nonfinite"
  return FitResult(params=to_host(st.best_params), history=list(st.history[0]),
                   best_epoch=int(st.best_epoch[0]), best_val_loss=float(st.best_val[0]),
                   stopped=stopped, message=run.describe(st, outcome, messages),
                   checkpoint=run.ckpt_path)


def fit_many(cfg: TrainConfig, train: tuple, val: tuple, *,
             out_dir: str | os.PathLike | None = None, resume: bool = False,
             progress: bool = True,
             evaluate: Callable[[RNNParams], dict] | None = None) -> ManyFitResult:
  """Trains ``cfg.seeds`` models at once: one compiled program, ``jax.vmap`` over parameters,
  optimizer state and data order. Model i uses seed ``cfg.seed + i`` for both its
  initialisation and its data order, so it equals ``fit(replace(cfg, seed=cfg.seed + i))`` up
  to float rounding (vmap batches the matmuls differently).

  Early stopping is per model, with fit's rule: a model whose validation loss has not improved
  for ``patience`` epochs is frozen (its parameters and optimizer state stop changing, its
  history ends) and keeps its best parameters; a model hitting a non-finite loss is frozen at
  its last good epoch. The others go on; training ends when none is left running or after
  ``epochs``. The frozen models still ride along in the vmapped program (vmap cannot skip
  them), so the cost per epoch stays that of S models.

  ``evaluate`` is called per model with its parameters; metrics.jsonl has one line per model
  per epoch (with ``model`` and ``seed``). ``ManyFitResult.summary(key)`` gives the mean and
  spread over models at their best epochs. Outputs, resume and faults as in ``fit``.
  """
  run = _Run(cfg, train, val, vmapped=True, out_dir=out_dir, resume=resume, progress=progress,
             evaluate=evaluate)
  st, outcome, messages = run.run()
  return ManyFitResult(params=to_host(st.best_params), histories=[list(h) for h in st.history],
                       best_epochs=[int(b) for b in st.best_epoch],
                       best_val_losses=np.asarray(st.best_val),
                       stopped=results.outcome_per_model(st, outcome),
                       message=run.describe(st, outcome, messages), seeds=run.seeds,
                       checkpoint=run.ckpt_path)

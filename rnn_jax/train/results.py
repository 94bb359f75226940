"""What fit and fit_many return (``FitResult``, ``ManyFitResult``) and the message in them: the
sentences saying how the run ended and what to do next."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import numpy as np

from rnn_jax.core.model import RNNParams
from rnn_jax.train.state import RUNNING, RunState

STOPPED = ("completed", "early_stop", "interrupted", "nonfinite")
CURES = ("lower the learning rate (--lr), clip gradients by global norm (--clip 1.0), "
         "or start from the identity recurrence (--init irnn)")


@dataclasses.dataclass
class FitResult:
  """What ``fit`` returns."""
  params: RNNParams            # the best parameters (lowest validation loss; initial if none)
  history: list[dict]          # one dict per completed epoch (see metrics.jsonl)
  best_epoch: int              # epoch of ``params`` (0: no epoch completed)
  best_val_loss: float         # validation loss of ``params`` (inf: no epoch completed)
  stopped: str                 # "completed" | "early_stop" | "interrupted" | "nonfinite"
  message: str                 # one paragraph for the user, e.g. how to resume
  checkpoint: Path | None = None


@dataclasses.dataclass
class ManyFitResult:
  """What ``fit_many`` returns: model i was initialised and shuffled with seed ``seeds[i]``."""
  params: RNNParams            # best parameters per model, every field [S, ...]
  histories: list[list[dict]]  # per model, one dict per epoch it trained
  best_epochs: list[int]
  best_val_losses: np.ndarray  # [S]
  stopped: list[str]           # per model, as FitResult.stopped
  message: str
  seeds: list[int]
  checkpoint: Path | None = None

  def model(self, i: int) -> FitResult:
    """Model i's result in the shape ``fit`` gives."""
    return FitResult(params=jax.tree.map(lambda a: a[i], self.params),
                     history=self.histories[i], best_epoch=self.best_epochs[i],
                     best_val_loss=float(self.best_val_losses[i]), stopped=self.stopped[i],
                     message=self.message, checkpoint=self.checkpoint)

  def summary(self, key: str = "val_loss") -> dict:
    """Mean, sample standard deviation, min and max over models of ``key`` at each model's best
    epoch (any history key, e.g. a metric returned by ``evaluate``)."""
    values = []
    for hist, best in zip(self.histories, self.best_epochs):
      row = next((h for h in hist if h["epoch"] == best), None)
      if row is not None and row.get(key) is not None:
        values.append(float(row[key]))
    v = np.asarray(values, np.float64)
    if v.size == 0:
      return {"n": 0, "mean": None, "std": None, "min": None, "max": None, "values": []}
    return {"n": int(v.size), "mean": float(v.mean()),
            "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "min": float(v.min()), "max": float(v.max()), "values": values}


def outcome_per_model(st: RunState, outcome: str) -> list[str]:
  """Each model's ``stopped``: its status, or for one still running how the loop ended."""
  out = []
  for s in st.status:
    if s == RUNNING:
      out.append("interrupted" if outcome == "interrupted" else "completed")
    else:
      out.append(s)
  return out


def describe(st: RunState, outcome: str, messages: list[str], *, vmapped: bool, patience: int,
             checkpoint: Path | None) -> str:
  """The result's message: sentences saying what happened and what to do next.

  ``messages`` are the run's notes and faults (each made a sentence); ``outcome`` is how the
  loop ended ("completed" | "interrupted" | "nonfinite"), ``checkpoint`` the file written.
  """
  parts = [m[0].upper() + m[1:] + "." for m in messages]
  parts += _ending(st, outcome, checkpoint)
  if outcome != "interrupted":
    parts += _stopping(st, outcome, vmapped=vmapped, patience=patience)
  if (st.best_epoch > 0).any():
    best = ", ".join(str(int(b)) for b in st.best_epoch)
    parts.append(f"Best validation loss at epoch {best}" + (" (per model)." if vmapped
                                                            else "."))
  else:
    parts.append("No epoch completed; the initial parameters are returned.")
  return " ".join(parts)


def _ending(st: RunState, outcome: str, checkpoint: Path | None) -> list[str]:
  """What was kept after Ctrl-C or a non-finite loss, and how to go on."""
  if outcome == "interrupted":
    if checkpoint is not None:
      return [f"Interrupted after epoch {st.epoch}; checkpoint saved in {checkpoint}. "
              "Run the same command with --resume to continue from there."]
    return [f"Interrupted after epoch {st.epoch}; no output directory was given, so "
            "nothing was saved."]
  if outcome == "nonfinite":
    kept = (f"the last good checkpoint (epoch {st.epoch}) in {checkpoint} is kept"
            if checkpoint is not None else f"the parameters after epoch {st.epoch} are kept")
    return [f"Training stopped; {kept} and the best parameters so far are returned. "
            f"Usual cures: {CURES}."]
  if "nonfinite" in st.status:
    return [f"Those models keep their last good parameters and their best ones; the others "
            f"trained on. Usual cures: {CURES}."]
  return []


def _stopping(st: RunState, outcome: str, *, vmapped: bool, patience: int) -> list[str]:
  """Early stops and completion, for a run that was not interrupted."""
  parts = []
  n_early = st.status.count("early_stop")
  if n_early and not vmapped:
    parts.append(f"Stopped early after epoch {st.epoch}: no better validation loss for "
                 f"{patience} epochs.")
  elif n_early:
    parts.append(f"{n_early} of {len(st.status)} models stopped early (no better validation "
                 f"loss for {patience} epochs).")
  if RUNNING in st.status and outcome == "completed":
    parts.append(f"Completed {st.epoch} epochs.")
  return parts

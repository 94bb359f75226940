"""Scores of probabilistic forecasts, per horizon, in the series' units:

* ``pinball`` (quantile loss): ``rho_tau(y - q) = max(tau (y - q), (tau - 1)(y - q))``, the loss
  whose expectation the tau-quantile minimises (Koenker and Bassett 1978); at tau = 0.5 it is
  half the absolute error.
* ``interval_score`` (Winkler 1972; Gneiting and Raftery 2007, eq. 43): for a central
  ``level`` interval ``[lo, hi]`` with ``alpha = 1 - level``,
  ``(hi - lo) + (2/alpha)(lo - y) 1{y < lo} + (2/alpha)(y - hi) 1{y > hi}``: the width, plus a
  penalty for a miss that grows with how far the truth lies outside. Lower is better; it rewards
  narrow intervals only as long as they cover.
* ``interval_summary``: coverage, mean width and mean interval score of one interval.
"""
from __future__ import annotations

import numpy as np


def _pair(pred, target) -> tuple[np.ndarray, np.ndarray]:
  pred = np.asarray(pred, np.float64)
  target = np.asarray(target, np.float64)
  if pred.shape != target.shape:
    raise ValueError(f"predictions {pred.shape} and targets {target.shape} differ in shape")
  return pred, target


def pinball(pred, target, tau: float) -> np.ndarray:
  """``[K]``: the mean over windows of ``rho_tau(target - pred)`` for ``[N, K]`` arrays."""
  if not 0 < tau < 1:
    raise ValueError(f"tau: expected a level strictly between 0 and 1, got {tau!r}")
  pred, target = _pair(pred, target)
  u = target - pred
  return np.mean(np.maximum(tau * u, (tau - 1) * u), axis=0)


def interval_score(lo, hi, target, level: float) -> np.ndarray:
  """``[K]``: the mean Winkler interval score of ``[lo, hi]`` ``[N, K]`` at ``level``."""
  if not 0 < level < 1:
    raise ValueError(f"level: expected a number strictly between 0 and 1, got {level!r}")
  lo, target = _pair(lo, target)
  hi, _ = _pair(hi, target)
  alpha = 1 - level
  below = np.maximum(lo - target, 0.0)
  above = np.maximum(target - hi, 0.0)
  return np.mean((hi - lo) + (2 / alpha) * (below + above), axis=0)


def interval_summary(lo, hi, target, level: float) -> dict:
  """``{"level", "coverage" [K], "mean_width" [K], "interval_score" [K]}`` of one interval."""
  lo, target = _pair(lo, target)
  hi, _ = _pair(hi, target)
  covered = (target >= lo) & (target <= hi)
  return {"level": float(level), "coverage": covered.mean(axis=0).tolist(),
          "mean_width": (hi - lo).mean(axis=0).tolist(),
          "interval_score": interval_score(lo, hi, target, level).tolist()}

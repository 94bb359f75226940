"""Split-conformal prediction intervals per horizon (Vovk, Gammerman and Shafer 2005; Lei et al.
2018, "Distribution-Free Predictive Inference for Regression"), as darts' ``ConformalModel``
and statsforecast's ``level=`` offer. Calibrated on validation, applied to test. When those
windows are exchangeable, the coverage is at least ``level`` (below ``level + 1/(n+1)`` without
ties); a time series' test split comes later and is not, so there coverage is measured."""
from __future__ import annotations

import math

import numpy as np


def check_level(level) -> float:
  """``level`` as a float in (0, 1); ValueError otherwise."""
  if isinstance(level, bool) or not isinstance(level, (int, float, np.number)) or not 0 < level < 1:
    raise ValueError(f"level: expected a number strictly between 0 and 1, got {level!r}")
  return float(level)


def quantiles(abs_residuals, level: float) -> np.ndarray:
  """``q [K]``: the ``ceil((n+1) level)``-th smallest of the n calibration windows' ``|y - yhat|``
  ``[n, K]`` per horizon; ``inf`` when that rank exceeds n (too few windows for the level)."""
  level = check_level(level)
  r = np.sort(np.asarray(abs_residuals, np.float64), axis=0)
  if r.ndim != 2:
    raise ValueError(f"abs_residuals: expected [n, K], got shape {r.shape}")
  n = r.shape[0]
  rank = math.ceil((n + 1) * level - 1e-9)   # guard against (n+1)*level landing a ulp above
  if rank > n:
    return np.full(r.shape[1], np.inf)
  return r[rank - 1]


def intervals(pred, q, capacity: float) -> tuple[np.ndarray, np.ndarray]:
  """``(lo, hi)`` ``[N, K]``: ``pred -+ q`` clipped to ``[0, capacity]``."""
  pred = np.asarray(pred, np.float64)
  return np.clip(pred - q, 0.0, capacity), np.clip(pred + q, 0.0, capacity)


def summary(pred, target, q, capacity: float, level: float) -> dict:
  """``{"level", "q" [K], "coverage" [K], "mean_width" [K]}`` on one split: per horizon, the share
  of windows whose target lies in ``[lo, hi]`` and the mean of ``hi - lo`` (series' units)."""
  lo, hi = intervals(pred, q, capacity)
  target = np.asarray(target, np.float64)
  covered = (target >= lo) & (target <= hi)
  return {"level": float(level), "q": np.asarray(q, np.float64).tolist(),
          "coverage": covered.mean(axis=0).tolist(), "mean_width": (hi - lo).mean(axis=0).tolist()}

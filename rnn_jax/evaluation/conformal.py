"""Split-conformal prediction intervals per horizon (Vovk, Gammerman and Shafer 2005; Lei et al.
2018, "Distribution-Free Predictive Inference for Regression"), as darts' ``ConformalModel``
and statsforecast's ``level=`` offer. Calibrated on validation, applied to test. When those
windows are exchangeable, the coverage is at least ``level`` (below ``level + 1/(n+1)`` without
ties); a time series' test split comes later and is not, so there coverage is measured.

For a model with quantile outputs (a lower, median and upper quantile per horizon), the interval
is conformalized quantile regression (CQR; Romano, Patterson and Candes 2019): the band between
the quantiles, widened (or narrowed) by one calibrated amount per horizon, so it can be
asymmetric and can vary from window to window.

Where the test split drifts away from the validation split (a term ends, a holiday begins), a
fixed calibration under- or over-covers. ``online_quantiles`` keeps adapting it as the truth
arrives: adaptive conformal inference (ACI; Gibbs and Candes 2021, "Adaptive Conformal Inference
Under Distribution Shift") moves the miscoverage level it reads the calibration scores at,
``alpha <- alpha + gamma (1 - level - err)``, after every forecast whose target is known, which
keeps the long-run coverage near ``level`` whatever the shift."""
from __future__ import annotations

import math

import numpy as np

from rnn_jax.evaluation import scores


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


# --------------------------------------------------------------------------- quantile outputs

def quantile_levels(level: float) -> tuple[float, float, float]:
  """``(alpha/2, 0.5, 1 - alpha/2)``, ``alpha = 1 - level``: the lower, median and upper quantile
  a model with three outputs per horizon is trained for (0.8 -> (0.1, 0.5, 0.9))."""
  lower = round((1 - check_level(level)) / 2, 12)     # 0.1, not 0.09999999999999998
  return (lower, 0.5, round(1 - lower, 12))


def rearrange(bands) -> np.ndarray:
  """``[..., 3]`` quantile forecasts sorted along the last axis, so they never cross: the
  rearrangement of Chernozhukov, Fernandez-Val and Galichon (2010, "Quantile and Probability
  Curves Without Crossing"), which never increases the pinball loss summed over the levels."""
  return np.sort(np.asarray(bands, np.float64), axis=-1)


def cqr_quantiles(lo, hi, target, level: float) -> np.ndarray:
  """``q [K]`` of conformalized quantile regression (Romano, Patterson and Candes 2019,
  "Conformalized Quantile Regression"), per horizon: the ``ceil((n+1) level)``-th smallest of
  the n calibration windows' conformity scores ``E = max(lo - y, y - hi)`` ``[n, K]`` (negative
  inside the band: the band is then shrunk); ``inf`` when that rank exceeds n."""
  return quantiles(cqr_scores(lo, hi, target), level)


ACI_GAMMA = 0.005   # ACI's step size, the value Gibbs and Candes (2021) use throughout


def cqr_scores(lo, hi, target) -> np.ndarray:
  """The CQR conformity scores ``E = max(lo - y, y - hi)`` ``[n, K]``: how far each target lies
  outside its band (negative inside)."""
  lo, hi, target = (np.asarray(a, np.float64) for a in (lo, hi, target))
  if not lo.shape == hi.shape == target.shape:
    raise ValueError(f"lo {lo.shape}, hi {hi.shape} and targets {target.shape} differ in shape")
  return np.maximum(lo - target, target - hi)


def online_quantiles(calibration, scores_, times, known_at, level: float,
                     gamma: float = ACI_GAMMA) -> tuple[np.ndarray, np.ndarray]:
  """``(q [n, K], q_next [K])``: per window and horizon the calibration score quantile ACI
  (module docstring) reads, and the one for a forecast made once every target is known.

  ``calibration [m, K]``: the validation windows' scores; ``scores_ [n, K]``: the scores of the
  windows forecast online, each known only once its target is; forecasts made at ``times [n]``,
  targets known at ``known_at [n, K]`` (datetime64 or numbers). Per horizon ``alpha`` starts at
  ``1 - level``; the forecast at ``times[j]`` reads the ``ceil((m + 1)(1 - alpha))``-th smallest
  calibration score (``inf`` above m, ``-inf`` below 1), after every window whose target is
  known by then (``known_at[i] <= times[j]``) has moved ``alpha`` by ``gamma (1 - level -
  err_i)``, ``err_i = 1{score_i > q_i}``, in the order the targets became known. With
  ``gamma = 0`` every q is split conformal's (``quantiles``)."""
  level = check_level(level)
  cal = np.sort(np.asarray(calibration, np.float64), axis=0)
  s_, times, known_at = np.asarray(scores_, np.float64), np.asarray(times), np.asarray(known_at)
  if (cal.ndim != 2 or s_.ndim != 2 or cal.shape[1] != s_.shape[1] or known_at.shape != s_.shape
      or times.shape != s_.shape[:1] or cal.shape[0] == 0):
    raise ValueError(f"calibration {cal.shape}, scores {s_.shape}, times {times.shape} and "
                     f"known_at {known_at.shape}: expected [m >= 1, K], [n, K], [n] and [n, K]")
  m, (n, K) = cal.shape[0], s_.shape
  if (known_at <= times[:, None]).any():
    raise ValueError("known_at: every target must come after its forecast (known_at > times)")

  def read(alpha, k):
    rank = math.ceil((m + 1) * (1 - alpha) - 1e-9)
    return np.inf if rank > m else (-np.inf if rank < 1 else cal[rank - 1, k])

  q, q_next = np.empty((n, K)), np.empty(K)
  for k in range(K):
    alpha, order, done = 1 - level, np.argsort(known_at[:, k], kind="stable"), 0
    for j in np.argsort(times, kind="stable"):
      while done < n and known_at[order[done], k] <= times[j]:
        i = order[done]
        alpha += gamma * (1 - level - float(s_[i, k] > q[i, k]))
        done += 1
      q[j, k] = read(alpha, k)
    for i in order[done:]:         # targets known after the last forecast
      alpha += gamma * (1 - level - float(s_[i, k] > q[i, k]))
    q_next[k] = read(alpha, k)
  return q, q_next


def cqr_intervals(lo, hi, q, capacity: float) -> tuple[np.ndarray, np.ndarray]:
  """``(lo - q, hi + q)`` clipped to ``[0, capacity]``; where a negative q would make the band
  cross, both ends sit at its middle. ``q`` beyond ``+-capacity`` (ACI's ``+-inf``) counts as
  ``+-capacity``: the whole range, or the middle."""
  q = np.clip(np.asarray(q, np.float64), -capacity, capacity)
  lo, hi = np.asarray(lo, np.float64) - q, np.asarray(hi, np.float64) + q
  mid = (lo + hi) / 2
  lo, hi = np.minimum(lo, mid), np.maximum(hi, mid)
  return np.clip(lo, 0.0, capacity), np.clip(hi, 0.0, capacity)


def _scored(lo, mid, hi, target, q, level: float) -> dict:
  """``{"level", "q", "coverage", "mean_width", "interval_score", "pinball"}`` per horizon;
  ``pinball``: the mean of the pinball losses of ``lo``, ``mid`` and ``hi`` at
  ``quantile_levels(level)`` (rnn_jax.evaluation.scores)."""
  out = {"level": float(level), "q": np.asarray(q, np.float64).tolist(),
         **{k: v for k, v in scores.interval_summary(lo, hi, target, level).items()
            if k != "level"}}
  losses = [scores.pinball(p, target, tau) for p, tau in zip((lo, mid, hi),
                                                              quantile_levels(level))]
  out["pinball"] = np.mean(losses, axis=0).tolist()
  return out


def summary(pred, target, q, capacity: float, level: float) -> dict:
  """``{"level", "q" [K], "coverage" [K], "mean_width" [K], "interval_score" [K], "pinball" [K]}``
  of the symmetric interval on one split: per horizon, the share of windows whose target lies
  in ``[lo, hi]``, the mean of ``hi - lo``, the mean Winkler score and pinball loss (``_scored``;
  series' units)."""
  lo, hi = intervals(pred, q, capacity)
  return _scored(lo, pred, hi, target, q, level)


def cqr_summary(bands, target, q, capacity: float, level: float) -> dict:
  """``summary`` of the CQR interval of ``bands [N, K, 3]`` (lower, median, upper), with
  ``uncalibrated``: coverage, width and scores of the model's own ``[lower, upper]``."""
  lo, mid, hi = (np.asarray(bands, np.float64)[..., i] for i in range(3))
  cal_lo, cal_hi = cqr_intervals(lo, hi, q, capacity)
  out = _scored(cal_lo, mid, cal_hi, target, q, level)
  raw = _scored(lo, mid, hi, target, np.zeros_like(np.asarray(q, np.float64)), level)
  out["uncalibrated"] = {k: raw[k] for k in ("coverage", "mean_width", "interval_score")}
  return out


def format_lines(results: dict, name_w: int, col: int) -> list[str]:
  """The printed rows of the model's intervals in ``results`` (rnn_jax.evaluation.format_table):
  for the symmetric split-conformal interval (``interval``) and, when the model has quantile
  outputs, the CQR one (``cqr``) and on test its online adaptation (``cqr_online``), per horizon
  and split: coverage, mean width, mean interval score, mean pinball loss."""
  splits = [s for s in ("val", "test") if s in results.get("splits", {})]
  models = [results["splits"][s].get("model", {}) for s in splits]
  unit, lines = results.get("unit", "people"), []
  for key, what in (("interval", "split-conformal, symmetric, calibrated on val"),
                    ("cqr", "conformalized quantile regression, calibrated on val"),
                    ("cqr_online", "the same, adapted online on test as each target arrives")):
    entries = [m.get(key) for m in models]
    given = [e for e in entries if e]
    if not given or (key != "cqr_online" and len(given) < len(entries)):
      continue
    lines.append(f"model's {100 * given[0]['level']:g}% interval ({what}; widths and scores in "
                 f"{unit})")
    for name, fmt in (("coverage", ".3f"), ("mean_width", ".2f"), ("interval_score", ".2f"),
                      ("pinball", ".3f")):
      if all(name in e for e in given):
        row = "".join(("".join(format(v, fmt).rjust(col) for v in e[name]) if e else
                       " " * (col * len(given[0][name]))) + " " * 7 for e in entries)
        lines.append((name.ljust(name_w) + row).rstrip())
  return lines

"""Honest evaluation: the model's errors next to simple baselines on the same windows, in people
and in % of the capacity. Baselines:
* ``persistence``: the window's last reading, for every horizon.
* ``seasonal_naive_day`` / ``seasonal_naive_week``: the reading one day / one week before the
  target (Hyndman and Athanasopoulos, "Forecasting: Principles and Practice", 3rd ed., sec. 5.2),
  no value where that reading does not exist (``mae``).
* ``ridge``: scikit-learn ``RidgeCV`` on the window's T readings / capacity (plus the calendar
  features of its last step when the spec uses them), one linear output per horizon, alpha by
  efficient leave-one-out on the training split only (validation stays unseen).
* ``gbm``: scikit-learn ``HistGradientBoostingRegressor`` per horizon on the same features,
  ``random_state=0``, 100 iterations, no early stopping (deterministic, no held-out training part).
  Squared error: it estimates the conditional mean.
* ``gbm_median``: the same with ``loss="absolute_error"``, the conditional median, which is what
  MAE rewards (the mean minimises squared error, the median absolute error); on a series of whole
  counts rounded to whole numbers, like the model's median (``Dataset.median_point``).
* ``gbm_quantile`` (an interval, not a point forecast): the same with ``loss="quantile"`` at
  ``(1 - level) / 2`` and ``(1 + level) / 2`` (quantile regression, Koenker and Bassett 1978),
  a central ``level`` interval per horizon; where the two fits cross, their min and max
  (rearrangement, Chernozhukov, Fernandez-Val and Galichon 2010). Scored by ``interval_report``
  (coverage, width, Winkler score, pinball loss) under ``baseline_intervals`` in the report.
* ``mstl``: statsforecast's ``MSTL`` (Bandara, Hyndman and Bergmeir 2021: STL per season, here a
  day and a week of grid steps) with an ``AutoETS`` (additive error, no season) trend forecaster,
  fitted once on the last ``MSTL_FIT_DAYS`` days of the training split (``fit_mstl``). Every
  forecast origin's state comes from running that ETS model, parameters fixed, over the
  seasonally adjusted readings up to the origin (statsforecast's ``forward``), so each window's
  forecast uses its own readings; the seasonal part is MSTL's own projection from the end of
  training (each season's last cycle repeated). No forecast (NaN) from origins inside training.
Point forecasts are clipped to [0, capacity] people, the range of the model's sigmoid outputs.
Task ``levels``: accuracy and macro-F1 for the model, ``persistence`` (the last reading's level)
and ``ridge_threshold`` (ridge cut at the training tertiles).
"""
from __future__ import annotations

import math
import warnings
from typing import Mapping, NamedTuple

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import RidgeCV
from sklearn.metrics import accuracy_score, f1_score
from threadpoolctl import threadpool_limits

from rnn_jax.data import LEVELS, Dataset, Split, levels_of
from rnn_jax.evaluation import conformal, scores
from rnn_jax.settings import INTERVAL

HORIZON_METHODS = ("model", "persistence", "seasonal_naive_day", "seasonal_naive_week", "ridge",
                   "gbm", "gbm_median", "mstl")
RIDGE_ALPHAS = tuple(float(a) for a in np.logspace(-4, 3, 15))
GBM_MAX_ITER = 100
# mstl: the training days it is fitted on. Chosen on the gym file's validation split, MAE at
# +10 / +30 / +60 min: 4.24 / 5.21 / 6.01 fitted on 4 weeks, 3.85 / 4.88 / 5.73 on 8, 3.76 / 4.76 /
# 5.61 on 16, 3.67 / 4.76 / 5.66 on 32, 3.65 / 4.76 / 5.70 on all 58 (4.5 times as long as 16).
# STL_JUMPS: statsmodels' STL evaluates its LOESS smoothers at every point by default; R's stl
# evaluates every ceil(window / 10)-th and interpolates. Jumps of 10 made the weekly season's
# STL about 8 times faster on 4 weeks of 10-minute bins, changing the components by about 1e-3.
MSTL_FIT_DAYS = 112
STL_JUMPS = {"trend_jump": 10, "low_pass_jump": 10}


class MAE(NamedTuple):
  """Mean absolute error per horizon and the number of windows it was taken over."""
  mae: np.ndarray   # [H] float64, people (NaN when n_windows is 0)
  n_windows: int    # windows whose prediction has a value at every horizon


def mae(pred_people, target_people) -> MAE:
  """Per-horizon MAE of ``pred_people`` [N, H] against ``target_people`` [N, H] over the windows
  with no NaN prediction (a seasonal baseline without an earlier reading)."""
  pred = np.asarray(pred_people, np.float64)
  target = np.asarray(target_people, np.float64)
  if pred.ndim == 1:
    pred, target = pred[:, None], target.reshape(len(target), -1)
  if pred.shape != target.shape:
    raise ValueError(f"mae: predictions {pred.shape} and targets {target.shape} differ in shape")
  if np.isnan(target).any():
    raise ValueError("mae: targets contain NaN")
  rows = ~np.isnan(pred).any(axis=1)
  n = int(rows.sum())
  if n == 0:
    return MAE(np.full(pred.shape[1], np.nan), 0)
  return MAE(np.abs(pred[rows] - target[rows]).mean(axis=0), n)


def features(dataset: Dataset, split: Split) -> np.ndarray:
  """[N, T (+4)]: readings / capacity, plus calendar at the last step."""
  parts = [split.window_people / dataset.capacity]
  if "calendar" in dataset.spec.features:
    parts.append(split.calendar)
  return np.concatenate(parts, axis=1)


class Interval(NamedTuple):
  """A central prediction interval on one split's windows, people ``[N, H]``."""
  lo: np.ndarray
  hi: np.ndarray
  level: float


class Mstl(NamedTuple):
  """``fit_mstl``'s result: row ``t - start + 1`` of ``ets["states"]`` is the trend forecaster's
  state after the reading of grid bin ``t``; ``seasonal[t - start]`` the seasonal part at bin t."""
  start: int             # first grid bin of the fit
  fit_end: int           # first bin after it (the training split's end): origins from fit_end - 1
  seasonal: np.ndarray   # [bins - start] in-sample, then MSTL's projection
  ets: dict              # statsforecast's ETS model run over all bins from start
  method: str            # the ETS model AutoETS chose, e.g. "ETS(A,N,N)"
  seasons: tuple[int, ...]


class FittedBaselines(NamedTuple):
  ridge: RidgeCV
  gbm: tuple[HistGradientBoostingRegressor, ...] | None  # one per horizon; None for task levels
  gbm_median: tuple[HistGradientBoostingRegressor, ...] | None = None
  gbm_quantile: tuple[tuple[HistGradientBoostingRegressor, ...], ...] | None = None  # (lo, hi)
  level: float = INTERVAL      # of gbm_quantile
  mstl: Mstl | None = None     # None: not fitted (task levels, or statsforecast missing)
  mstl_fitted: bool = False    # asked for and fitted; False with mstl None: no mstl column


def quantile_levels(level: float) -> tuple[float, float]:
  """The quantiles ``((1 - level) / 2, (1 + level) / 2)`` bounding a central ``level`` interval."""
  if not 0 < level < 1:
    raise ValueError(f"level: expected a number strictly between 0 and 1, got {level!r}")
  return round((1 - level) / 2, 12), round((1 + level) / 2, 12)


def _gbm(x: np.ndarray, y: np.ndarray, max_iter: int, **loss) -> tuple:
  """One ``HistGradientBoostingRegressor`` per column of ``y``, on one OpenMP thread: the same
  numbers on every machine, and no oversubscription (on a loaded 2-core machine the default
  threads made the gym fit 3-7x slower than one thread)."""
  with threadpool_limits(limits=1, user_api="openmp"):
    return tuple(HistGradientBoostingRegressor(max_iter=max_iter, early_stopping=False,
                                               random_state=0, **loss).fit(x, y[:, k])
                 for k in range(y.shape[1]))


def fit_baselines(dataset: Dataset, *, gbm: bool = True, gbm_max_iter: int = GBM_MAX_ITER,
                  level: float = INTERVAL, mstl: bool = True) -> FittedBaselines:
  """Fits ridge and, for task horizons, per horizon gbm, gbm_median and gbm_quantile (its two
  quantiles for a central ``level`` interval) unless ``gbm`` is False, and ``mstl``
  (``fit_mstl``) unless ``mstl`` is False, on the training split."""
  x = features(dataset, dataset.train)
  y = dataset.train.target_people / dataset.capacity  # [N, H] unclipped fractions
  ridge = RidgeCV(alphas=RIDGE_ALPHAS).fit(x, y)
  horizons = dataset.spec.task == "horizons"
  out = FittedBaselines(ridge=ridge, gbm=None, level=float(level))
  if gbm and horizons:
    taus = quantile_levels(level)
    out = out._replace(
        gbm=_gbm(x, y, gbm_max_iter),
        gbm_median=_gbm(x, y, gbm_max_iter, loss="absolute_error"),
        gbm_quantile=tuple(_gbm(x, y, gbm_max_iter, loss="quantile", quantile=t) for t in taus))
  if mstl and horizons:
    try:
      out = out._replace(mstl=fit_mstl(dataset), mstl_fitted=True)
    except ImportError as e:
      warnings.warn(f"baseline mstl skipped: statsforecast cannot be imported ({e}); "
                    "pip install statsforecast", stacklevel=2)
  return out


def filled(values: np.ndarray, day: int) -> np.ndarray:
  """``values`` (a grid's, NaN in gaps) with every gap bin filled, in time order, by the value a
  week earlier, else a day earlier, else linearly between its neighbours. Causal up to a gap's
  end: a bin is filled from earlier bins, or from the first reading after its gap."""
  v = np.array(values, np.float64)
  for i in np.flatnonzero(np.isnan(v)):
    for lag in (7 * day, day):
      if i >= lag and not np.isnan(v[i - lag]):
        v[i] = v[i - lag]
        break
  gap = np.isnan(v)
  if gap.any():
    v[gap] = np.interp(np.flatnonzero(gap), np.flatnonzero(~gap), v[~gap])
  return v


def fit_mstl(dataset: Dataset, days: int = MSTL_FIT_DAYS) -> Mstl | None:
  """statsforecast's ``MSTL`` (seasons of a day and a week in grid steps, each kept when the fit
  holds two cycles of it) with ``AutoETS(model="AZN")`` for the trend, fitted on the last
  ``days`` days of the training split (gaps ``filled``); then that ETS model, parameters and
  initial state fixed, run over the seasonally adjusted readings of every later bin. None when
  the fit is shorter than two days. ImportError without statsforecast."""
  from statsforecast.ets import forward_ets   # function-local: heavy (statsmodels, pandas)
  from statsforecast.models import MSTL, AutoETS
  day = 1440 // dataset.spec.step_minutes
  y = filled(dataset.grid.values, day)
  end = dataset.train.bounds[1]
  start = max(0, end - days * day)
  seasons = tuple(p for p in (day, 7 * day) if end - start >= 2 * p)
  if not seasons:
    return None
  model = MSTL(season_length=list(seasons), trend_forecaster=AutoETS(model="AZN"),
               stl_kwargs=STL_JUMPS).fit(y[start:end])
  ahead = len(y) - end
  projected = model.predict(h=ahead)["mean"] - model.trend_forecaster.predict(h=ahead)["mean"]
  seasonal = np.concatenate([model.model_.filter(regex="^seasonal").sum(axis=1).to_numpy(),
                             projected])
  ets = forward_ets(model.trend_forecaster.model_, y[start:] - seasonal)
  error, trend, season, damped = model.trend_forecaster.model_["components"][:4]
  method = f"ETS({error},{trend}{'d' if damped != 'N' else ''},{season})"
  return Mstl(start=start, fit_end=end, seasonal=seasonal, ets=ets, method=method, seasons=seasons)


def mstl_forecasts(dataset: Dataset, fitted: Mstl, end_index) -> np.ndarray:
  """``[N, H]`` people, unclipped: from each origin (a window's last bin) the ETS model's
  forecast from its state there, plus the seasonal part at each target; NaN for origins before
  ``fitted.fit_end - 1`` (inside the fit)."""
  from statsforecast.ets import pegelsfcast_C
  horizons = np.asarray(dataset.horizons, np.int64)
  ends = np.asarray(end_index, np.int64)
  out = np.full((len(ends), len(horizons)), np.nan)
  states = fitted.ets["states"]
  for i, e in enumerate(ends):
    if e < fitted.fit_end - 1:
      continue
    row = e - fitted.start + 1
    trend = pegelsfcast_C(int(horizons.max()), {**fitted.ets, "states": states[row:row + 1]})
    out[i] = trend[horizons - 1] + fitted.seasonal[e + horizons - fitted.start]
  return out


def _clip(dataset: Dataset, fractions: np.ndarray) -> np.ndarray:
  return np.clip(np.asarray(fractions, np.float64).reshape(len(fractions), -1), 0.0,
                 1.0) * dataset.capacity


def _interval(dataset: Dataset, x: np.ndarray, models, level: float) -> Interval:
  with threadpool_limits(limits=1, user_api="openmp"):
    lo, hi = (_clip(dataset, np.stack([m.predict(x) for m in ms], axis=1)) for ms in models)
  return Interval(np.minimum(lo, hi), np.maximum(lo, hi), level)


def baselines(dataset: Dataset, split: str,
              fitted: FittedBaselines | None = None) -> dict[str, np.ndarray | Interval]:
  """Baseline predictions on one split: name -> people [N, H] (task horizons) or level [N] int64
  (task levels), and for task horizons ``gbm_quantile`` -> ``Interval``; ``fitted``
  (``fit_baselines``) avoids refitting per split."""
  s = dataset[split]
  if fitted is None:
    fitted = fit_baselines(dataset)
  x = features(dataset, s)
  ridge = _clip(dataset, fitted.ridge.predict(x))
  last = s.window_people[:, -1]
  if dataset.spec.task == "levels":
    return {"persistence": levels_of(last, dataset.tertiles),
            "ridge_threshold": levels_of(ridge[:, 0], dataset.tertiles)}
  out = {"persistence": np.repeat(last[:, None], len(dataset.horizons), axis=1),
         "seasonal_naive_day": s.naive_day.copy(), "seasonal_naive_week": s.naive_week.copy(),
         "ridge": ridge}
  with threadpool_limits(limits=1, user_api="openmp"):
    for name in ("gbm", "gbm_median"):
      if getattr(fitted, name) is not None:
        out[name] = _clip(dataset, np.stack([m.predict(x) for m in getattr(fitted, name)], axis=1))
  if "gbm_median" in out:    # a median forecaster: rounded like the model's median
    out["gbm_median"] = dataset.median_point(out["gbm_median"])
  if fitted.mstl is not None:
    out["mstl"] = _clip(dataset, mstl_forecasts(dataset, fitted.mstl, s.end_index)
                        / dataset.capacity)
  elif fitted.mstl_fitted:   # too little training data for a day's season
    out["mstl"] = np.full(s.target_people.shape, np.nan)
  if fitted.gbm_quantile is not None:
    out["gbm_quantile"] = _interval(dataset, x, fitted.gbm_quantile, fitted.level)
  return out


def interval_report(interval: Interval, target_people) -> dict:
  """``scores.interval_summary`` (level, coverage, mean width, Winkler score per horizon) and the
  pinball loss of each bound at its quantile, ``pinball_lo`` / ``pinball_hi`` ``[H]``."""
  tau_lo, tau_hi = quantile_levels(interval.level)
  return {**scores.interval_summary(interval.lo, interval.hi, target_people, interval.level),
          "quantiles": [tau_lo, tau_hi],
          "pinball_lo": scores.pinball(interval.lo, target_people, tau_lo).tolist(),
          "pinball_hi": scores.pinball(interval.hi, target_people, tau_hi).tolist()}


def baseline_intervals(dataset: Dataset, split: str,
                       fitted: FittedBaselines | None = None) -> dict[str, dict]:
  """The baselines' interval reports on one split: ``{"gbm_quantile": interval_report(...)}``
  (empty for task levels, or without gbm)."""
  if fitted is None:
    fitted = fit_baselines(dataset, mstl=False)
  if fitted.gbm_quantile is None:
    return {}
  s = dataset[split]
  interval = _interval(dataset, features(dataset, s), fitted.gbm_quantile, fitted.level)
  return {"gbm_quantile": interval_report(interval, s.target_people)}


def _floats(values) -> list[float | None]:
  """JSON-safe list: NaN becomes None (results.json is written with allow_nan=False)."""
  return [None if not math.isfinite(v) else float(v) for v in np.asarray(values, np.float64)]


def report(dataset: Dataset, model_predictions: Mapping[str, np.ndarray] | None = None, *,
           fitted: FittedBaselines | None = None,
           baseline_predictions: Mapping[str, dict] | None = None) -> dict:
  """The results dictionary (``results.json``) for the validation and test splits.
  ``model_predictions``: split -> the model's forecasts in people ``[N, H]`` (task horizons) or
  scores ``[N, 3]`` / levels ``[N]`` (task levels); a split without one leaves the model out.
  ``baseline_predictions``: split -> ``baselines(dataset, split, fitted)``, computed if not given.
  ``out["splits"][split][method]`` is ``{"mae": [H], "mae_pct": [H], "n_windows": N}`` (seasonal
  methods, and any with fewer windows than the split, add ``model_mae_same_windows``, the model's
  MAE on their windows), or for task levels ``{"accuracy", "macro_f1", "n_windows"}``; NaN as
  None. Task horizons: ``out["baseline_intervals"][split][name]``, ``interval_report`` of each
  ``Interval`` among the baseline predictions (``gbm_quantile``)."""
  model_predictions = dict(model_predictions or {})
  if baseline_predictions is None:
    if fitted is None:
      fitted = fit_baselines(dataset)
    baseline_predictions = {split: baselines(dataset, split, fitted) for split in ("val", "test")}
  step = dataset.spec.step_minutes
  out = {"task": dataset.spec.task, "horizons": list(dataset.horizons),
         "horizon_minutes": [h * step for h in dataset.horizons], "capacity": dataset.capacity,
         "tertiles": list(dataset.tertiles) if dataset.tertiles is not None else None,
         "splits": {}}
  for split in ("val", "test"):
    s = dataset[split]
    preds = {k: v for k, v in baseline_predictions[split].items() if not isinstance(v, Interval)}
    entries = out["splits"][split] = {}
    if dataset.spec.task == "horizons":
      out.setdefault("baseline_intervals", {})[split] = {
          k: interval_report(v, s.target_people)
          for k, v in baseline_predictions[split].items() if isinstance(v, Interval)}
    if dataset.spec.task == "levels":
      if split in model_predictions:
        model = np.asarray(model_predictions[split])
        if model.ndim == 2 and model.shape[1] == len(LEVELS):
          model = model.argmax(axis=1)
        if model.shape != (len(s),):
          raise ValueError(f"report: model predictions for task levels must be [N, 3] scores or "
                           f"[N] levels with N = {len(s)}, got shape {model.shape}")
        preds = {"model": model.astype(np.int64), **preds}
      for name, p in preds.items():
        entries[name] = {
            "accuracy": float(accuracy_score(s.levels, p)),
            "macro_f1": float(f1_score(s.levels, p, labels=list(range(len(LEVELS))),
                                       average="macro", zero_division=0)),
            "n_windows": len(s)}
    else:
      model = None
      if split in model_predictions:
        model = np.asarray(model_predictions[split], np.float64)
        if model.shape != s.target_people.shape:
          raise ValueError(f"report: model predictions for {split!r} have shape {model.shape}, "
                           f"expected {s.target_people.shape} (people per horizon)")
        preds = {"model": model, **preds}
      for name, p in preds.items():
        m = mae(p, s.target_people)
        entry = {"mae": _floats(m.mae), "mae_pct": _floats(100 * m.mae / dataset.capacity),
                 "n_windows": m.n_windows}
        if model is not None and m.n_windows and (name.startswith("seasonal")
                                                  or m.n_windows < len(s)):
          rows = ~np.isnan(p).any(axis=1)
          entry["model_mae_same_windows"] = _floats(mae(model[rows], s.target_people[rows]).mae)
        entries[name] = entry
  return out


def format_table(results: dict) -> str:
  """Plain text, a row per method, a column per horizon for val and test: MAE in
  ``results["unit"]`` (default people) and % of capacity, the model's intervals if present
  (rnn_jax.evaluation.conformal.format_lines); levels: accuracy and macro-F1."""
  splits = [s for s in ("val", "test") if s in results.get("splits", {})]
  methods = list(dict.fromkeys(m for s in splits for m in results["splits"][s]))
  name_w = max([len(m) for m in methods] + [6])
  levels = results.get("task") == "levels"
  minutes = results.get("horizon_minutes") or results.get("horizons")
  unit, col = results.get("unit", "people"), 17

  def cells(e: dict | None) -> str:
    if levels:
      return "".join(("-" if e is None or e[key] is None else format(e[key], fmt)).rjust(width)
                     for key, fmt, width in (("accuracy", ".3f", 10), ("macro_f1", ".3f", 10),
                                             ("n_windows", "d", 7)))
    if e is None:
      return "-".rjust(col) * len(minutes) + "-".rjust(7)
    return "".join(("-" if v is None else f"{v:.2f} ({p:.1f}%)").rjust(col)
                   for v, p in zip(e["mae"], e["mae_pct"])) + f"{e['n_windows']:>7d}"

  if levels:
    lines = [f"levels at +{results['horizon_minutes'][0]} min", "method".ljust(name_w) + "".join(
        f"{s + ' acc':>10}{s + ' F1':>10}{'n':>7}" for s in splits)]
  else:
    header = "".join(f"+{m} min".rjust(col) for m in minutes) + f"{'n':>7}"
    lines = [f"MAE in {unit} (% of capacity {results.get('capacity', float('nan')):g})",
             " " * name_w + "".join(f"  {s.upper()}".ljust(col * len(minutes) + 7)
                                    for s in splits),
             "method".ljust(name_w) + header * len(splits)]
  lines += [m.ljust(name_w) + "".join(cells(results["splits"][s].get(m)) for s in splits)
            for m in methods]
  if not levels:
    lines += conformal.format_lines(results, name_w, col)
  return "\n".join(lines)

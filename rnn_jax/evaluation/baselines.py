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
Both are clipped to [0, capacity] people, the range of the model's sigmoid outputs. Task
``levels``: accuracy and macro-F1 for the model, ``persistence`` (the last reading's level) and
``ridge_threshold`` (ridge cut at the training tertiles).
"""
from __future__ import annotations

import math
from typing import Mapping, NamedTuple

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import RidgeCV
from sklearn.metrics import accuracy_score, f1_score
from threadpoolctl import threadpool_limits

from rnn_jax.data import LEVELS, Dataset, Split, levels_of
from rnn_jax.evaluation import conformal

HORIZON_METHODS = ("model", "persistence", "seasonal_naive_day", "seasonal_naive_week", "ridge",
                   "gbm")
RIDGE_ALPHAS = tuple(float(a) for a in np.logspace(-4, 3, 15))
GBM_MAX_ITER = 100


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


class FittedBaselines(NamedTuple):
  ridge: RidgeCV
  gbm: tuple[HistGradientBoostingRegressor, ...] | None  # one per horizon; None for task levels


def fit_baselines(dataset: Dataset, *, gbm: bool = True,
                  gbm_max_iter: int = GBM_MAX_ITER) -> FittedBaselines:
  """Fits ridge (and, for task horizons, one gbm per horizon) on the training split."""
  x = features(dataset, dataset.train)
  y = dataset.train.target_people / dataset.capacity  # [N, H] unclipped fractions
  ridge = RidgeCV(alphas=RIDGE_ALPHAS).fit(x, y)
  models = None
  if gbm and dataset.spec.task == "horizons":
    # One OpenMP thread: the same numbers on every machine, and no oversubscription (on a loaded
    # 2-core machine the default threads made the gym fit 3-7x slower than one thread).
    with threadpool_limits(limits=1, user_api="openmp"):
      models = tuple(HistGradientBoostingRegressor(max_iter=gbm_max_iter, early_stopping=False,
                                                   random_state=0).fit(x, y[:, k])
                     for k in range(y.shape[1]))
  return FittedBaselines(ridge=ridge, gbm=models)


def _clip(dataset: Dataset, fractions: np.ndarray) -> np.ndarray:
  return np.clip(np.asarray(fractions, np.float64).reshape(len(fractions), -1), 0.0,
                 1.0) * dataset.capacity


def baselines(dataset: Dataset, split: str,
              fitted: FittedBaselines | None = None) -> dict[str, np.ndarray]:
  """Baseline predictions on one split: name -> people [N, H] (task horizons) or level [N] int64
  (task levels); ``fitted`` (``fit_baselines``) avoids refitting per split."""
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
  if fitted.gbm is not None:
    with threadpool_limits(limits=1, user_api="openmp"):
      out["gbm"] = _clip(dataset, np.stack([m.predict(x) for m in fitted.gbm], axis=1))
  return out


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
  methods add ``model_mae_same_windows``, the model's MAE on their windows), or for task levels
  ``{"accuracy", "macro_f1", "n_windows"}``; NaN as None."""
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
    preds = baseline_predictions[split]
    entries = out["splits"][split] = {}
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
        if model is not None and name.startswith("seasonal") and m.n_windows:
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

"""Honest evaluation: the model's errors next to simple baselines on the same windows.

Everything is in people (the original units) and in % of the capacity. Baselines
(see rnn_jax.data.Split for the arrays they use):

* ``persistence``: the window's last reading, for every horizon.
* ``seasonal_naive_day`` / ``seasonal_naive_week``: the reading one day / one week before the
  target (Hyndman and Athanasopoulos, "Forecasting: Principles and Practice", 3rd ed., sec. 5.2).
  Where that reading does not exist (a gap, or before the data starts) the baseline has no
  value; its MAE is taken over the windows where it has a value for every horizon, and
  ``n_windows`` says how many (``model_mae_same_windows`` gives the model on those windows).
* ``ridge``: scikit-learn ``RidgeCV`` on the window's T readings / capacity (plus the calendar
  features of the window's last step when the spec uses them), one linear output per horizon,
  alpha chosen by efficient leave-one-out on the training split only (validation stays unseen).
* ``gbm``: scikit-learn ``HistGradientBoostingRegressor`` per horizon on the same features,
  ``random_state=0``, 100 iterations, no early stopping (so it is deterministic and needs no
  held-out part of the training data), one OpenMP thread.

Ridge and gbm are fitted on the training split and predict occupancy fractions; predictions
are clipped to [0, capacity] people, the range the model's sigmoid outputs can express.
For task ``levels``: accuracy and macro-F1 (``sklearn.metrics``) for the model,
``persistence`` (the level of the window's last reading) and ``ridge_threshold`` (the ridge
forecast at the level horizon, cut at the training tertiles).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Mapping, NamedTuple

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import RidgeCV
from sklearn.metrics import accuracy_score, f1_score
from threadpoolctl import threadpool_limits

from rnn_jax.data import LEVELS, Dataset, Split, levels_of

HORIZON_METHODS = ("model", "persistence", "seasonal_naive_day", "seasonal_naive_week", "ridge",
                   "gbm")
LEVEL_METHODS = ("model", "persistence", "ridge_threshold")
RIDGE_ALPHAS = tuple(float(a) for a in np.logspace(-4, 3, 15))
GBM_MAX_ITER = 100


class MAE(NamedTuple):
  """Mean absolute error per horizon and the number of windows it was taken over."""
  mae: np.ndarray   # [H] float64, people (NaN when n_windows is 0)
  n_windows: int    # windows whose prediction has a value at every horizon


def mae(pred_people, target_people) -> MAE:
  """Per-horizon MAE of ``pred_people`` [N, H] against ``target_people`` [N, H].

  Windows where any horizon's prediction is NaN (a seasonal baseline without an earlier
  reading) are left out, so every horizon is averaged over the same windows.
  """
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
  """[N, T (+4)] baseline features: readings / capacity, plus calendar at the last step."""
  parts = [split.window_people / dataset.capacity]
  if "calendar" in dataset.spec.features:
    parts.append(split.calendar)
  return np.concatenate(parts, axis=1)


@dataclasses.dataclass(frozen=True, eq=False)
class FittedBaselines:
  """Ridge and gradient boosting fitted on a dataset's training split."""
  ridge: RidgeCV
  gbm: tuple[HistGradientBoostingRegressor, ...] | None  # one per horizon; None for task levels


def fit_baselines(dataset: Dataset, *, gbm: bool = True,
                  gbm_max_iter: int = GBM_MAX_ITER) -> FittedBaselines:
  """Fits ridge (and, for task horizons, one gbm per horizon) on the training split."""
  train = dataset.train
  x = features(dataset, train)
  y = train.target_people / dataset.capacity  # [N, H] unclipped fractions
  ridge = RidgeCV(alphas=RIDGE_ALPHAS).fit(x, y)
  models = None
  if gbm and dataset.spec.task == "horizons":
    # One OpenMP thread: the same numbers on every machine, and no oversubscription when JAX
    # or other processes share the cores (on a loaded 2-core machine the default threads made
    # the gym fit 3-7x slower than one thread).
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
  """Baseline predictions on one split.

  Task horizons: name -> people [N, H] for persistence, seasonal_naive_day,
  seasonal_naive_week, ridge, gbm. Task levels: name -> level [N] int64 for persistence and
  ridge_threshold. ``fitted`` (from ``fit_baselines``) avoids refitting for every split.
  """
  s = dataset[split]
  if fitted is None:
    fitted = fit_baselines(dataset, gbm=dataset.spec.task == "horizons")
  x = features(dataset, s)
  ridge = _clip(dataset, fitted.ridge.predict(x))
  last = s.window_people[:, -1]
  if dataset.spec.task == "levels":
    return {"persistence": levels_of(last, dataset.tertiles),
            "ridge_threshold": levels_of(ridge[:, 0], dataset.tertiles)}
  h = len(dataset.horizons)
  out = {"persistence": np.repeat(last[:, None], h, axis=1),
         "seasonal_naive_day": s.naive_day.copy(),
         "seasonal_naive_week": s.naive_week.copy(),
         "ridge": ridge}
  if fitted.gbm is not None:
    with threadpool_limits(limits=1, user_api="openmp"):
      out["gbm"] = _clip(dataset, np.stack([m.predict(x) for m in fitted.gbm], axis=1))
  return out


def _floats(values) -> list[float | None]:
  """JSON-safe list: NaN becomes None (results.json is written with allow_nan=False)."""
  return [None if not math.isfinite(v) else float(v) for v in np.asarray(values, np.float64)]


def _model_levels(pred, n: int) -> np.ndarray:
  pred = np.asarray(pred)
  if pred.ndim == 2 and pred.shape[1] == len(LEVELS):
    pred = pred.argmax(axis=1)
  if pred.shape != (n,):
    raise ValueError(f"report: model predictions for task levels must be [N, 3] scores or [N] "
                     f"levels with N = {n}, got shape {np.shape(pred)}")
  return pred.astype(np.int64)


def report(dataset: Dataset, model_predictions: Mapping[str, np.ndarray] | None = None, *,
           fitted: FittedBaselines | None = None,
           baseline_predictions: Mapping[str, dict] | None = None) -> dict:
  """The results dictionary (``results.json``) for the validation and test splits.

  ``model_predictions``: split name -> the model's forecasts in people ``[N, H]`` (task
  horizons; use ``dataset.to_people(sigmoid outputs)``) or its scores ``[N, 3]`` / levels ``[N]``
  (task levels). Splits or the whole argument may be left out; the model is then absent.

  Task horizons: ``{"splits": {split: {method: {"mae": [H], "mae_pct": [H], "n_windows": N}}}}``
  (seasonal methods add ``model_mae_same_windows`` when the model is given). Task levels:
  ``{method: {"accuracy", "macro_f1", "n_windows"}}``. Top-level keys also give the task,
  horizons (steps and minutes), capacity and tertiles. NaN is written as None.
  ``baseline_predictions``: split -> ``baselines(dataset, split, fitted)``, when the caller has
  them already (a report per model of an ensemble); otherwise they are computed here.
  """
  model_predictions = dict(model_predictions or {})
  if baseline_predictions is None:
    if fitted is None:
      fitted = fit_baselines(dataset, gbm=dataset.spec.task == "horizons")
    baseline_predictions = {split: baselines(dataset, split, fitted) for split in ("val", "test")}
  step = dataset.spec.step_minutes
  out = {"task": dataset.spec.task, "horizons": list(dataset.horizons),
         "horizon_minutes": [h * step for h in dataset.horizons], "capacity": dataset.capacity,
         "tertiles": list(dataset.tertiles) if dataset.tertiles is not None else None,
         "splits": {}}
  for split in ("val", "test"):
    s = dataset[split]
    preds = baseline_predictions[split]
    entries = {}
    if dataset.spec.task == "levels":
      truth = s.levels
      if split in model_predictions:
        preds = {"model": _model_levels(model_predictions[split], len(s)), **preds}
      for name, p in preds.items():
        entries[name] = {
            "accuracy": float(accuracy_score(truth, p)),
            "macro_f1": float(f1_score(truth, p, labels=list(range(len(LEVELS))),
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
    out["splits"][split] = entries
  return out


def _cell(value, width: int, fmt: str) -> str:
  return ("-" if value is None else format(value, fmt)).rjust(width)


def format_table(results: dict) -> str:
  """A plain-text table: one row per method, a column per horizon for val and for test.

  Task horizons: MAE in the series' unit (``results["unit"]``, default people) with % of
  capacity in brackets, then the model's interval coverage and width when present; task
  levels: accuracy and macro-F1.
  """
  splits = [s for s in ("val", "test") if s in results.get("splits", {})]
  methods = []
  for s in splits:
    methods += [m for m in results["splits"][s] if m not in methods]
  name_w = max([len(m) for m in methods] + [6])
  lines = []
  if results.get("task") == "levels":
    header = "method".ljust(name_w) + "".join(
        f"{s + ' acc':>10}{s + ' F1':>10}{'n':>7}" for s in splits)
    lines += [f"levels at +{results['horizon_minutes'][0]} min", header]
    for m in methods:
      row = m.ljust(name_w)
      for s in splits:
        e = results["splits"][s].get(m)
        row += (_cell(e and e["accuracy"], 10, ".3f") + _cell(e and e["macro_f1"], 10, ".3f")
                + _cell(e and e["n_windows"], 7, "d"))
      lines.append(row)
    return "\n".join(lines)
  minutes = results.get("horizon_minutes") or results.get("horizons")
  col = 17
  cols = "".join(f"+{m} min".rjust(col) for m in minutes)
  width = col * len(minutes) + 7
  unit = results.get("unit", "people")
  lines.append(f"MAE in {unit} (% of capacity {results.get('capacity', float('nan')):g})")
  lines.append(" " * name_w + "".join(f"  {s.upper()}".ljust(width) for s in splits))
  lines.append("method".ljust(name_w) + "".join(cols + f"{'n':>7}" for _ in splits))
  for m in methods:
    row = m.ljust(name_w)
    for s in splits:
      e = results["splits"][s].get(m)
      if e is None:
        row += "-".rjust(col) * len(minutes) + "-".rjust(7)
        continue
      for v, p in zip(e["mae"], e["mae_pct"]):
        row += ("-" if v is None else f"{v:.2f} ({p:.1f}%)").rjust(col)
      row += f"{e['n_windows']:>7d}"
    lines.append(row)
  lines += _interval_lines(results, splits, unit, name_w, col)
  return "\n".join(lines)


def _interval_lines(results: dict, splits: list[str], unit: str, name_w: int,
                    col: int) -> list[str]:
  """Coverage and mean width of the model's interval (``model.interval``), when present."""
  entries = [results["splits"][s].get("model", {}).get("interval") for s in splits]
  if not all(entries):
    return []
  level = entries[0]["level"]
  lines = [f"model's {100 * level:g}% interval (split-conformal, calibrated on val): coverage, "
           f"mean width in {unit}"]
  for key, fmt in (("coverage", ".3f"), ("mean_width", ".2f")):
    row = key.ljust(name_w)
    for e in entries:
      row += "".join(format(v, fmt).rjust(col) for v in e[key]) + " " * 7
    lines.append(row.rstrip())
  return lines

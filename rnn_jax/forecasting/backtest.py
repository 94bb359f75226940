"""Backtests: expanding-window cross-validation of the occupancy run, refitted at every cutoff,
with every forecast written in the layout of statsforecast's ``cross_validation``.

    python experiments/train_occupancy.py --csv ../shared/data/campus_gym.csv --folds 3 --out cv

The folds. With ``--splits f_train,f_val,f_test`` on a grid of m bins, the ordinary run's
validation block holds V bins and its test block L (the bounds ``windows.make_dataset`` takes:
``round(m f_train)``, ``round(m (f_train + f_val))``). The grid's final N L bins are cut into N
consecutive test blocks of L bins; fold k (1..N) keeps the readings before the end of its block
(``data.before``: nothing later is read), tests on the block, validates on the V bins just before
it and trains on everything earlier, an expanding window. Fold N is the ordinary run's split;
fold 1 trains on the first m - V - N L bins, refused when that is fewer than L (``plan``). Each
fold is a complete run directory, ``--out/fold_<k>/`` (``occupancy.run``, no plots: capacity,
baselines and the conformal intervals are fitted on that fold's own training and validation
blocks). Sensor faults are masked as in any run, found on the whole file (``DataSource.load``).
Several series (``run_series``, a panel's): each series' folds in ``--out/<name>/fold_<k>/``,
all their rows in the one csv.

``--out/cross_validation.csv``: one row per test window and horizon of every fold, columns

    unique_id  the series' name (the CSV file's stem, "synthetic" for the built-in series)
    ds         the target time, the UTC start of its grid bin (ISO 8601, ``Z``)
    cutoff     the forecast origin: the UTC start of the window's last reading bin
    horizon    minutes ahead (ds - cutoff)
    y          the reading at ds, in the series' units
    model      the model's point forecast (the median with --loss pinball)
    model-lo-<level>, model-hi-<level>
               its interval, calibrated on the fold's validation block: conformalized quantile
               regression with --loss pinball, else the symmetric split-conformal one
               (rnn_jax.evaluation.conformal); level in percent, as statsforecast names them
    persistence, seasonal_naive_day, ..., gbm, gbm_median, mstl
               each baseline's point forecast (rnn_jax.evaluation.baselines; empty: none)
    gbm_quantile-lo-<level>, gbm_quantile-hi-<level>
               the quantile gradient-boosting baseline's interval

``--out/backtest.json``: per fold its blocks, cutoffs, windows, MAE per horizon of every method
and the model interval's coverage, mean width and interval score; ``mean``: their mean over the
folds (a method without windows in a fold has no mean: None).
"""
from __future__ import annotations

import csv
import dataclasses
import io
import os
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from rnn_jax import data, evaluation
from rnn_jax.common import fileio
from rnn_jax.common.errors import InputError
from rnn_jax.data import Dataset, Readings, WindowSpec
from rnn_jax.evaluation import conformal
from rnn_jax.forecasting import occupancy
from rnn_jax.settings import INTERVAL, DataSource, TrainConfig

CSV = "cross_validation.csv"
REPORT = "backtest.json"


class Fold(NamedTuple):
  """One fold's blocks, in bins of the whole series' grid: train ``[0, val_start)``, val
  ``[val_start, test_start)``, test ``[test_start, test_end)``."""
  k: int
  val_start: int
  test_start: int
  test_end: int


def fold_dir(out: str | os.PathLike, k: int) -> Path:
  return Path(out) / f"fold_{k}"


def plan(m: int, spec: WindowSpec, folds: int) -> list[Fold]:
  """The N folds of a grid of ``m`` bins (module docstring); InputError when fold 1 would
  train on fewer bins than a test block holds."""
  f = spec.splits
  b1, b2 = int(round(m * f[0])), int(round(m * (f[0] + f[1])))
  V, L = b2 - b1, m - b2
  first_train = m - V - folds * L
  if first_train < max(L, 1):
    most = max((m - V - L) // L if L else 0, 0)
    raise InputError(f"--folds {folds}: fold 1 would train on {max(first_train, 0)} of the "
                     f"grid's {m} bins, fewer than a test block's {L} (--splits "
                     f"{','.join(f'{s:g}' for s in f)}); expected --folds {most} or fewer, or a "
                     "smaller test fraction")
  return [Fold(k, m - (folds - k + 1) * L - V, m - (folds - k + 1) * L, m - (folds - k) * L)
          for k in range(1, folds + 1)]


def fold_data(readings: Readings, spec: WindowSpec, grid: data.Grid,
              fold: Fold) -> tuple[Readings, WindowSpec]:
  """The fold's readings (before its test block's end) and the window settings whose splits
  give its blocks on the grid those readings make (which ends earlier when the last bins are
  empty)."""
  step = np.timedelta64(spec.step_minutes, "m")
  cut = data.before(readings, grid.times[0] + fold.test_end * step)
  m = len(data.to_grid(cut, spec.step_minutes, spec.max_gap)) if len(cut) else 0
  if m <= fold.test_start:
    raise InputError("no reading in the test block; expected fewer folds")
  splits = (fold.val_start / m, (fold.test_start - fold.val_start) / m,
            (m - fold.test_start) / m)
  return cut, dataclasses.replace(spec, splits=splits)


def prepare(readings: Readings, spec: WindowSpec, folds: int) -> list[tuple[Fold, Readings,
                                                                          WindowSpec]]:
  """Every fold's blocks, readings and window settings, each fold's windows made once here so
  that a fold without a usable window is refused (naming it and its test block) before
  anything is written."""
  grid = data.to_grid(readings, spec.step_minutes, spec.max_gap)
  step = np.timedelta64(spec.step_minutes, "m")
  out = []
  for fold in plan(len(grid), spec, folds):
    try:
      cut, fold_spec = fold_data(readings, spec, grid, fold)
      dataset = data.make_dataset(cut, fold_spec)
    except InputError as err:
      raise InputError(f"--folds {folds}: fold {fold.k} (test block "
                       f"{_iso(grid.times[fold.test_start])} to "
                       f"{_iso(grid.times[fold.test_end - 1] + step)}): {err}") from None
    bounds = (dataset.train.bounds[1], dataset.val.bounds[1])
    if bounds != (fold.val_start, fold.test_start):   # the fractions' rounding, checked
      raise AssertionError(f"fold {fold.k}: split bounds {bounds}, expected "
                           f"{(fold.val_start, fold.test_start)}")
    out.append((fold, cut, fold_spec))
  return out


def series_name(source: DataSource) -> str:
  return Path(source.csv).stem if source.csv is not None else "synthetic"


def _iso(times) -> np.ndarray:
  return np.char.add(np.datetime_as_string(np.asarray(times, "datetime64[s]"), unit="s"), "Z")


def level_name(interval: float) -> str:
  """statsforecast's level in percent: 0.8 -> "80", 0.975 -> "97.5"."""
  return f"{100 * interval:.10g}"


def fold_forecasts(dataset: Dataset, result: dict, interval: float) -> dict[str, np.ndarray]:
  """Column name -> ``[N, H]`` on the fold's test split: ``model``, its interval bounds (the
  ones the fold's results.json scores: with quantile outputs the CQR interval adapted online,
  ``occupancy.online_q``, else the symmetric one) and every baseline's."""
  results, test, level = result["results"], dataset.test, level_name(interval)
  model = occupancy.point_forecast(dataset, result["member_preds"]["test"],
                                   median=result["bands"] is not None)
  entry = results["splits"]["test"]["model"]
  if result["bands"] is not None:
    bands = result["bands"]["test"]
    lo, hi = conformal.cqr_intervals(bands[..., 0], bands[..., 2],
                                     occupancy.online_q(dataset, result["bands"], interval)[0],
                                     dataset.capacity)
  else:
    lo, hi = conformal.intervals(model, np.asarray(entry["interval"]["q"]), dataset.capacity)
  cols = {"model": model, f"model-lo-{level}": lo, f"model-hi-{level}": hi}
  intervals = {}
  for name, value in result["base"]["test"].items():
    if isinstance(value, np.ndarray) and value.shape == test.target_people.shape:
      cols[name] = np.asarray(value, np.float64)
    elif isinstance(value, evaluation.Interval):
      intervals[f"{name}-lo-{level}"], intervals[f"{name}-hi-{level}"] = value.lo, value.hi
  return {**cols, **intervals}


def fold_rows(name: str, dataset: Dataset, cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """The fold's rows of cross_validation.csv, column -> ``[N H]``, window by window, horizon by
  horizon within each."""
  test = dataset.test
  n, h = test.target_people.shape
  minutes = np.asarray(dataset.horizons) * dataset.spec.step_minutes
  rows = {"unique_id": np.full(n * h, name, dtype=object),
          "ds": _iso(test.target_times.reshape(-1)),
          "cutoff": _iso(np.repeat(test.end_times, h)),
          "horizon": np.tile(minutes, n), "y": test.target_people.reshape(-1)}
  rows.update({k: np.asarray(v, np.float64).reshape(-1) for k, v in cols.items()})
  return rows


def _cell(value) -> str:
  if isinstance(value, (float, np.floating)):
    return "" if not np.isfinite(value) else format(float(value), ".10g")
  return str(value)


def to_csv(parts: list[dict[str, np.ndarray]]) -> str:
  """The CSV text of the folds' rows: every column of any fold, in the order they first appear;
  NaN, or a column a fold lacks, is an empty cell."""
  columns = list(dict.fromkeys(c for part in parts for c in part))
  buf = io.StringIO()
  writer = csv.writer(buf, lineterminator="\n")
  writer.writerow(columns)
  for part in parts:
    n = len(part["ds"])
    cells = [part[c] if c in part else np.full(n, np.nan) for c in columns]
    for row in zip(*cells):
      writer.writerow([_cell(v) for v in row])
  return buf.getvalue()


def _floats(values) -> list[float | None]:
  return [float(v) if np.isfinite(v) else None for v in np.asarray(values, np.float64)]


def fold_summary(fold: Fold, dataset: Dataset, cols: dict[str, np.ndarray], result: dict,
                 run: Path) -> dict:
  """backtest.json's entry of one fold: blocks, cutoffs, MAE per method and horizon (over the
  windows where the method has a forecast, ``evaluation.mae``), the model interval's scores."""
  test, summary = dataset.test, dataset.summary()
  entry = result["results"]["splits"]["test"]["model"]
  iv = entry["cqr_online"] if result["bands"] is not None else entry["interval"]
  mae = {name: _floats(evaluation.mae(pred, test.target_people).mae)
         for name, pred in cols.items() if "-lo-" not in name and "-hi-" not in name}
  return {"fold": fold.k, "run": str(run), "blocks": summary["splits"],
          "cutoff_first": str(_iso(test.end_times.min())), "cutoff_last":
          str(_iso(test.end_times.max())), "n_windows": len(test),
          "capacity": dataset.capacity, "mae": mae,
          "interval": {"method": "cqr_online" if result["bands"] is not None else
                       "split_conformal",
                       **{k: iv[k] for k in ("level", "coverage", "mean_width",
                                             "interval_score")}}}


def _mean(lists: list[list]) -> list[float | None]:
  a = np.asarray([[np.nan if v is None else v for v in lst] for lst in lists], np.float64)
  return _floats(a.mean(axis=0))


def best_baseline(mae: dict[str, list]) -> tuple[list[str | None], list[float | None]]:
  """Per horizon the baseline with the lowest MAE (None where no baseline has one)."""
  names = [n for n in mae if n != "model"]
  a = np.asarray([[np.nan if v is None else v for v in mae[n]] for n in names], np.float64)
  best, values = [], []
  for j in range(a.shape[1]):
    if np.isnan(a[:, j]).all():
      best.append(None)
      values.append(None)
    else:
      i = int(np.nanargmin(a[:, j]))
      best.append(names[i])
      values.append(float(a[i, j]))
  return best, values


def summarize(folds: list[dict], minutes: list[int], name: str) -> dict:
  """backtest.json: the folds and their mean; per fold and for the mean the best baseline per
  horizon and the model's MAE over its (``ratio``)."""
  methods = list(folds[0]["mae"])
  mean = {"mae": {m: _mean([f["mae"][m] for f in folds]) for m in methods},
          "interval": {"method": folds[0]["interval"]["method"],
                       "level": folds[0]["interval"]["level"],
                       **{k: _mean([f["interval"][k] for f in folds])
                          for k in ("coverage", "mean_width", "interval_score")}}}
  for entry in folds + [mean]:
    best, values = best_baseline(entry["mae"])
    entry["best_baseline"], entry["best_baseline_mae"] = best, values
    entry["ratio"] = [None if b is None or m is None or b == 0 else m / b
                      for m, b in zip(entry["mae"]["model"], values)]
  return {"unique_id": name, "n_folds": len(folds), "horizon_minutes": minutes, "folds": folds,
          "mean": mean}


def format_table(report: dict, unit: str = "people") -> str:
  """Per fold and the mean over folds: the model's MAE, the best baseline's and their ratio per
  horizon (below 1: the model wins)."""
  minutes = report["horizon_minutes"]
  fmt = lambda v, spec: "-" if v is None else format(v, spec)
  head = "".join(f"{'+' + str(m) + 'm model':>13}{'best':>8}{'ratio':>7}" for m in minutes)
  lines = [f"backtest, {report['n_folds']} folds: test MAE ({unit}) of the model and the best "
           "baseline per horizon, and their ratio (below 1: the model wins)",
           f"{'fold':<6}{'first cutoff (UTC)':<22}{'windows':>8}" + head]
  for f in report["folds"] + [dict(report["mean"], fold="mean")]:
    cells = "".join(f"{fmt(m, '.3f'):>13}{fmt(b, '.3f'):>8}{fmt(r, '.3f'):>7}"
                    for m, b, r in zip(f["mae"]["model"], f["best_baseline_mae"], f["ratio"]))
    lines.append(f"{str(f['fold']):<6}{f.get('cutoff_first', ''):<22}"
                 f"{str(f.get('n_windows', '')):>8}" + cells)
  iv = report["mean"]["interval"]
  lines.append(f"model's {100 * iv['level']:g}% interval ({iv['method']}), mean over folds: "
               "coverage " + " ".join(fmt(v, ".3f") for v in iv["coverage"]) + ", width "
               + " ".join(fmt(v, ".2f") for v in iv["mean_width"]))
  return "\n".join(lines)


def _check(spec: WindowSpec, cfg: TrainConfig, out: Path, folds, overwrite: bool) -> int:
  if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
    raise InputError(f"--folds: expected an integer >= 2 (0 or none: no backtest), got {folds!r}")
  if spec.task != "horizons":
    raise InputError(f"--folds with --task {spec.task}: a backtest scores forecasts per "
                     "horizon; expected --task horizons")
  cfg.validate()
  if out.exists() and not out.is_dir():
    raise InputError(f"--out {out}: exists and is not a directory")
  for name in (CSV, REPORT):
    if (out / name).exists() and not overwrite:
      raise InputError(f"--out {out}: holds a backtest ({name}); give --overwrite to replace it")
  return int(folds)


def run(source: DataSource, spec: WindowSpec, cfg: TrainConfig, out: str | os.PathLike,
        folds: int, *, overwrite: bool = False, progress: bool = True, make_plots: bool = False,
        interval: float = INTERVAL, preset: str | None = None, log=print) -> dict[str, Any]:
  """Runs the N folds (``occupancy.run`` in ``out/fold_<k>``), then writes
  ``out/cross_validation.csv`` and ``out/backtest.json`` and logs the table. Returns
  ``{"report": dict | None, "status"}``: the first fold's status that is not "done" (the
  backtest stops there, writing neither file)."""
  return run_series([(series_name(source), source)], spec, cfg, out, folds, overwrite=overwrite,
                    progress=progress, make_plots=make_plots, interval=interval, preset=preset,
                    log=log, panel=False)


def run_series(series, spec: WindowSpec, cfg: TrainConfig, out: str | os.PathLike, folds: int, *,
               overwrite: bool = False, progress: bool = True, make_plots: bool = False,
               interval: float = INTERVAL, preset: str | None = None, log=print,
               panel: bool = True) -> dict[str, Any]:
  """The backtest of every ``(name, source)`` in ``series``; with ``panel`` (several series,
  rnn_jax.forecasting.panel) series ``name``'s folds are in ``out/<name>/fold_<k>``, every
  series' rows are in the one ``out/cross_validation.csv`` (``unique_id`` tells them apart) and
  ``out/backtest.json`` holds ``{"series": [each series' report], "n_folds",
  "horizon_minutes"}``; without it ``run``'s layout. Every series' folds are checked before
  anything is written."""
  out = Path(out)
  folds = _check(spec, cfg, out, folds, overwrite)
  cfg = cfg.validate()
  plans = []
  for name, source in series:
    source.check()
    try:
      prepared = prepare(source.load(), spec, folds)
    except InputError as err:
      raise InputError(f"series {name!r}: {err}" if panel else str(err)) from None
    base = out / name if panel else out
    for fold, _, _ in prepared:
      occupancy.check_out(fold_dir(base, fold.k), resume=False, overwrite=overwrite)
    plans.append((name, source, base, prepared))
  minutes = [int(h) * spec.step_minutes for h in spec.target_horizons]
  parts, reports = [], []
  for name, source, base, prepared in plans:
    entries = []
    for fold, cut, fold_spec in prepared:
      log(f"{name + ': ' if panel else ''}fold {fold.k}/{folds}")
      result = occupancy.run(source, fold_spec, cfg, fold_dir(base, fold.k), overwrite=overwrite,
                             progress=progress, make_plots=make_plots, interval=interval,
                             preset=preset, readings=cut, log=log)
      if result["status"] != "done":
        return {"report": None, "status": result["status"]}
      dataset = result["dataset"]
      cols = fold_forecasts(dataset, result, interval)
      parts.append(fold_rows(name, dataset, cols))
      entries.append(fold_summary(fold, dataset, cols, result, fold_dir(base, fold.k)))
    reports.append(summarize(entries, minutes, name))
  report = ({"series": reports, "n_folds": folds, "horizon_minutes": minutes} if panel
            else reports[0])
  fileio.write_text(out / CSV, to_csv(parts))
  fileio.write_json(out / REPORT, report)
  for (name, source, _, _), r in zip(plans, reports):
    log((f"series {name}\n" if panel else "") + format_table(r, source.unit))
  log(f"backtest saved in {out} ({CSV}, {REPORT})")
  return {"report": report, "status": "done"}

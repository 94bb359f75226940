"""Forecasting with a finished occupancy run (experiments/forecast.py): the mean of its models
for the newest complete window of a CSV, with the run's interval, in local time and units:

    newest complete window ends 2017-03-18 23:50 UTC-07:00 (capacity 145 people; the mean of 5 models)
      +10 min (00:00 UTC-07:00): 2 people (80%: 0-7), 1% of capacity

A run trained with ``--loss pinball`` forecasts the median and the conformalized quantile
interval (``(80% CQR: 0-9)``); any other run the mean and the symmetric split-conformal one.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from rnn_jax import data
from rnn_jax.common.errors import InputError
from rnn_jax.core import model
from rnn_jax.data import WindowSpec
from rnn_jax.data.timestamps import NS_PER_MINUTE, local_wall_ns
from rnn_jax.evaluation import conformal
from rnn_jax.forecasting.occupancy import (CONFIG, RESULTS, DataSource, bands_of, member_predict,
                                           quantile_setup, read_config)
from rnn_jax.train import checkpoint


def load_run(run_dir: str | os.PathLike) -> tuple[dict, model.RNNParams]:
  """(config, best parameters, ``[N, ...]`` for ``--seeds N``) of a run; InputError if unusable."""
  config = read_config(run_dir)
  ckpt = Path(run_dir) / checkpoint.FILENAME
  if not ckpt.is_file():
    raise InputError(f"--run {run_dir}: no {checkpoint.FILENAME} (the run has not completed an "
                     "epoch)")
  state = checkpoint.load(ckpt)
  params = checkpoint.params_of(state, ckpt)
  try:   # [N, T, D] of the windows the checkpoint was trained on
    trained_T = json.loads(state["data"])["train_xs"]["shape"][1]
  except (KeyError, TypeError, ValueError, IndexError):
    trained_T = None
  if trained_T is not None and trained_T != config["windows"].window:
    raise InputError(f"--run {run_dir}: checkpoint was trained on windows of {trained_T} steps "
                     f"but {CONFIG} says window {config['windows'].window}: incompatible run")
  spec, cfg = config["windows"], config["train"]
  lead = (cfg.seeds,) if params.U.ndim == 3 else ()
  expected = {"U": (cfg.hidden_size, cfg.hidden_size), "V": (cfg.hidden_size, spec.input_size),
              "W": (quantile_setup(spec, cfg)[0], cfg.hidden_size)}
  for name, shape in expected.items():
    actual = tuple(getattr(params, name).shape)
    if actual != lead + shape:
      raise InputError(f"--run {run_dir}: checkpoint {name} has shape {list(actual)} but "
                       f"{CONFIG} (window {spec.window}, features {','.join(spec.features)}, "
                       f"hidden {cfg.hidden_size}, seeds {cfg.seeds}) needs "
                       f"{list(lead + shape)}: incompatible run")
  return config, params


def local_time(times_utc: np.ndarray, readings: data.Readings) -> tuple[list[str], str]:
  """``(["YYYY-MM-DD HH:MM", ...], zone)``: ``times_utc`` in the IANA zone of ``readings`` (as
  the calendar features take it), else at the UTC offset of its newest reading."""
  utc = np.atleast_1d(np.asarray(times_utc, "datetime64[ns]"))
  if readings.timezone:
    local, zone = local_wall_ns(utc.astype(np.int64), readings.timezone), readings.timezone
  else:
    offset = int(readings.local_offset_minutes[-1]) if len(readings) else 0
    local = utc.astype(np.int64) + offset * NS_PER_MINUTE
    sign, mins = ("+" if offset >= 0 else "-"), abs(offset)
    zone = "UTC" if offset == 0 else f"UTC{sign}{mins // 60:02d}:{mins % 60:02d}"
  text = np.datetime_as_string(np.asarray(local, "datetime64[ns]"), unit="m")
  return [t.replace("T", " ") for t in text], zone


def forecast(run_dir: str | os.PathLike, source: DataSource) -> dict[str, Any]:
  """What ``--json`` prints: per horizon the value, the share of capacity and the run's interval
  (when its results.json has one), with times in UTC and local time. A pinball run's value is
  the median of its quantile outputs (rounded to a whole count where the series counts, as in
  evaluation) and its interval the CQR one (``interval_method``)."""
  iso_utc = lambda t: str(np.datetime64(t, "s")) + "Z"
  config, params = load_run(run_dir)
  spec: WindowSpec = config["windows"]
  readings = source.load()
  window = data.newest_window(readings, spec, config["capacity"])
  members = np.asarray(member_predict(params, window.xs, config["train"].anchor),
                       np.float64)[:, 0]                                      # [S, K]
  quantiles = config["train"].loss == "pinball"
  bands = bands_of(members).mean(axis=0) if quantiles else None          # [H, 3]
  z = bands[:, 1] if quantiles else members.mean(axis=0)
  if quantiles and config["raw"]["data"].get("whole_counts"):   # as Dataset.median_point
    z = np.round(z * config["capacity"]) / config["capacity"]
  step = np.timedelta64(spec.step_minutes, "m")
  capacity, unit = config["capacity"], config["source"].unit
  horizons = spec.horizons if spec.task == "horizons" else spec.target_horizons[:1]
  times = np.array([window.end_time + h * step for h in horizons])
  local, zone = local_time(np.r_[window.end_time, times], readings)
  out = {"window_end_utc": iso_utc(window.end_time), "window_end_local": local[0],
         "timezone": zone, "task": spec.task, "capacity": capacity, "unit": unit,
         "models": len(members), "forecasts": []}
  iv = None
  if spec.task == "horizons":   # the run's interval: calibrated on val (CQR: then adapted on test)
    try:
      splits = json.loads((Path(run_dir) / RESULTS).read_text())["splits"]
      iv = (splits["test"]["model"].get("cqr_online") or splits["val"]["model"]["cqr"]
            if quantiles else splits["val"]["model"]["interval"])
      iv = {"level": float(iv["level"]), "q": np.asarray(iv["q"], np.float64)}
      out["interval_method"] = "cqr" if quantiles else "split-conformal"
    except (OSError, ValueError, KeyError, TypeError):
      iv = None
  for i, h in enumerate(horizons):
    f = {"horizon_minutes": int(h * spec.step_minutes), "time_utc": iso_utc(times[i]),
         "time_local": local[i + 1]}
    if spec.task == "horizons":
      f.update(value=float(z[i] * capacity), fraction=float(z[i]))
      if iv is not None and quantiles:
        lo, hi = conformal.cqr_intervals(bands[i, 0] * capacity, bands[i, 2] * capacity,
                                         iv["q"][i], capacity)
        f["interval"] = {"level": iv["level"], "low": float(lo), "high": float(hi)}
      elif iv is not None:
        lo, hi = conformal.intervals(f["value"], iv["q"][i], capacity)
        f["interval"] = {"level": iv["level"], "low": float(lo), "high": float(hi)}
    else:
      f.update(level=data.LEVELS[int(np.argmax(z))],
               scores={name: float(z[j]) for j, name in enumerate(data.LEVELS)})
    out["forecasts"].append(f)
  return out


def forecast_text(run_dir: str | os.PathLike, csv: str | None = None, *,
                  as_json: bool = False) -> str:
  """What experiments/forecast.py prints for ``csv`` (None: the run's own data)."""
  source = read_config(run_dir)["source"]
  if csv is not None:
    source = dataclasses.replace(source, csv=csv)
  elif source.csv is not None and not Path(source.csv).is_file():
    raise InputError(f"--run {run_dir}: the run's data file {source.csv} (recorded when it was "
                     "trained) is not found; pass --csv")
  result = forecast(run_dir, source)
  if as_json:
    return json.dumps(result, indent=2)
  unit, zone = result["unit"], result["timezone"]
  models = f"; the mean of {result['models']} models" if result["models"] > 1 else ""
  lines = [f"newest complete window ends {result['window_end_local']} {zone} "
           f"(capacity {result['capacity']:g} {unit}{models})"]
  for f in result["forecasts"]:
    when = f"+{f['horizon_minutes']} min ({f['time_local'][-5:]} {zone})"
    if "value" not in f:
      lines.append(f"  {when}: {f['level']}")
      continue
    iv = f.get("interval")
    cqr = " CQR" if result.get("interval_method") == "cqr" else ""
    band = f" ({100 * iv['level']:g}%{cqr}: {iv['low']:.0f}-{iv['high']:.0f})" if iv else ""
    lines.append(f"  {when}: {f['value']:.0f} {unit}{band}, {100 * f['fraction']:.0f}% of "
                 "capacity")
  if result["task"] == "horizons" and not any("interval" in f for f in result["forecasts"]):
    lines.append(f"  (no interval: the run has no readable {RESULTS}; it has not finished)")
  return "\n".join(lines)

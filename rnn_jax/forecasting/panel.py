"""A panel run: the occupancy run (``occupancy.run``) on each of several series, and how the
model compares with the baselines across them.

    python experiments/train_occupancy.py --csv a.csv b.csv ... --out runs/panel
    python experiments/train_occupancy.py --panel experiments/panel.json --out runs/panel

Each series is trained and evaluated on its own, in ``--out/<name>/`` (a complete run directory:
``forecast.py --run`` works on it). ``--out/panel.json`` and the printed table give, per series,
split (val, test) and horizon, the ratio of the model's MAE to the best baseline's, and over the
series their geometric mean (``aggregate``): below 1 the model beats the best baseline on a
typical series. The geometric mean of ratios weighs a series with capacity 127 as much as one
with 900, and a halving as much as a doubling (Fleming and Wallace 1986, "How not to lie with
statistics: the correct way to summarize benchmark results"). ``seconds`` says how long each
series' run, the global model and the whole panel took. ``--out/panel_ratios.png`` draws
the same table as heatmaps, a row per series and a column per horizon, blue where the model wins.

``--resume`` continues an interrupted panel (Ctrl-C, a lost machine): a series whose directory
holds a run (config.json and a checkpoint) resumes it, which for a finished one means only its
evaluation is redone, and the others start; the global model resumes from its checkpoint too.
Each run checks that its settings and data are the ones it was started with. ``seconds`` then
counts only the time this invocation spent.

With ``--global-model`` one network is also trained on the windows of every series at once
(each in fractions of its own capacity, with its own calendar; ``run_global``, in
``--out/global/``) and evaluated on each series the same way; panel.json's ``global`` holds its
ratios and their geometric mean beside the per-series models'.

The ratio against one baseline is taken on that baseline's own windows (the seasonal naive
forecasts exist only where the value a day or a week before is known; results.json gives the
model's MAE on those windows as ``model_mae_same_windows``); the best baseline is the one with
the largest ratio, which with equal windows is the one with the lowest MAE. A baseline without
windows in a split (a seasonal naive forecast a week back on a short series) is left out.

A panel spec (``--panel``) is a JSON object ``{"series": [{...}, ...]}``: each entry has a
``name`` (letters, digits, ``._-``; the run's subdirectory) and ``csv``, and any other field of
``rnn_jax.settings.DataSource`` (``time_column``, ``value_column``, ``capacity``, ``timezone``,
``unit``, ...); an optional ``"defaults": {...}`` gives fields every entry shares, and the
command line's data flags (``--max-flat-hours``, ``--strict``, ...) the rest. Relative
``csv`` paths are taken from the directory the command runs in, as ``--csv`` is.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rnn_jax import data, train
from rnn_jax.common import fileio, plots
from rnn_jax.common.errors import InputError
from rnn_jax.data import WindowSpec
from rnn_jax.forecasting import occupancy
from rnn_jax.settings import INTERVAL, DataSource, TrainConfig
from rnn_jax.train import checkpoint

PANEL = "panel.json"
PLOT = "panel_ratios.png"   # ratio_tables as heatmaps (rnn_jax.common.plots.ratio_grid)
GLOBAL = "global"   # --out/global/: the model trained on every series at once
SPLITS = ("val", "test")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclasses.dataclass(frozen=True)
class Series:
  """One series of a panel: its name (the run's subdirectory) and where its readings come from."""
  name: str
  source: DataSource


def _check_name(name, where: str) -> str:
  if not isinstance(name, str) or not _NAME_RE.match(name) or name in (".", ".."):
    raise InputError(f"{where}: name {name!r}: expected letters, digits, '.', '_' or '-' (it "
                     "names the series' run directory)")
  return name


def _unique(series: list[Series], where: str) -> list[Series]:
  seen: dict[str, int] = {}
  for i, s in enumerate(series):
    if s.name in seen:
      raise InputError(f"{where}: series {seen[s.name] + 1} and {i + 1} are both named "
                       f"{s.name!r}; expected one name per series")
    seen[s.name] = i
  if len(series) < 2:
    raise InputError(f"{where}: a panel needs at least two series, got {len(series)}")
  return series


def from_csvs(paths: Sequence[str], base: DataSource) -> list[Series]:
  """``--csv a.csv b.csv ...``: every file with the other data flags of ``base``, named after
  the file (``a``, ``b``; a clash gets ``-2``, ``-3``, ...)."""
  series, used = [], set()
  for path in paths:
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", Path(path).stem) or "series"
    stem = stem if _NAME_RE.match(stem) else "s" + stem
    name, k = stem, 2
    while name in used:
      name, k = f"{stem}-{k}", k + 1
    used.add(name)
    series.append(Series(name, dataclasses.replace(base, csv=str(path)).check()))
  return _unique(series, "--csv")


def load_spec(path: str | os.PathLike, base: DataSource | None = None) -> list[Series]:
  """The series of a panel spec (module docstring); InputError naming the file and entry.
  ``base`` (the command line's data flags) gives the fields that neither the entry nor the
  spec's ``defaults`` set."""
  path = Path(path)
  try:
    spec = json.loads(path.read_text(encoding="utf-8"))
  except FileNotFoundError:
    raise InputError(f"--panel {path}: no such file (expected a JSON panel spec)") from None
  except (OSError, UnicodeDecodeError) as err:
    raise InputError(f"--panel {path}: cannot be read ({err})") from None
  except json.JSONDecodeError as err:
    raise InputError(f"--panel {path}: not JSON (line {err.lineno}: {err.msg})") from None
  if not isinstance(spec, dict) or not isinstance(spec.get("series"), list):
    raise InputError(f"--panel {path}: expected an object with a list \"series\"")
  unknown = set(spec) - {"series", "defaults"}
  if unknown:
    raise InputError(f"--panel {path}: unknown keys {sorted(unknown)}; expected \"series\" "
                     "and optionally \"defaults\"")
  defaults = spec.get("defaults", {})
  if not isinstance(defaults, dict):
    raise InputError(f"--panel {path}: \"defaults\" must be an object")
  fields = {f.name for f in dataclasses.fields(DataSource)}
  series = []
  for i, entry in enumerate(spec["series"]):
    where = f"--panel {path}: series {i + 1}"
    if not isinstance(entry, dict):
      raise InputError(f"{where}: expected an object with \"name\" and \"csv\"")
    inherited = dataclasses.asdict(base if base is not None else DataSource())
    inherited.pop("csv")
    entry = {**inherited, **defaults, **entry}
    name = _check_name(entry.pop("name", None), where)
    bad = set(entry) - fields
    if bad:
      raise InputError(f"{where} ({name}): unknown fields {sorted(bad)}; expected fields of "
                       "rnn_jax.settings.DataSource")
    if not isinstance(entry.get("csv"), str) or not entry["csv"].strip():
      raise InputError(f"{where} ({name}): expected \"csv\": a path to its CSV file")
    try:
      source = DataSource(**entry).check()
    except InputError as err:
      raise InputError(f"{where} ({name}): {err}") from None
    series.append(Series(name, source))
  return _unique(series, f"--panel {path}")


def series_ratios(results: dict) -> dict[str, dict[str, list]]:
  """Per split of one run's results.json: ``model_mae``, ``best_baseline`` (per horizon),
  ``best_baseline_mae`` and ``ratio``, the model's MAE over that baseline's on its windows."""
  out = {}
  for split in SPLITS:
    methods = results["splits"][split]
    model_mae = np.asarray(methods["model"]["mae"], np.float64)
    names, ratios, maes = [], [], []
    for name, entry in methods.items():
      if name == "model" or not isinstance(entry, dict) or "mae" not in entry:
        continue
      own = np.asarray(entry.get("model_mae_same_windows", model_mae), np.float64)
      mae = np.asarray(entry["mae"], np.float64)
      names.append(name)
      maes.append(mae)
      with np.errstate(divide="ignore", invalid="ignore"):
        ratios.append(np.where(np.isfinite(mae) & np.isfinite(own), own / mae, np.nan))
    ratios_, maes_ = np.asarray(ratios), np.asarray(maes)
    if not names or np.isnan(ratios_).all(axis=0).any():
      raise InputError(f"results.json: split {split!r} has no baseline with windows at every "
                       "horizon to compare the model with")
    best = np.nanargmax(ratios_, axis=0)
    k = np.arange(ratios_.shape[1])
    out[split] = {"model_mae": model_mae.tolist(), "best_baseline": [names[b] for b in best],
                  "best_baseline_mae": maes_[best, k].tolist(), "ratio": ratios_[best, k].tolist()}
  return out


def aggregate(per_series: Sequence[dict]) -> dict[str, dict]:
  """Per split: ``geomean_ratio`` per horizon, exp of the mean log ratio over the series, and
  ``n_series``; ``series_ratios`` of every series."""
  out = {}
  for split in SPLITS:
    r = np.asarray([s[split]["ratio"] for s in per_series], np.float64)
    out[split] = {"geomean_ratio": np.exp(np.log(r).mean(axis=0)).tolist(),
                  "n_series": int(r.shape[0])}
  return out


def format_table(panel: dict) -> str:
  """The printed table: per series and the aggregate, model MAE / best baseline MAE per
  split and horizon."""
  minutes = panel["horizon_minutes"]
  cols = [f"{split} +{m}m" for split in SPLITS for m in minutes]
  width = max([len(s["name"]) for s in panel["series"]] + [len("geometric mean")])
  lines = ["model MAE / best baseline MAE (below 1: the model wins)",
           f"{'series':<{width}}  " + "  ".join(f"{c:>10}" for c in cols)]
  for s in panel["series"]:
    cells = [s["splits"][split]["ratio"][k] for split in SPLITS for k in range(len(minutes))]
    lines.append(f"{s['name']:<{width}}  " + "  ".join(f"{c:>10.3f}" for c in cells))
  agg = panel["aggregate"]
  cells = [agg[split]["geomean_ratio"][k] for split in SPLITS for k in range(len(minutes))]
  lines.append(f"{'geometric mean':<{width}}  " + "  ".join(f"{c:>10.3f}" for c in cells))
  if "global" in panel:
    lines.append("one model trained on every series (global), the same ratio")
    for s in panel["global"]["series"]:
      cells = [s["splits"][split]["ratio"][k] for split in SPLITS for k in range(len(minutes))]
      lines.append(f"{s['name']:<{width}}  " + "  ".join(f"{c:>10.3f}" for c in cells))
    agg = panel["global"]["aggregate"]
    cells = [agg[split]["geomean_ratio"][k] for split in SPLITS for k in range(len(minutes))]
    lines.append(f"{'geometric mean':<{width}}  " + "  ".join(f"{c:>10.3f}" for c in cells))
  return "\n".join(lines)


def ratio_tables(panel: dict) -> tuple[list[str], dict[str, np.ndarray]]:
  """The rows (every series, then "geometric mean") and, per split (and per split of the global
  model, "global val", ...), the ratios ``[rows, horizons]`` that ``format_table`` prints."""
  names = [s["name"] for s in panel["series"]] + ["geometric mean"]
  tables = {}
  for prefix, part in (("", panel), ("global ", panel.get("global"))):
    if part is None:
      continue
    for split in SPLITS:
      tables[prefix + split] = np.asarray(
          [s["splits"][split]["ratio"] for s in part["series"]]
          + [part["aggregate"][split]["geomean_ratio"]], np.float64)
  return names, tables


def _started(run_dir: Path) -> bool:
  """Whether ``run_dir`` holds a run that ``--resume`` can continue (config and checkpoint)."""
  return all((run_dir / name).is_file() for name in occupancy.RESUME_NEEDS)


def _check_all(series: list[Series], spec: WindowSpec, cfg: TrainConfig, out: Path, *,
               overwrite: bool, global_model: bool, resume: bool) -> None:
  """Every series' data, windows and run directory, before anything is written."""
  for s in series:
    if s.name == GLOBAL and global_model:
      raise InputError(f"series {s.name!r}: the name of the global model's directory; rename "
                       "the series")
    occupancy.check_out(out / s.name, resume=resume and _started(out / s.name),
                        overwrite=overwrite)
    try:
      data.make_dataset(s.source.load(), spec)
    except InputError as err:
      raise InputError(f"series {s.name!r}: {err}") from None
  if global_model and (out / GLOBAL).exists() and not (overwrite or resume):
    raise InputError(f"--out {out}: holds a global model ({GLOBAL}/); give --overwrite or "
                     "--resume")


def run_global(series: Sequence[Series], spec: WindowSpec, cfg: TrainConfig, out: Path, *,
               progress: bool = True, interval: float = INTERVAL, resume: bool = False,
               log=print) -> dict[str, Any]:
  """One network (``cfg.seeds`` models) trained on the windows of every series at once, each
  series in fractions of its own capacity with its own calendar, early-stopped on all
  validation windows together; then evaluated on each series as its own run is
  (``occupancy.assess``, the same baselines). Larger series give more windows, so they weigh
  more in training. Writes ``out/metrics.jsonl``, ``checkpoint.msgpack`` and
  ``results_<name>.json``; ``resume``: continue from ``out``'s checkpoint where there is one.
  Returns ``{"status", "series": [{"name", "splits"}], "aggregate"}``."""
  datasets = [data.make_dataset(s.source.load(), spec) for s in series]
  _, taus, targets = occupancy.quantile_setup(spec, cfg, interval)
  train_xy = (np.concatenate([ds.train.xs for ds in datasets]),
              targets(np.concatenate([ds.train.ys for ds in datasets])))
  val_xy = (np.concatenate([ds.val.xs for ds in datasets]),
            targets(np.concatenate([ds.val.ys for ds in datasets])))
  log(f"global model: {len(train_xy[0])} training and {len(val_xy[0])} validation windows of "
      f"{len(datasets)} series")
  out.mkdir(parents=True, exist_ok=True)
  fit_args = dict(out_dir=out, progress=progress, taus=taus,
                  resume=resume and (out / checkpoint.FILENAME).is_file())
  if cfg.seeds > 1:
    fitted = train.fit_many(cfg, train_xy, val_xy, **fit_args)
    stopped, seeds = fitted.stopped, fitted.seeds
  else:
    fitted = train.fit(cfg, train_xy, val_xy, **fit_args)
    stopped, seeds = [fitted.stopped], [cfg.seed]
  if "interrupted" in stopped or "nonfinite" in stopped:
    log(fitted.message)
    return {"status": "interrupted" if "interrupted" in stopped else "nonfinite"}
  entries = []
  for s, ds in zip(series, datasets):
    results = occupancy.assess(ds, fitted.params, seeds, taus=taus, anchor=cfg.anchor,
                               interval=interval,
                               unit=s.source.unit)[0]
    fileio.write_json(out / f"results_{s.name}.json", results)
    entries.append({"name": s.name, "splits": series_ratios(results)})
  return {"status": "done", "series": entries,
          "aggregate": aggregate([e["splits"] for e in entries])}


def run(series: Sequence[Series], spec: WindowSpec, cfg: TrainConfig, out: str | os.PathLike, *,
        overwrite: bool = False, resume: bool = False, progress: bool = True,
        make_plots: bool = True, interval: float = INTERVAL, preset: str | None = None,
        global_model: bool = False, log=print) -> dict[str, Any]:
  """Trains and evaluates every series (``occupancy.run`` in ``out/<name>``), with
  ``global_model`` also one model on all of them (``run_global`` in ``out/global``), then
  writes ``out/panel.json`` and logs the table. Returns ``{"panel": dict | None, "status"}``;
  the status is the first run's that is not "done" (the panel stops there). ``resume``: continue
  an interrupted panel (module docstring)."""
  series = list(series)
  if spec.task != "horizons":
    raise InputError(f"--task {spec.task}: a panel compares MAE per horizon; expected --task "
                     "horizons")
  cfg = cfg.validate()
  out = Path(out)
  if out.exists() and not out.is_dir():
    raise InputError(f"--out {out}: exists and is not a directory")
  if resume and overwrite:
    raise InputError("--resume and --overwrite: expected at most one of them")
  if (out / PANEL).exists() and not (overwrite or resume):
    raise InputError(f"--out {out}: holds a panel ({PANEL}); give --overwrite to replace it")
  _check_all(series, spec, cfg, out, overwrite=overwrite, global_model=global_model,
             resume=resume)
  entries, start = [], time.perf_counter()
  for i, s in enumerate(series):
    log(f"series {i + 1}/{len(series)}: {s.name}")
    began = time.perf_counter()
    result = occupancy.run(s.source, spec, cfg, out / s.name, overwrite=overwrite,
                           resume=resume and _started(out / s.name), progress=progress,
                           make_plots=make_plots, interval=interval, preset=preset, log=log)
    if result["status"] != "done":
      return {"panel": None, "status": result["status"]}
    results = result["results"]
    entries.append({"name": s.name, "csv": s.source.csv and os.path.abspath(s.source.csv),
                    "run": str(out / s.name), "unit": s.source.unit,
                    "capacity": results["data"]["capacity"],
                    "capacity_fitted": results["data"]["capacity_fitted"],
                    "masked": results["data"].get("masked"),
                    "seconds": round(time.perf_counter() - began, 1),
                    "splits": series_ratios(results)})
  panel = {"horizon_minutes": results["horizon_minutes"], "series": entries,
           "aggregate": aggregate([e["splits"] for e in entries]), "preset": preset,
           "windows": spec.to_dict(), "train": cfg.to_dict()}
  if global_model:
    began = time.perf_counter()
    fitted = run_global(series, spec, cfg, out / GLOBAL, progress=progress, interval=interval,
                        resume=resume, log=log)
    if fitted["status"] != "done":
      return {"panel": None, "status": fitted["status"]}
    panel["global"] = {"series": fitted["series"], "aggregate": fitted["aggregate"],
                       "seconds": round(time.perf_counter() - began, 1)}
  panel["seconds"] = round(time.perf_counter() - start, 1)
  fileio.write_json(out / PANEL, panel)
  if make_plots:
    rows, tables = ratio_tables(panel)
    plots.ratio_grid(tables, rows, panel["horizon_minutes"], out / PLOT,
                     title=f"model MAE / best baseline MAE, {len(entries)} series")
  log(format_table(panel))
  each = ", ".join(f"{e['name']} {e['seconds']:.0f} s" for e in entries)
  extra = f", the global model {panel['global']['seconds']:.0f} s" if global_model else ""
  log(f"{len(entries)} series in {panel['seconds']:.0f} s ({each}{extra})")
  log(f"panel saved in {out / PANEL}")
  return {"panel": panel, "status": "done"}

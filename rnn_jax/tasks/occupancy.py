"""The occupancy experiment end to end: data in, a trained RNN, evaluation, a run directory.

Library code under experiments/train_occupancy.py (``main``, over ``run``) and
experiments/forecast.py (``forecast_text``, over ``forecast``). A run directory (``--out``)
holds:

    config.json         every setting (data source, windows, training), the data file's SHA-256,
                        the fitted capacity and tertiles, the library versions
    metrics.jsonl       one JSON line per epoch (and per model with --seeds N)
    checkpoint.msgpack  rnn_jax.train.checkpoint: the latest and the best parameters, optimizer
                        state, data order: everything --resume needs
    results.json        the evaluation (rnn_jax.evaluation.report), written last
    *.png               learning curves, forecast against actual over a test week, MAE by
                        horizon, ||dL/dh_t|| against t

Every file is written atomically (rnn_jax.common.fileio). Bad input is found before the
directory is created, so a run refused for bad input leaves nothing behind; whether ``--out``
may be used (``check_out``) and reading config.json back (``read_config``) are
rnn_jax.tasks.rundir's rules for a run made in place.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

import jax
import numpy as np

from rnn_jax import data, evaluation, train
from rnn_jax.common import cli, fileio, plots
from rnn_jax.common.errors import InputError
from rnn_jax.core import bptt, model
from rnn_jax.data import Dataset, WindowSpec
from rnn_jax.tasks import rundir
from rnn_jax.train import TrainConfig, checkpoint, parallel

CONFIG = rundir.CONFIG
RESULTS = "results.json"
RUN_FILES = (CONFIG, train.METRICS, checkpoint.FILENAME, RESULTS, "learning_curves.png",
             "forecast_test_week.png", "mae_by_horizon.png", "grad_norms.png")



@dataclasses.dataclass(frozen=True)
class DataSource:
  """Where the readings come from. Fields map one to one onto script flags."""
  csv: str | None = cli.option(None,
      "CSV of readings; none = the built-in synthetic gym (rnn_jax.data.synthetic_readings)")
  time_column: str | None = cli.option(None,
      "timestamp column (the campus gym format is recognised by itself)")
  value_column: str | None = cli.option(None,
      "column with the number of people")
  capacity: float | None = cli.option(None,
      "capacity in people (none: the capacity column, or fitted on the training split)")
  capacity_column: str | None = cli.option(None,
      "column with the capacity (its largest value is used)")
  timezone: str | None = cli.option(None,
      "IANA time zone of naive timestamps and of the calendar features (default: the file's "
      "UTC offsets)")
  synthetic_seed: int = cli.option(0,
      "seed of the built-in synthetic series (used when no --csv is given)")

  def load(self) -> data.Readings:
    if self.csv is None:
      return data.synthetic_readings(seed=self.synthetic_seed)
    return data.read_csv(self.csv, time_column=self.time_column,
                         value_column=self.value_column, capacity=self.capacity,
                         capacity_column=self.capacity_column, timezone=self.timezone)




def initialize_distributed(coordinator: str, num_processes: int | None,
                           process_id: int | None) -> None:
  """``jax.distributed.initialize`` for a multi-host run, before any other JAX call.

  Every host runs the same command with its own ``process_id``; the devices of all hosts then
  form one data-parallel mesh (rnn_jax.parallel) and only process 0 writes the run directory.
  """
  if num_processes is None or process_id is None or num_processes < 1 or not (
      0 <= process_id < num_processes):
    raise InputError("--coordinator: expected --num-processes N >= 1 and --process-id in "
                     f"0..N-1 with it, got {num_processes!r} and {process_id!r}")
  jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                             process_id=process_id)


# --------------------------------------------------------------------------- the run directory

def check_out(out: str | os.PathLike, *, resume: bool, overwrite: bool) -> Path:
  """Decides whether ``--out`` may be used, without creating anything (rundir.check_out)."""
  return rundir.check_out(out, resume=resume, overwrite=overwrite, run_files=RUN_FILES,
                          resume_needs=(CONFIG, checkpoint.FILENAME))


def _parse_config(cfg: dict) -> dict:
  source = DataSource(**cfg["source"])
  spec = WindowSpec(**{k: tuple(v) if isinstance(v, list) else v
                       for k, v in cfg["windows"].items()})
  train_cfg = TrainConfig.from_dict(cfg["train"])
  capacity = float(cfg["data"]["capacity"])
  return {"source": source, "windows": spec, "train": train_cfg, "capacity": capacity,
          "raw": cfg}


def read_config(run: str | os.PathLike) -> dict:
  """config.json of a run directory, checked; InputError naming the file otherwise."""
  return rundir.read_config(run, _parse_config)


# --------------------------------------------------------------------------- training

def _evaluator(dataset: Dataset):
  """Per-epoch validation metric for the progress bar: MAE in people (mean over horizons), or
  accuracy for task levels."""
  xs = jax.device_put(dataset.val.xs)
  predict = jax.jit(model.predict)
  if dataset.spec.task == "levels":
    truth = dataset.val.levels
    return lambda params: {"val_acc": float(np.mean(
        np.asarray(predict(params, xs)).argmax(axis=1) == truth))}
  target = dataset.val.target_people
  return lambda params: {"val_mae": float(np.mean(np.abs(
      dataset.to_people(predict(params, xs)) - target)))}


def predictions(dataset: Dataset, params) -> dict[str, np.ndarray]:
  """The model's forecasts per split: people ``[N, H]`` (horizons) or scores ``[N, 3]``."""
  predict = jax.jit(model.predict)
  out = {}
  for split in ("val", "test"):
    z = np.asarray(predict(params, dataset[split].xs), np.float64)
    out[split] = dataset.to_people(z) if dataset.spec.task == "horizons" else z
  return out


def _mean_over_models(per_model: list[dict]) -> dict:
  """Model results averaged over seeds, with their spread (sample std) per entry."""
  out = {}
  for split in ("val", "test"):
    entries = [r["splits"][split]["model"] for r in per_model]
    merged = {"n_windows": entries[0]["n_windows"], "n_models": len(entries)}
    for key, value in entries[0].items():
      if key == "n_windows":
        continue
      stack = np.asarray([e[key] for e in entries], np.float64)
      merged[key] = np.mean(stack, axis=0).tolist()
      merged[key + "_std"] = (np.std(stack, axis=0, ddof=1) if len(entries) > 1
                              else np.zeros_like(stack[0])).tolist()
    out[split] = merged
  return out


def _plots(out: Path, dataset: Dataset, results: dict, history: list[dict], params,
           preds: dict) -> None:
  plots.learning_curves(history, out / "learning_curves.png",
                        title="training and validation loss (BCE)")
  xs, ys = dataset.val.xs[:256], dataset.val.ys[:256]
  norms = np.asarray(bptt.grad_norms(params, xs, ys))
  plots.grad_norms(norms, out / "grad_norms.png",
                   title="||dL/dh_t|| on validation windows (hand BPTT)")
  if dataset.spec.task != "horizons":
    return
  minutes = results["horizon_minutes"]
  test = dataset.test
  start = _busiest_week(test.end_times)
  rows = (test.end_times >= start) & (test.end_times < start + np.timedelta64(7, "D"))
  base = evaluation.baselines(dataset, "test")
  plots.forecast_vs_actual(test.end_times[rows], test.target_people[rows],
                           {"model": preds["test"][rows], "persistence": base["persistence"][rows]},
                           minutes, out / "forecast_test_week.png", days=7.0, ylabel="people",
                           title="test week: forecast against actual")
  plots.mae_by_horizon(results["splits"]["test"], minutes, out / "mae_by_horizon.png",
                       ylabel="MAE (people), test split", title="MAE by horizon (test)")


def _busiest_week(times: np.ndarray) -> np.datetime64:
  """Start of the 7-day span (starting at a window time) holding the most windows."""
  times = np.sort(times)
  ends = np.searchsorted(times, times + np.timedelta64(7, "D"))
  return times[int(np.argmax(ends - np.arange(len(times))))]


def run(source: DataSource, spec: WindowSpec, cfg: TrainConfig, out: str | os.PathLike, *,
        resume: bool = False, overwrite: bool = False, progress: bool = True,
        make_plots: bool = True, log=print) -> dict[str, Any]:
  """Trains and evaluates; returns ``{"results": ..., "fit": FitResult | ManyFitResult,
  "dataset": Dataset, "status": "done" | "interrupted" | "nonfinite"}``.

  Everything the user gave is checked (InputError) before ``out`` is created.
  """
  cfg = cfg.validate()
  parallel.device_count(cfg.devices)   # --devices: checked before anything is written
  out = check_out(out, resume=resume, overwrite=overwrite)
  if resume:
    previous = read_config(out)
    # The run's data and windows must not change under --resume; training settings are
    # compared by train.fit itself (all but epochs and devices may not change).
    if previous["source"] != source or previous["windows"] != spec:
      raise InputError(f"--out {out}: --resume with different data or window settings than "
                       f"the run ({CONFIG}); drop the changed flags")
  readings = source.load()
  dataset = data.make_dataset(readings, spec)
  log(f"data: {dataset.path} ({len(readings)} readings), capacity {dataset.capacity:g} people, "
      f"windows train/val/test {len(dataset.train)}/{len(dataset.val)}/{len(dataset.test)}, "
      f"T={spec.window} D={spec.input_size} K={spec.output_size}")
  if resume and previous["raw"]["data"].get("sha256") != dataset.sha256:
    raise InputError(f"--out {out}: --resume with a data file whose SHA-256 differs from the "
                     "run's")
  train_xy, val_xy = (dataset.train.xs, dataset.train.ys), (dataset.val.xs, dataset.val.ys)
  train.check_inputs(cfg, train_xy, val_xy)    # training's own refusals, before any file
  checkpoint.check_writable(out)
  if overwrite:
    rundir.clear_run(out, RUN_FILES)
  config = {"source": dataclasses.asdict(source), "windows": spec.to_dict(),
            "train": cfg.to_dict(), "data": dataset.summary()}   # + versions (rundir)
  writer = jax.process_index() == 0  # multi-host: only process 0 writes the run directory
  if writer and not resume:
    rundir.write_config(out, config)

  fit_args = dict(out_dir=out, resume=resume, progress=progress, evaluate=_evaluator(dataset))
  if cfg.seeds > 1:
    fitted = train.fit_many(cfg, train_xy, val_xy, **fit_args)
    stopped = fitted.stopped
    models = [jax.tree.map(lambda a: a[i], fitted.params) for i in range(cfg.seeds)]
    history = fitted.histories[0]
  else:
    fitted = train.fit(cfg, train_xy, val_xy, **fit_args)
    stopped = [fitted.stopped]
    models, history = [fitted.params], fitted.history
  if "interrupted" in stopped or "nonfinite" in stopped:
    status = "interrupted" if "interrupted" in stopped else "nonfinite"
    log(fitted.message)
    return {"results": None, "fit": fitted, "dataset": dataset, "status": status}

  baselines = evaluation.fit_baselines(dataset, gbm=spec.task == "horizons")
  per_model = [evaluation.report(dataset, predictions(dataset, p), fitted=baselines)
               for p in models]
  results = per_model[0]
  if cfg.seeds > 1:
    per_seed = [{"seed": s, "splits": {k: r["splits"][k]["model"] for k in ("val", "test")}}
                for s, r in zip(fitted.seeds, per_model)]
    for split, merged in _mean_over_models(per_model).items():
      results["splits"][split]["model"] = merged
    results["models"] = per_seed
  results["data"] = dataset.summary()
  results["best_epoch"] = (fitted.best_epochs if cfg.seeds > 1 else fitted.best_epoch)
  if writer:
    fileio.write_json(out / RESULTS, results)
  if writer and make_plots:
    _plots(out, dataset, results, history, models[0], predictions(dataset, models[0]))
  log(evaluation.format_table(results))
  return {"results": results, "fit": fitted, "dataset": dataset, "status": "done"}


EXIT_STATUS = {"done": 0, "nonfinite": 1, "interrupted": 130}   # of experiments/train_occupancy.py


def main(source: DataSource, spec: WindowSpec, cfg: TrainConfig, out: str | os.PathLike, *,
         resume: bool = False, overwrite: bool = False, progress: bool = True,
         make_plots: bool = True, coordinator: str | None = None,
         num_processes: int | None = None, process_id: int | None = None) -> int:
  """experiments/train_occupancy.py once its flags are read: ``run``, then its exit status.

  ``coordinator``: first ``initialize_distributed`` (multi-host). A Ctrl-C outside the epochs
  (train.fit handles it within them) says whether the checkpoint is kept, and gives 130.
  """
  if coordinator is not None:
    initialize_distributed(coordinator, num_processes, process_id)
  try:
    result = run(source, spec, cfg, out, resume=resume, overwrite=overwrite, progress=progress,
                 make_plots=make_plots)
  except KeyboardInterrupt:
    ckpt = Path(out) / checkpoint.FILENAME
    if ckpt.is_file():
      print(f"Interrupted; the checkpoint {ckpt} is kept. Run the same command with --resume "
            "to continue from there.", file=sys.stderr)
    else:
      print("Interrupted before the first checkpoint; nothing was saved.", file=sys.stderr)
    return EXIT_STATUS["interrupted"]
  if result["status"] == "done":
    print(f"run saved in {out}")
  return EXIT_STATUS[result["status"]]


# --------------------------------------------------------------------------- forecasting

def load_run(run_dir: str | os.PathLike) -> tuple[dict, model.RNNParams]:
  """(config, best parameters) of a finished or interrupted run; InputError if unusable."""
  config = read_config(run_dir)
  ckpt = Path(run_dir) / checkpoint.FILENAME
  if not ckpt.is_file():
    raise InputError(f"--run {run_dir}: no {checkpoint.FILENAME} (the run has not completed an "
                     "epoch)")
  params = checkpoint.load_params(ckpt)
  try:   # [N, T, D] of the windows the checkpoint was trained on
    trained_T = json.loads(checkpoint.load(ckpt)["data"])["train_xs"]["shape"][1]
  except (KeyError, TypeError, ValueError, IndexError):
    trained_T = None
  if trained_T is not None and trained_T != config["windows"].window:
    raise InputError(f"--run {run_dir}: checkpoint was trained on windows of {trained_T} steps "
                     f"but {CONFIG} says window {config['windows'].window}: incompatible run")
  if params.U.ndim == 3:          # a --seeds N run: forecast with its first model
    params = jax.tree.map(lambda a: a[0], params)
  spec, cfg = config["windows"], config["train"]
  expected = {"U": (cfg.hidden_size, cfg.hidden_size), "V": (cfg.hidden_size, spec.input_size),
              "W": (spec.output_size, cfg.hidden_size)}
  for name, shape in expected.items():
    actual = tuple(getattr(params, name).shape)
    if actual != shape:
      raise InputError(f"--run {run_dir}: checkpoint {name} has shape {list(actual)} but "
                       f"{CONFIG} (window {spec.window}, features {','.join(spec.features)}, "
                       f"hidden {cfg.hidden_size}) needs {list(shape)}: incompatible run")
  return config, params


def forecast(run_dir: str | os.PathLike, source: DataSource) -> dict[str, Any]:
  """The run's forecast for the newest complete window of ``source``, in people per horizon."""
  config, params = load_run(run_dir)
  spec: WindowSpec = config["windows"]
  readings = source.load()
  window = data.newest_window(readings, spec, config["capacity"])
  z = np.asarray(model.predict(params, window.xs))[0]
  step = np.timedelta64(spec.step_minutes, "m")
  out = {"window_end_utc": str(window.end_time), "task": spec.task, "capacity": config["capacity"]}
  if spec.task == "horizons":
    out["forecasts"] = [{"horizon_minutes": h * spec.step_minutes,
                         "time_utc": str(window.end_time + h * step),
                         "people": float(z[i] * config["capacity"]),
                         "fraction": float(z[i])} for i, h in enumerate(spec.horizons)]
  else:
    h = spec.target_horizons[0]
    out["forecasts"] = [{"horizon_minutes": h * spec.step_minutes,
                         "time_utc": str(window.end_time + h * step),
                         "level": data.LEVELS[int(np.argmax(z))],
                         "scores": {name: float(z[i]) for i, name in enumerate(data.LEVELS)}}]
  return out


def forecast_text(run_dir: str | os.PathLike, csv: str | None = None, *,
                  as_json: bool = False) -> str:
  """What experiments/forecast.py prints: ``forecast`` on ``csv`` (None: the run's own data
  source) as one line per horizon, or as JSON."""
  source = read_config(run_dir)["source"]
  if csv is not None:
    source = dataclasses.replace(source, csv=csv)
  result = forecast(run_dir, source)
  if as_json:
    return json.dumps(result, indent=2)
  lines = [f"newest complete window ends {result['window_end_utc']} UTC "
           f"(capacity {result['capacity']:g} people)"]
  for f in result["forecasts"]:
    if "people" in f:
      lines.append(f"  +{f['horizon_minutes']:>3} min ({f['time_utc']} UTC): "
                   f"{f['people']:6.1f} people ({100 * f['fraction']:.1f}% of capacity)")
    else:
      lines.append(f"  +{f['horizon_minutes']:>3} min ({f['time_utc']} UTC): {f['level']}")
  return "\n".join(lines)

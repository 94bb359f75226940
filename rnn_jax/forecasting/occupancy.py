"""The occupancy experiment end to end (experiments/train_occupancy.py): data in, a trained
RNN, evaluation, a run directory (``--out``) holding

    config.json         every setting, the data's SHA-256, capacity and tertiles, versions
    metrics.jsonl       one JSON line per epoch (and per model with --seeds N)
    checkpoint.msgpack  rnn_jax.train.checkpoint: everything --resume needs
    results.json        ``evaluate``'s report, written last
    *.png               learning curves, a test week with the interval, MAE by horizon, ||dL/dh_t||

With ``--loss pinball`` the network has three outputs per horizon, the lower, median and upper
quantile of the ``--interval`` level (``quantile_setup``): the median is the point forecast and
the interval is conformalized quantile regression (rnn_jax.evaluation.conformal), reported next
to the symmetric split-conformal one.

Every file is written atomically; bad input is refused before the directory is created. The
rules for ``--out``, the lock and config.json: rnn_jax.common.rundir.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import sys
from pathlib import Path
from typing import Any

import jax
import numpy as np

from rnn_jax import data, evaluation, train
from rnn_jax.common import fileio, plots, rundir
from rnn_jax.common.errors import InputError
from rnn_jax.core import bptt, model
from rnn_jax.data import Dataset, WindowSpec
from rnn_jax.evaluation import conformal
from rnn_jax.settings import DEFAULT_PRESET, INTERVAL, PRESETS, DataSource  # noqa: F401
from rnn_jax.train import TrainConfig, checkpoint, parallel

CONFIG = rundir.CONFIG
RESULTS = "results.json"
RESUME_NEEDS = (CONFIG, checkpoint.FILENAME)   # what --resume continues from
RUN_FILES = (CONFIG, train.METRICS, checkpoint.FILENAME, RESULTS, "learning_curves.png",
             "forecast_test_week.png", "mae_by_horizon.png", "grad_norms.png")


def check_out(out: str | os.PathLike, *, resume: bool, overwrite: bool) -> Path:
  """Decides whether ``--out`` may be used, without creating anything (rundir.check_out)."""
  return rundir.check_out(out, resume=resume, overwrite=overwrite, run_files=RUN_FILES,
                          resume_needs=RESUME_NEEDS)


def _parse_config(cfg: dict) -> dict:
  source = DataSource(**cfg["source"]).check()
  if source.csv is not None:   # runs before absolute paths were stored: relative to their cwd
    source = dataclasses.replace(source, csv=os.path.abspath(
        os.path.join(cfg.get("cwd") or os.getcwd(), source.csv)))
  spec = WindowSpec(**{k: tuple(v) if isinstance(v, list) else v
                       for k, v in cfg["windows"].items()})
  return {"source": source, "windows": spec, "train": TrainConfig.from_dict(cfg["train"]),
          "capacity": float(cfg["data"]["capacity"]), "raw": cfg}


def read_config(run: str | os.PathLike) -> dict:
  """config.json of a run directory, checked; InputError naming the file otherwise."""
  return rundir.read_config(run, _parse_config)


QUANTILES = 3   # outputs per horizon with --loss pinball: lower, median, upper


def quantile_setup(spec: WindowSpec, cfg: TrainConfig, interval: float = INTERVAL):
  """``(K, taus, targets)`` of the training run: K outputs, the pinball loss's quantile levels
  (None for "bce") and ``targets(ys [N, H]) -> ys [N, K]``. With ``cfg.loss == "pinball"``,
  ``K = 3 H``, output ``3 h + j`` is horizon h's quantile ``conformal.quantile_levels(interval)
  [j]`` and its target the horizon's, repeated; InputError for task levels."""
  if cfg.loss != "pinball":
    return spec.output_size, None, lambda ys: ys
  if spec.task != "horizons":
    raise InputError(f"--loss pinball: needs --task horizons (quantiles of the occupancy), got "
                     f"--task {spec.task}")
  H = len(spec.horizons)
  return (QUANTILES * H, conformal.quantile_levels(interval) * H,
          lambda ys: np.repeat(np.asarray(ys), QUANTILES, axis=1))


def bands_of(z) -> np.ndarray:
  """``[..., K] -> [..., H, 3]``: a pinball model's outputs per horizon, rearranged (sorted) so
  the quantiles never cross (conformal.rearrange)."""
  z = np.asarray(z, np.float64)
  return conformal.rearrange(z.reshape(z.shape[:-1] + (-1, QUANTILES)))


def _evaluator(dataset: Dataset, quantiles: bool = False, anchor: bool = False):
  """Per-epoch validation metric for the progress bar: MAE in units (of the median with
  ``quantiles``), or accuracy (levels); ``anchor`` as in ``member_predict``."""
  xs = jax.device_put(dataset.val.xs)
  predict = jax.jit(functools.partial(model.predict, anchor=anchor))
  if quantiles:
    target = dataset.val.target_people
    return lambda params: {"val_mae": float(np.mean(np.abs(
        dataset.to_people(bands_of(predict(params, xs))[..., 1]) - target)))}
  if dataset.spec.task == "levels":
    truth = dataset.val.levels
    return lambda params: {"val_acc": float(np.mean(
        np.asarray(predict(params, xs)).argmax(axis=1) == truth))}
  target = dataset.val.target_people
  return lambda params: {"val_mae": float(np.mean(np.abs(
      dataset.to_people(predict(params, xs)) - target)))}


def member_predict(params: model.RNNParams, xs, anchor: bool = False) -> jax.Array:
  """``[S, N, K]``: the outputs of the S models in ``params`` (fields ``[S, ...]``, or S = 1);
  ``anchor``: the models were trained with ``TrainConfig.anchor`` (rnn_jax.core.model.predict)."""
  predict = functools.partial(model.predict, anchor=anchor)
  if params.U.ndim == 3:
    return jax.vmap(predict, in_axes=(0, None))(params, xs)
  return predict(params, xs)[None]


def predictions(dataset: Dataset, params, *, members: bool = False,
                quantiles: bool = False, anchor: bool = False) -> dict[str, np.ndarray]:
  """The forecasts per split, ``[N, K]`` in units (horizons) or scores (levels): the mean of
  the models in ``params``, or with ``members`` each one's, ``[S, N, K]``. ``quantiles`` (a run
  trained with --loss pinball): the median of each horizon, ``[N, H]``
  (``quantile_predictions``). ``anchor`` as in ``member_predict``."""
  if quantiles:
    return {k: v[..., 1] for k, v in quantile_predictions(dataset, params, members=members,
                                                          anchor=anchor).items()}
  predict = jax.jit(member_predict, static_argnums=2)
  out = {}
  for split in ("val", "test"):
    z = np.asarray(predict(params, dataset[split].xs, anchor), np.float64)
    z = dataset.to_people(z) if dataset.spec.task == "horizons" else z
    out[split] = z if members else z.mean(axis=0)
  return out


def quantile_predictions(dataset: Dataset, params, *, members: bool = False,
                         anchor: bool = False) -> dict[str, np.ndarray]:
  """A pinball run's lower, median and upper quantile per split, ``[N, H, 3]`` in units, each
  model's rearranged (``bands_of``), then averaged over the models (which keeps them sorted), or
  with ``members`` each one's, ``[S, N, H, 3]``; ``anchor`` as in ``member_predict``."""
  predict = jax.jit(member_predict, static_argnums=2)
  out = {}
  for split in ("val", "test"):
    bands = dataset.to_people(bands_of(predict(params, dataset[split].xs, anchor)))
    out[split] = bands if members else bands.mean(axis=0)
  return out


def point_forecast(dataset: Dataset, member_preds, *, median: bool) -> np.ndarray:
  """The point forecast in units of the models' forecasts ``[S, N, H]``: their mean, and when
  they are medians (``median``: a pinball run) rounded to whole counts where the series counts
  (``Dataset.median_point``)."""
  mean = np.asarray(member_preds, np.float64).mean(axis=0)
  return dataset.median_point(mean) if median else mean


def baseline_predictions(dataset: Dataset, interval: float = INTERVAL) -> dict[str, dict]:
  """Every baseline's predictions on val and test, fitted once on train (``evaluate``, plots);
  ``interval``: the level of the baselines' intervals (``gbm_quantile``)."""
  fitted = evaluation.fit_baselines(dataset, gbm=dataset.spec.task == "horizons", level=interval)
  return {split: evaluation.baselines(dataset, split, fitted) for split in ("val", "test")}


def evaluate(dataset: Dataset, member_preds: dict[str, np.ndarray], seeds, *,
             interval: float = INTERVAL, unit: str = "people", base: dict | None = None,
             bands: dict[str, np.ndarray] | None = None) -> dict:
  """results.json: ``evaluation.report`` of the point forecast of ``member_preds [S, N, K]``
  (``point_forecast``; with ``bands``, medians), with under ``splits.<split>.model``:
  ``mae_unrounded`` where the medians were rounded to whole counts; ``members`` (S > 1), each
  model's metrics averaged over the S, with ``*_std``; ``spread`` (horizons), the models' std
  around their mean, averaged over windows, in units; ``interval`` (horizons), the symmetric
  split-conformal interval at level ``interval`` around the unrounded mean, calibrated on val,
  ``{"level", "q", "coverage", "mean_width", "interval_score", "pinball"}`` per horizon
  (conformal.summary); ``cqr``, given ``bands`` (a pinball run's
  ``quantile_predictions``, ``[N, H, 3]`` per split), the same of the conformalized quantile
  interval (conformal.cqr_summary), and on test ``cqr_online``, that interval adapted online as
  the test targets become known (``online_q``), with ``q`` the one for the next forecast,
  ``q_mean`` and ``gamma``. ``models`` (S > 1): every model's own metrics, with its
  seed. ``base``: ``baseline_predictions``, fitted when None."""
  median = bands is not None
  center = {split: np.asarray(p, np.float64).mean(axis=0) for split, p in member_preds.items()}
  point = dataset.median_point if median else np.asarray          # as point_forecast
  mean = {split: point(c) for split, c in center.items()}
  if base is None:
    base = baseline_predictions(dataset, interval)
  results = evaluation.report(dataset, mean, baseline_predictions=base)
  results["unit"] = unit
  if median and dataset.whole_counts:      # what the rounding to whole counts changed
    for split, c in center.items():
      results["splits"][split]["model"]["mae_unrounded"] = evaluation.mae(
          c, dataset[split].target_people).mae.tolist()
  if len(seeds) > 1:
    per_model = [evaluation.report(dataset, {k: point(v[i]) for k, v in member_preds.items()},
                                   baseline_predictions=base) for i in range(len(seeds))]
    results["models"] = [{"seed": s, "splits": {k: r["splits"][k]["model"]
                                                for k in ("val", "test")}}
                         for s, r in zip(seeds, per_model)]
    for split in ("val", "test"):
      entries = [r["splits"][split]["model"] for r in per_model]
      merged = {"n_windows": entries[0]["n_windows"], "n_models": len(entries)}
      for key, value in entries[0].items():
        if key != "n_windows" and isinstance(value, (int, float, list)):
          stack = np.asarray([e[key] for e in entries], np.float64)
          merged[key] = np.mean(stack, axis=0).tolist()
          merged[key + "_std"] = np.std(stack, axis=0, ddof=1).tolist()
      results["splits"][split]["model"]["members"] = merged
      if dataset.spec.task == "horizons":
        spread = np.std(member_preds[split], axis=0, ddof=1).mean(axis=0)
        results["splits"][split]["model"]["spread"] = spread.tolist()
  if dataset.spec.task == "horizons":   # around the unrounded forecast: scores without ties
    q = conformal.quantiles(np.abs(center["val"] - dataset.val.target_people), interval)
    for split in ("val", "test"):
      results["splits"][split]["model"]["interval"] = conformal.summary(
          center[split], dataset[split].target_people, q, dataset.capacity, interval)
    if bands is not None:
      val = bands["val"]
      q = conformal.cqr_quantiles(val[..., 0], val[..., 2], dataset.val.target_people, interval)
      for split in ("val", "test"):
        results["splits"][split]["model"]["cqr"] = conformal.cqr_summary(
            bands[split], dataset[split].target_people, q, dataset.capacity, interval)
      q_test, q_next = online_q(dataset, bands, interval)
      online = conformal.cqr_summary(bands["test"], dataset.test.target_people, q_test,
                                     dataset.capacity, interval)
      cap = dataset.capacity                       # +-inf (ACI's whole range / none) as +-cap
      online.update(q=np.clip(q_next, -cap, cap).tolist(),
                    q_mean=np.clip(q_test, -cap, cap).mean(axis=0).tolist(),
                    gamma=conformal.ACI_GAMMA)
      results["splits"]["test"]["model"]["cqr_online"] = online
  return results


def online_q(dataset: Dataset, bands: dict[str, np.ndarray], interval: float = INTERVAL):
  """``(q [N_test, H], q_next [H])`` of the CQR interval adapted online over the test split
  (conformal.online_quantiles): calibrated on val, then moved by each test target as it becomes
  known, at its target time. ``q_next`` is for a forecast after the test split's end."""
  val, test = bands["val"], bands["test"]
  calibration = conformal.cqr_scores(val[..., 0], val[..., 2], dataset.val.target_people)
  seen = conformal.cqr_scores(test[..., 0], test[..., 2], dataset.test.target_people)
  return conformal.online_quantiles(calibration, seen, dataset.test.end_times,
                                    dataset.test.target_times, interval)


def assess(dataset: Dataset, params, seeds, *, taus=None, anchor: bool = False,
           interval: float = INTERVAL, unit: str = "people"):
  """``(results, member_preds, bands, base)`` of trained ``params`` (S models) on ``dataset``:
  ``evaluate``'s report with the data summary, each model's forecasts, a pinball run's
  ``quantile_predictions`` (None for "bce") and the baselines' predictions; ``anchor``: the
  models' ``TrainConfig.anchor``."""
  member_preds = predictions(dataset, params, members=True, quantiles=taus is not None,
                             anchor=anchor)
  bands = quantile_predictions(dataset, params, anchor=anchor) if taus is not None else None
  base = baseline_predictions(dataset, interval)
  results = evaluate(dataset, member_preds, seeds, interval=interval, unit=unit, base=base,
                     bands=bands)
  results.update(data=dataset.summary())
  return results, member_preds, bands, base


def _plots(out: Path, dataset: Dataset, results: dict, histories: list[list[dict]], params,
           preds: dict, base: dict, *, taus=None, bands: dict | None = None,
           anchor: bool = False) -> None:
  """The run's PNGs; ``params``: model 0's (for ||dL/dh_t||), ``preds``: the mean forecasts;
  ``taus``, ``bands``: a pinball run's quantile levels and ``quantile_predictions`` (the test
  week's band is then the CQR interval adapted online, ``online_q``)."""
  unit = results.get("unit", "people")
  loss = "BCE" if taus is None else "pinball"
  plots.learning_curves(histories, out / "learning_curves.png",
                        title=f"training and validation loss ({loss})")
  xs, ys = dataset.val.xs[:256], dataset.val.ys[:256]
  if taus is not None:
    ys = np.repeat(ys, QUANTILES, axis=1)
  norms = np.asarray(bptt.grad_norms(params, xs, ys, taus=taus, anchor=anchor))
  plots.grad_norms(norms, out / "grad_norms.png",
                   title="||dL/dh_t|| on validation windows (hand BPTT)")
  if dataset.spec.task != "horizons":
    return
  minutes = results["horizon_minutes"]
  test = dataset.test
  times = np.sort(test.end_times)   # the 7 days from a window time holding the most windows
  ends = np.searchsorted(times, times + np.timedelta64(7, "D"))
  start = times[int(np.argmax(ends - np.arange(len(times))))]
  rows = (test.end_times >= start) & (test.end_times < start + np.timedelta64(7, "D"))
  persistence = base["test"]["persistence"]
  iv = results["splits"]["test"]["model"]["interval"]
  band = conformal.intervals(preds["test"][rows], np.asarray(iv["q"]), dataset.capacity)
  if bands is not None:
    iv = results["splits"]["test"]["model"]["cqr_online"]
    test_bands = bands["test"][rows]
    band = conformal.cqr_intervals(test_bands[..., 0], test_bands[..., 2],
                                   online_q(dataset, bands, iv["level"])[0][rows],
                                   dataset.capacity)
  plots.forecast_vs_actual(test.end_times[rows], test.target_people[rows],
                           {"model": preds["test"][rows], "persistence": persistence[rows]},
                           minutes, out / "forecast_test_week.png", days=7.0, ylabel=unit,
                           title="test week: forecast against actual", band=band,
                           band_label=f"{100 * iv['level']:g}% interval"
                           + (" (CQR, adapted online)" if bands is not None else ""))
  plots.mae_by_horizon(results["splits"]["test"], minutes, out / "mae_by_horizon.png",
                       ylabel=f"MAE ({unit}), test split", title="MAE by horizon (test)")


def _prepare(source: DataSource, spec: WindowSpec, cfg: TrainConfig, out: Path, *,
             resume: bool, log, interval: float = INTERVAL,
             readings: data.Readings | None = None) -> Dataset:
  """The dataset, after the checks of the user's input that need the data (InputError);
  ``readings``: already loaded (a backtest fold's), else ``source.load()``."""
  K, _, targets = quantile_setup(spec, cfg, interval)
  if resume:
    previous = read_config(out)
    recorded = (previous["raw"].get("evaluation") or {}).get("interval")
    if cfg.loss == "pinball" and recorded is not None and float(recorded) != interval:
      raise InputError(f"--out {out}: --resume with --interval {interval:g}, but the run's "
                       f"quantile outputs were trained for --interval {float(recorded):g}; "
                       "drop --interval or start a new --out")
    # train.fit compares settings and windows itself; the data may have moved with the run
    same_source = (dataclasses.replace(previous["source"], csv=None)
                   == dataclasses.replace(source, csv=None))
    if not same_source or previous["windows"] != spec:
      raise InputError(f"--out {out}: --resume with different data or window settings than "
                       f"the run ({CONFIG}); drop the changed flags")
  readings = source.load() if readings is None else readings
  dataset = data.make_dataset(readings, spec)
  log(f"data: {dataset.path} ({len(readings)} readings; {readings.masked_text()}), "
      f"capacity {dataset.capacity:g} "
      f"{source.unit}{' (fitted on train)' if dataset.capacity_fitted else ''}, "
      f"windows train/val/test {len(dataset.train)}/{len(dataset.val)}/{len(dataset.test)}, "
      f"T={spec.window} D={spec.input_size} K={K}")
  if resume and previous["raw"]["data"].get("sha256") != dataset.sha256:
    raise InputError(f"--out {out}: --resume with a data file whose SHA-256 differs from the "
                     "run's")
  train.check_inputs(cfg, (dataset.train.xs, targets(dataset.train.ys)),
                     (dataset.val.xs, targets(dataset.val.ys)))   # training's own refusals first
  return dataset


EXIT_STATUS = {"done": 0, "nonfinite": 1, "interrupted": 130}   # of experiments/train_occupancy.py


def run(source: DataSource, spec: WindowSpec, cfg: TrainConfig, out: str | os.PathLike, *,
        resume: bool = False, overwrite: bool = False, progress: bool = True,
        make_plots: bool = True, interval: float = INTERVAL, preset: str | None = None,
        coordinator: str | None = None, num_processes: int | None = None,
        process_id: int | None = None, readings: data.Readings | None = None,
        log=print) -> dict[str, Any]:
  """Trains ``cfg.seeds`` models (one vmapped program when > 1) and evaluates their mean
  forecast; returns ``{"results", "fit": FitResult | ManyFitResult, "dataset", "status": "done"
  | "interrupted" | "nonfinite"}``, when done also ``assess``'s ``member_preds``, ``bands`` and
  ``base``. ``preset``: the name recorded in config.json. ``readings``: the data, already loaded
  from ``source`` (a backtest fold's readings, cut at its end: rnn_jax.forecasting.backtest);
  None loads ``source``.
  ``coordinator``: ``jax.distributed.initialize`` before any other JAX call; every host runs the
  same command with its own ``process_id``, all devices form one data-parallel mesh and process
  0 writes ``out``."""
  if readings is not None and (resume or coordinator is not None):
    raise InputError(f"--{'resume' if resume else 'coordinator'}: not available for a backtest")
  if coordinator is not None:
    if num_processes is None or process_id is None or num_processes < 1 or not (
        0 <= process_id < num_processes):
      raise InputError("--coordinator: expected --num-processes N >= 1 and --process-id in "
                       f"0..N-1 with it, got {num_processes!r} and {process_id!r}")
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                               process_id=process_id)
  cfg = cfg.validate()
  source.check()
  try:
    interval = conformal.check_level(interval)
  except ValueError:
    raise InputError(f"--interval: expected a level strictly between 0 and 1 (0.8 = 80%), "
                     f"got {interval!r}") from None
  parallel.device_count(cfg.devices)   # --devices: checked before anything is written
  _, taus, targets = quantile_setup(spec, cfg, interval)
  out = check_out(out, resume=resume, overwrite=overwrite)
  writer = jax.process_index() == 0
  try:
    dataset = _prepare(source, spec, cfg, out, resume=resume, log=log, interval=interval,
                       readings=readings)
    with rundir.lock(out) if writer else contextlib.nullcontext():   # until the run ends
      if writer:   # again under the lock: another run may have ended there meanwhile
        check_out(out, resume=resume, overwrite=overwrite)
        checkpoint.check_writable(out)
        if overwrite:
          rundir.clear_run(out, RUN_FILES)
      # config.json records where the data is, so a forecast finds it from any directory
      recorded = dataclasses.replace(source, csv=source.csv and os.path.abspath(source.csv))
      config = {"preset": preset, "source": dataclasses.asdict(recorded), "windows": spec.to_dict(),
                "train": cfg.to_dict(), "evaluation": {"interval": interval},
                "data": dataset.summary(), "cwd": os.getcwd()}   # + versions (rundir)
      if writer and not resume:
        rundir.write_config(out, config)
      fit_args = dict(out_dir=out, resume=resume, progress=progress, taus=taus,
                      evaluate=_evaluator(dataset, quantiles=taus is not None,
                                          anchor=cfg.anchor))
      train_xy = (dataset.train.xs, targets(dataset.train.ys))
      val_xy = (dataset.val.xs, targets(dataset.val.ys))
      if cfg.seeds > 1:
        fitted = train.fit_many(cfg, train_xy, val_xy, **fit_args)
        stopped, seeds, histories = fitted.stopped, fitted.seeds, fitted.histories
      else:
        fitted = train.fit(cfg, train_xy, val_xy, **fit_args)
        stopped, seeds, histories = [fitted.stopped], [cfg.seed], [fitted.history]
      if "interrupted" in stopped or "nonfinite" in stopped:
        status = "interrupted" if "interrupted" in stopped else "nonfinite"
        log(fitted.message)
        return {"results": None, "fit": fitted, "dataset": dataset, "status": status}

      results, member_preds, bands, base = assess(dataset, fitted.params, seeds, taus=taus,
                                                  anchor=cfg.anchor, interval=interval,
                                                  unit=source.unit)
      results.update(best_epoch=fitted.best_epochs if cfg.seeds > 1 else fitted.best_epoch)
      if writer:
        fileio.write_json(out / RESULTS, results)
      if writer and make_plots:
        first = jax.tree.map(lambda a: a[0], fitted.params) if cfg.seeds > 1 else fitted.params
        _plots(out, dataset, results, histories, first,
               {k: point_forecast(dataset, v, median=taus is not None)
                for k, v in member_preds.items()}, base, taus=taus,
               bands=bands, anchor=cfg.anchor)
      log(evaluation.format_table(results))
    log(f"run saved in {out}" if writer else
        f"process {jax.process_index()}: done (process 0 writes the run directory)")
    return {"results": results, "fit": fitted, "dataset": dataset, "status": "done",
            "member_preds": member_preds, "bands": bands, "base": base}
  except KeyboardInterrupt:   # outside the epochs (train.fit handles it within them)
    ckpt = out / checkpoint.FILENAME
    print(f"Interrupted; the checkpoint {ckpt} is kept. Run the same command with --resume to "
          "continue from there." if ckpt.is_file() else
          "Interrupted before the first checkpoint; nothing was saved.", file=sys.stderr)
    return {"results": None, "fit": None, "dataset": None, "status": "interrupted"}

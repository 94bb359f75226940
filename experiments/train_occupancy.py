"""Train the notes' RNN to forecast occupancy and evaluate it against baselines.

    python experiments/train_occupancy.py                      # built-in synthetic gym, ~1 min
    python experiments/train_occupancy.py --csv ../shared/data/campus_gym.csv --out runs/gym
    python experiments/train_occupancy.py --preset notes       # the derivation notes' network
    python experiments/train_occupancy.py --panel experiments/panel.json --out runs/panel
    python experiments/train_occupancy.py --csv a.csv b.csv --time-column t --value-column n
    python experiments/train_occupancy.py --folds 3 --out runs/cv   # a backtest of 3 folds

Several series (``--csv`` with several files, or ``--panel`` spec.json): each is trained and
evaluated on its own in --out/<name>/, and --out/panel.json compares the model with the best
baseline on every series and over all of them (rnn_jax.forecasting.panel).

``--folds N``: a backtest, an expanding-window cross-validation refitted at N cutoffs, each fold
a run in --out/fold_<k>/ (--out/<name>/fold_<k>/ for each series of a panel), every forecast in
--out/cross_validation.csv (statsforecast's layout) and the scores per fold and their mean in
--out/backtest.json (rnn_jax.forecasting.backtest).

Every other flag is a field of rnn_jax.settings.DataSource, rnn_jax.data.WindowSpec or
rnn_jax.settings.TrainConfig (see --help); --preset (rnn_jax.settings.PRESETS) sets their
defaults, and flags given win. Exit status: 0 done, 1 stopped on a non-finite loss, 2 bad
input, 130 interrupted (resume with --resume).
"""
from __future__ import annotations

import sys

from rnn_jax import settings
from rnn_jax.common import cli
from rnn_jax.common.errors import InputError
from rnn_jax.data import WindowSpec
from rnn_jax.settings import TrainConfig

PRESET_HELP = ('"forecast": the configuration chosen on validation (calendar features, T=12, '
               'H=64, IRNN, Adam, the mean of 5 models) | "notes": the derivation notes exactly '
               '(readings only, T=24, H=200, normal init, plain SGD, one model)')


def folds_type(text: str) -> int:
  """``--folds``: an integer >= 2, or 0 / none (no backtest)."""
  if text.strip().lower() in ("0", "none"):
    return 0
  try:
    value = int(text)
  except ValueError:
    raise InputError(f"--folds: expected an integer >= 2 (0 or none: no backtest), got "
                     f"{text!r}") from None
  if value < 2:
    raise InputError(f"--folds: expected an integer >= 2 (0 or none: no backtest), got {value}")
  return value


def parse(argv):
  pre = cli.ArgumentParser(prog="train_occupancy.py", add_help=False)
  pre.add_argument("--preset", choices=tuple(settings.PRESETS), default=settings.DEFAULT_PRESET)
  preset = pre.parse_known_args(argv)[0].preset
  defaults = settings.PRESETS[preset]
  parser = cli.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--preset", choices=tuple(settings.PRESETS),
                      default=settings.DEFAULT_PRESET,
                      help=f"{PRESET_HELP} (default: %(default)s)")
  for cls in (settings.DataSource, WindowSpec, TrainConfig):
    cli.add_config_flags(parser.add_argument_group(cls.__name__), cls, defaults,
                         several=("csv",) if cls is settings.DataSource else ())
  parser.add_argument("--panel", metavar="SPEC.JSON",
                      help="train and evaluate every series of a panel spec "
                      "(rnn_jax.forecasting.panel; e.g. experiments/panel.json)")
  parser.add_argument("--global-model", action="store_true",
                      help="with several series: also train one model on all of them at once "
                      "and compare it per series (in --out/global)")
  parser.add_argument("--interval", type=float, default=settings.INTERVAL,
                      help="nominal level of the prediction intervals, calibrated on val "
                      "(split-conformal; with --loss pinball also the quantiles the model is "
                      "trained for, (1-level)/2, 0.5, (1+level)/2, and CQR) (default: %(default)s)")
  parser.add_argument("--folds", default="0", metavar="N",
                      help="backtest: expanding-window cross-validation with N >= 2 cutoffs, a "
                      "refit at each (rnn_jax.forecasting.backtest); 0 or none = off "
                      "(default: off)")
  parser.add_argument("--out", default="runs/occupancy", help="run directory (default: %(default)s)")
  parser.add_argument("--resume", action="store_true",
                      help="continue the run (or the panel) in --out")
  parser.add_argument("--overwrite", action="store_true", help="replace the run in --out")
  parser.add_argument("--no-progress", action="store_true", help="no progress bar")
  parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
  multi = parser.add_argument_group("multi-host (jax.distributed.initialize; see README)")
  multi.add_argument("--coordinator", help="HOST:PORT of process 0, on every host")
  multi.add_argument("--num-processes", type=int, help="number of processes (hosts)")
  multi.add_argument("--process-id", type=int, help="this process's index, 0..n-1")
  args = parser.parse_args(argv)
  args.folds = folds_type(args.folds)
  csvs = args.csv or []
  args.csv, args.csvs = (csvs[0], None) if len(csvs) == 1 else (None, csvs or None)
  source = cli.config_from_args(settings.DataSource, args)
  if args.panel is not None and csvs:
    raise InputError("--panel and --csv: give one of them (the spec names each series' csv)")
  if args.global_model and args.panel is None and not args.csvs:
    raise InputError("--global-model: expected several series (--csv a.csv b.csv ... or --panel)")
  if (args.panel is not None or args.csvs) and args.coordinator:
    raise InputError("--coordinator: not available for a panel of several series; run one "
                     "series at a time")
  if args.folds:
    for given, what in ((args.resume, "--resume (every fold is a new run); drop one of them"),
                        (args.coordinator, "--coordinator; drop one of them"),
                        (args.global_model, "--global-model; backtest each series' own model "
                         "(drop --global-model)")):
      if given:
        raise InputError(f"--folds: not available with {what}")
  spec = cli.config_from_args(WindowSpec, args)
  if args.folds and spec.task != "horizons":
    raise InputError(f"--folds with --task {spec.task}: a backtest scores forecasts per horizon; "
                     "expected --task horizons")
  return args, source, spec, cli.config_from_args(TrainConfig, args)


@cli.entry_point
def main(argv=None):
  args, source, spec, cfg = parse(argv)
  from rnn_jax.forecasting import occupancy   # here: --help and bad flags answer before it loads
  if args.panel is not None or args.csvs:
    from rnn_jax.forecasting import panel
    series = (panel.load_spec(args.panel, source) if args.panel is not None
              else panel.from_csvs(args.csvs, source))
    if args.folds:
      from rnn_jax.forecasting import backtest
      result = backtest.run_series([(s.name, s.source) for s in series], spec, cfg, args.out,
                                   args.folds, overwrite=args.overwrite,
                                   progress=not args.no_progress, interval=args.interval,
                                   preset=args.preset)
      return occupancy.EXIT_STATUS[result["status"]]
    result = panel.run(series, spec, cfg, args.out, overwrite=args.overwrite,
                       resume=args.resume, progress=not args.no_progress,
                       make_plots=not args.no_plots,
                       interval=args.interval, preset=args.preset,
                       global_model=args.global_model)
    return occupancy.EXIT_STATUS[result["status"]]
  if args.folds:
    from rnn_jax.forecasting import backtest
    result = backtest.run(source, spec, cfg, args.out, args.folds, overwrite=args.overwrite,
                          progress=not args.no_progress, interval=args.interval,
                          preset=args.preset)
    return occupancy.EXIT_STATUS[result["status"]]
  result = occupancy.run(source, spec, cfg, args.out, resume=args.resume,
                         overwrite=args.overwrite, progress=not args.no_progress,
                         make_plots=not args.no_plots, interval=args.interval,
                         preset=args.preset, coordinator=args.coordinator,
                         num_processes=args.num_processes, process_id=args.process_id)
  return occupancy.EXIT_STATUS[result["status"]]


if __name__ == "__main__":
  sys.exit(main())

"""Train the notes' RNN to forecast occupancy and evaluate it against baselines.

    python experiments/train_occupancy.py                      # built-in synthetic gym, ~1 min
    python experiments/train_occupancy.py --csv ../shared/data/campus_gym.csv \
        --features occupancy,calendar --out runs/gym-calendar

Every flag is a field of rnn_jax.tasks.occupancy.DataSource, rnn_jax.data.WindowSpec or
rnn_jax.train.TrainConfig (see --help). Exit status: 0 done, 1 stopped on a non-finite loss,
2 bad input, 130 interrupted (resume with --resume).
"""
from __future__ import annotations

import sys

from rnn_jax.common import cli
from rnn_jax.data import WindowSpec
from rnn_jax.tasks import occupancy
from rnn_jax.train import TrainConfig

# The experiment's defaults where they differ from the library's: a run of about a minute.
DEFAULTS = {"epochs": 30, "patience": 8}


def parse(argv):
  parser = cli.ArgumentParser(description=__doc__.split("\n")[0])
  for cls in (occupancy.DataSource, WindowSpec, TrainConfig):
    cli.add_config_flags(parser.add_argument_group(cls.__name__), cls, DEFAULTS)
  parser.add_argument("--out", default="runs/occupancy", help="run directory (default: %(default)s)")
  parser.add_argument("--resume", action="store_true", help="continue the run in --out")
  parser.add_argument("--overwrite", action="store_true", help="replace the run in --out")
  parser.add_argument("--no-progress", action="store_true", help="no progress bar")
  parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
  multi = parser.add_argument_group("multi-host (jax.distributed.initialize; see README)")
  multi.add_argument("--coordinator", help="HOST:PORT of process 0, on every host")
  multi.add_argument("--num-processes", type=int, help="number of processes (hosts)")
  multi.add_argument("--process-id", type=int, help="this process's index, 0..n-1")
  args = parser.parse_args(argv)
  return (args, cli.config_from_args(occupancy.DataSource, args),
          cli.config_from_args(WindowSpec, args), cli.config_from_args(TrainConfig, args))


def main(argv=None):
  args, source, spec, cfg = parse(argv)
  return occupancy.main(source, spec, cfg, args.out, resume=args.resume,
                        overwrite=args.overwrite, progress=not args.no_progress,
                        make_plots=not args.no_plots, coordinator=args.coordinator,
                        num_processes=args.num_processes, process_id=args.process_id)


if __name__ == "__main__":
  sys.exit(cli.main(main))

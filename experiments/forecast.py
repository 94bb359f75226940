"""Forecast with a trained run: the newest complete window of a CSV, point and interval per horizon.

    python experiments/forecast.py --run runs/occupancy            # its own data source
    python experiments/forecast.py --run runs/gym --csv ../shared/data/campus_gym.csv
"""
from __future__ import annotations

import sys

from rnn_jax.common import cli


@cli.entry_point
def main(argv=None):
  parser = cli.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--run", required=True, help="a run directory of train_occupancy.py")
  parser.add_argument("--csv", help="CSV of readings (default: the run's own data source)")
  parser.add_argument("--json", action="store_true", help="print the same fields as JSON")
  args = parser.parse_args(argv)
  from rnn_jax.forecasting import forecast   # here: --help and bad flags answer before it loads
  print(forecast.forecast_text(args.run, args.csv, as_json=args.json))
  return 0


if __name__ == "__main__":
  sys.exit(main())

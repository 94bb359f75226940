"""Forecast with a trained run: the newest complete window of a CSV, in people per horizon.

    python experiments/forecast.py --run runs/occupancy            # its own data source
    python experiments/forecast.py --run runs/gym --csv ../shared/data/campus_gym.csv
"""
from __future__ import annotations

import dataclasses
import json
import sys

from rnn_jax.common import cli
from rnn_jax.tasks import occupancy


def main(argv=None):
  parser = cli.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--run", required=True, help="a run directory of train_occupancy.py")
  parser.add_argument("--csv", help="CSV of readings (default: the run's own data source)")
  parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
  args = parser.parse_args(argv)
  config = occupancy.read_config(args.run)
  source = config["source"]
  if args.csv is not None:
    source = dataclasses.replace(source, csv=args.csv)
  result = occupancy.forecast(args.run, source)
  if args.json:
    print(json.dumps(result, indent=2))
    return 0
  print(f"newest complete window ends {result['window_end_utc']} UTC "
        f"(capacity {result['capacity']:g} people)")
  for f in result["forecasts"]:
    if "people" in f:
      print(f"  +{f['horizon_minutes']:>3} min ({f['time_utc']} UTC): {f['people']:6.1f} people "
            f"({100 * f['fraction']:.1f}% of capacity)")
    else:
      print(f"  +{f['horizon_minutes']:>3} min ({f['time_utc']} UTC): {f['level']}")
  return 0


if __name__ == "__main__":
  sys.exit(cli.main(main))

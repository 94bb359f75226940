"""The occupancy run's settings, without JAX or scikit-learn: where the readings come from
(``DataSource``), the presets of experiments/train_occupancy.py and the interval level, so the
script reads and checks its flags (``--help`` included) before the heavy parts load."""
from __future__ import annotations

import dataclasses
from typing import Any

from rnn_jax import data
from rnn_jax.common import cli
from rnn_jax.common.errors import InputError

INTERVAL = 0.8   # nominal level of the prediction intervals (--interval)

# The configurations train_occupancy.py offers (--preset): settings of DataSource, WindowSpec and
# TrainConfig where they differ from the library's own defaults; flags given on the command line
# win. "forecast" (the default) was chosen on the validation splits of the gym file and the
# synthetic series (never on test; README "Forecasting"): calendar features, a 2-hour window,
# 64 IRNN units, Adam, and the mean of 5 models trained at once in one vmapped program (fit_many).
# "notes" is the derivation notes' network exactly: readings only, T=24, H=200, N(0, 1/fan_in)
# weights, sigmoid outputs and BCE, plain SGD without clipping, one model.
PRESETS: dict[str, dict[str, Any]] = {
    "forecast": {"features": ("occupancy", "calendar"), "window": 12, "hidden_size": 64,
                 "init": "irnn", "optimizer": "adam", "lr": 1e-3, "clip": 1.0,
                 "batch_size": 64, "epochs": 60, "patience": 12, "seeds": 5},
    "notes": {"features": ("occupancy",), "window": 24, "hidden_size": 200, "init": "normal",
              "optimizer": "sgd", "lr": 0.1, "clip": 0.0, "batch_size": 64, "epochs": 60,
              "patience": 12, "seeds": 1},
}
DEFAULT_PRESET = "forecast"


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
  unit: str = cli.option("people",
      "what the series counts, as tables, plots and forecasts name it (a garage counts cars)")

  def check(self) -> "DataSource":
    """Raises InputError naming the flag of a nonsensical setting; returns self."""
    if not isinstance(self.unit, str) or not self.unit.strip() or "\n" in self.unit:
      raise InputError(f"--unit: expected a name such as people or cars, got {self.unit!r}")
    self._check_columns()
    return self

  def _check_columns(self) -> None:
    """One column cannot be both the time and the value: said with the flags the user gave
    (a flag not given defaults to the campus gym format's column)."""
    given = {"time": self.time_column, "value": self.value_column}
    names = {k: (v if v is not None else default).strip() for (k, v), default in
             zip(given.items(), (data.GYM_TIME_COLUMN, data.GYM_VALUE_COLUMN))}
    if names["time"] != names["value"]:
      return
    if None not in given.values():
      raise InputError(f"--time-column {self.time_column} and --value-column "
                       f"{self.value_column}: the same column; name two different columns")
    gave, other = ("value", "time") if given["time"] is None else ("time", "value")
    raise InputError(f"--{gave}-column {given[gave]}: is also the {other} column (--{other}-column "
                     f"defaults to {names[other]!r}); name two different columns")

  def load(self) -> data.Readings:
    if self.csv is None:
      return data.synthetic_readings(seed=self.synthetic_seed)
    return data.read_csv(self.csv, time_column=self.time_column,
                         value_column=self.value_column, capacity=self.capacity,
                         capacity_column=self.capacity_column, timezone=self.timezone)

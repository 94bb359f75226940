"""The occupancy and letters runs' settings, free of JAX, scikit-learn and matplotlib so the
scripts check their flags (``--help`` too) before the heavy parts load."""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from rnn_jax import data
from rnn_jax.common import checks, cli
from rnn_jax.common.errors import InputError
from rnn_jax.core.precision import DEFAULT_PRECISION, PRECISIONS   # JAX-free

# rnn_jax.core's choices written out, so reading flags imports no JAX (test_startup.py checks)
INIT_SCHEMES = ("normal", "irnn")      # rnn_jax.core.model.INIT_SCHEMES
GRADS = ("autodiff", "hand")           # rnn_jax.core.gradients.METHODS
OPTIMIZERS = ("sgd", "adam")
# "bce": the notes' cross-entropy, one output per horizon; "pinball": three per horizon, the
# lower, median and upper quantile of the --interval level (rnn_jax.core.model.pinball_from_logits)
LOSSES = ("bce", "pinball")

INTERVAL = 0.8   # nominal level of the prediction intervals (--interval)

# train_occupancy.py's --preset (flags given win). "forecast" was chosen on the validation splits
# of the gym file and the synthetic series (never on test; README "Forecasting"): the mean of 5
# models (fit_many). "notes" is the derivation notes' network.
PRESETS: dict[str, dict[str, Any]] = {
    "forecast": {"features": ("occupancy", "calendar"), "window": 12, "hidden_size": 64,
                 "init": "irnn", "optimizer": "adam", "lr": 1e-3, "clip": 1.0,
                 "batch_size": 64, "epochs": 60, "patience": 12, "seeds": 5, "loss": "pinball",
                 "anchor": True},
    "notes": {"features": ("occupancy",), "window": 24, "hidden_size": 200, "init": "normal",
              "optimizer": "sgd", "lr": 0.1, "clip": 0.0, "batch_size": 64, "epochs": 60,
              "patience": 12, "seeds": 1, "loss": "bce", "anchor": False},
}
DEFAULT_PRESET = "forecast"


@dataclasses.dataclass(frozen=True)
class DataSource:
  """Where the readings come from. Fields map one to one onto script flags."""
  csv: str | None = cli.option(None,
      "CSV of readings (train_occupancy.py: several files make a panel, each series trained on "
      "its own, rnn_jax.forecasting.panel); none = the built-in synthetic gym "
      "(rnn_jax.data.synthetic_readings)")
  time_column: str | None = cli.option(None,
      "timestamp column (the campus gym format is recognised by itself)")
  value_column: str | None = cli.option(None, "column with the number of people")
  capacity: float | None = cli.option(None,
      "capacity in people (none: the capacity column, or fitted on the training split)")
  capacity_column: str | None = cli.option(None, "column with the capacity (its largest value)")
  timezone: str | None = cli.option(None,
      "IANA time zone of naive timestamps and the calendar features (default: the file's offsets)")
  synthetic_seed: int = cli.option(0, "seed of the built-in synthetic series (without --csv)")
  unit: str = cli.option("people",
      "what the series counts, as tables, plots and forecasts name it (a garage counts cars)")
  max_flat_hours: float | None = cli.option(data.DEFAULT_MAX_FLAT_HOURS,
      "mask a value that stays unchanged for longer than this many hours counted in the hours "
      "of day when the series usually changes (a frozen sensor; runs at 0 are kept); 0 or "
      "none = off (rnn_jax.data.faults)")
  strict: bool = cli.option(False,
      "refuse a file with sensor faults (negative readings, readings above the capacity, frozen "
      "stretches) instead of masking them as gaps")

  def check(self) -> "DataSource":
    """Raises InputError naming the flag of a nonsensical setting; returns self."""
    if not isinstance(self.unit, str) or not self.unit.strip() or "\n" in self.unit:
      raise InputError(f"--unit: expected a name such as people or cars, got {self.unit!r}")
    if self.max_flat_hours is not None:
      checks.number("max_flat_hours", self.max_flat_hours, zero_is_off=True)
    checks.boolean("strict", self.strict)
    self._check_columns()
    return self

  def _check_columns(self) -> None:
    """One column cannot be both time and value (an absent flag means the gym format's)."""
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
                         capacity_column=self.capacity_column, timezone=self.timezone,
                         max_flat_hours=self.max_flat_hours, strict=self.strict)


@dataclasses.dataclass(frozen=True)
class LettersConfig:
  """The settings of rnn_jax.letters.train (field ``name``: flag ``--name``). The defaults reach
  about 96-97% test accuracy on the UCI letters (16,000 training rows) in under a minute on a
  2-core CPU."""
  hidden_size: int = cli.option(200, "H, tanh hidden units (the notes use 200)")
  lr: float = cli.option(0.01, "SGD step size epsilon (a finite positive number)")
  epochs: int = cli.option(40, "passes over the training split")
  batch_size: int = cli.option(1, "samples per SGD step; 1 = the notes' one sample at a time")
  grad: str = cli.option(
      "hand", '"hand" (the notes\' equations, mlp.loss_and_grads) | "autodiff" (jax.grad)')
  seed: int = cli.option(0, "seeds the split, the initial weights and the shuffling")

  def validate(self) -> "LettersConfig":
    """As ``TrainConfig.validate``."""
    for name, low, high in (("hidden_size", 1, None), ("epochs", 1, None),
                            ("batch_size", 1, None), ("seed", 0, 2**32 - 1)):
      object.__setattr__(self, name, checks.integer(name, getattr(self, name), low, high))
    checks.number("lr", self.lr)
    checks.choice("grad", self.grad, GRADS)
    return self


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """The occupancy run's training settings (field ``name``: flag ``--name``), compared on resume."""
  hidden_size: int = cli.option(200, "H, hidden units (the notes use 200)")
  init: str = cli.option("normal", '"normal" (N(0, 1/fan_in)) | "irnn" (U = I; Le et al. 2015)')
  optimizer: str = cli.option("adam", '"sgd" (the notes\' plain SGD) | "adam"')
  lr: float = cli.option(1e-3, "learning rate (a finite positive number)")
  clip: float = cli.option(1.0, "clip gradients to this global norm (Pascanu et al. 2013); 0 = off")
  batch_size: int = cli.option(
      64, "windows per step; the last partial batch of an epoch is dropped")
  epochs: int = cli.option(50, "maximum passes over the training set")
  patience: int = cli.option(10, "stop after this many epochs without a better val loss; 0 = never")
  grad: str = cli.option(
      "autodiff", '"autodiff" (jax.grad through the scan) | "hand" (the hand BPTT)')
  unroll: int = cli.option(1, "lax.scan unroll factor (autodiff only)")
  remat: bool = cli.option(
      False, "rematerialise the backward pass in chunks of sqrt(T) steps (jax.checkpoint; "
      "autodiff only)")
  seed: int = cli.option(0, "model i of fit_many uses seed + i (init and data order)")
  seeds: int = cli.option(1, "models trained at once in one vmapped program (fit_many)")
  devices: int | None = cli.option(
      None, "None or 0: all devices; n: the first n; data-parallel when > 1")
  precision: str = cli.option(
      DEFAULT_PRECISION, "float32 matmul precision: highest (IEEE float32) | tf32 | bf16 | "
      "default (the platform's: TF32 on recent NVIDIA GPUs, bf16 on TPUs); no effect on a CPU")
  anchor: bool = cli.option(
      False, "add logit(last reading) to every output logit, so the network forecasts the change "
      "from persistence (rnn_jax.core.model.anchor_logit)")
  loss: str = cli.option(
      "bce", '"bce" (the notes\' cross-entropy) | "pinball" (per horizon the lower, median and '
      "upper quantile of the --interval level, on the logit scale; conformalized on val)")

  def __post_init__(self):
    for f in dataclasses.fields(self):            # numpy scalars -> Python (JSON-serialisable)
      if isinstance(v := getattr(self, f.name), np.generic):
        object.__setattr__(self, f.name, v.item())

  def validate(self) -> "TrainConfig":
    """Raises InputError naming the flag of the first nonsensical value; returns self."""
    for name, low in (("hidden_size", 1), ("batch_size", 1), ("epochs", 1), ("patience", 0),
                      ("unroll", 1), ("seed", 0), ("seeds", 1)):
      object.__setattr__(self, name, checks.integer(name, getattr(self, name), low))
    for name, options in (("init", INIT_SCHEMES), ("optimizer", OPTIMIZERS),
                          ("grad", GRADS), ("precision", PRECISIONS), ("loss", LOSSES)):
      checks.choice(name, getattr(self, name), options)
    checks.number("lr", self.lr)
    checks.number("clip", self.clip, zero_is_off=True)
    checks.boolean("remat", self.remat)
    checks.boolean("anchor", self.anchor)
    if self.seed + self.seeds > 2**31:
      raise InputError(f"--seed: expected seed + seeds <= 2**31, got seed {self.seed} and "
                       f"seeds {self.seeds}")
    if self.devices is not None:
      object.__setattr__(self, "devices", checks.integer("devices", self.devices, 0))
    return self

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, d: dict) -> "TrainConfig":
    """The inverse of ``to_dict`` (unknown keys: InputError); reads older runs' ``hidden`` too,
    and a missing setting (a run from before it existed) takes its default: ``precision``
    "highest" (on a CPU, where those runs were made, every precision computes the same
    products), ``loss`` "bce"."""
    if "hidden" in d and "hidden_size" not in d:
      d = {("hidden_size" if k == "hidden" else k): v for k, v in d.items()}
    unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
      raise InputError(f"training config: unknown settings {sorted(unknown)}")
    return cls(**d)

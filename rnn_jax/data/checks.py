"""Argument checks shared by the data modules, and the one-line error that names a file.

Every check raises ``InputError`` with one line naming the argument (or the file) and what was
expected; the callers (``read_csv``, ``to_grid``, ``WindowSpec``, ``newest_window``) pass the
argument's name, and the message names its flag (``--window``; settings and flags are one to one).
"""
from __future__ import annotations

import math

import numpy as np

from rnn_jax.common.cli import flag
from rnn_jax.common.errors import InputError


def fail(path, message: str):
  """Raises InputError ``"{path}: {message}"``."""
  raise InputError(f"{path}: {message}")


def check_capacity(capacity, argument: str = "capacity") -> float:
  """A finite number of people > 0 (not a bool), as float."""
  if isinstance(capacity, bool):
    raise InputError(f"{flag(argument)}: expected a number of people > 0, got {capacity!r}")
  try:
    value = float(capacity)
  except (TypeError, ValueError):
    raise InputError(
        f"{flag(argument)}: expected a number of people > 0, got {capacity!r}") from None
  if not math.isfinite(value) or value <= 0:
    raise InputError(f"{flag(argument)}: expected a finite number of people > 0, got {capacity!r}")
  return value


def check_int(name: str, value, low: int, high: int | None = None) -> int:
  """An integer (an int, numpy integer or whole float; not a bool) from ``low`` to ``high``."""
  if isinstance(value, bool) or not isinstance(value, (int, np.integer, float)) or (
      isinstance(value, float) and not value.is_integer()):
    raise InputError(f"{flag(name)}: expected an integer >= {low}, got {value!r}")
  value = int(value)
  if value < low or (high is not None and value > high):
    bound = f">= {low}" if high is None else f"from {low} to {high}"
    raise InputError(f"{flag(name)}: expected an integer {bound}, got {value!r}")
  return value


def check_step(step_minutes) -> int:
  """A grid step in minutes that divides a day (1 to 1440)."""
  step = check_int("step_minutes", step_minutes, 1, 1440)
  if 1440 % step:
    raise InputError(f"--step-minutes: expected a divisor of 1440 (a day has a whole number of "
                     f"steps, for the seasonal baselines), got {step_minutes!r}")
  return step

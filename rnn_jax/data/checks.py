"""Argument checks shared by the data modules, and the one-line error that names a file.

Every check raises ``InputError`` with one line naming the argument (or the file) and what was
expected; the callers (``read_csv``, ``to_grid``, ``WindowSpec``, ``newest_window``) pass the
argument's name, and the message names its flag (``--window``; settings and flags are one to one).
Integers and numbers are checked by ``rnn_jax.common.checks`` (``check_int`` is its ``integer``,
under the name the data modules import); the capacity and the grid step are the data's own.
"""
from __future__ import annotations

import math

from rnn_jax.common import checks
from rnn_jax.common.errors import InputError

check_int = checks.integer   # (name, value, low, high=None): int; whole floats (CSV, JSON) too


def fail(path, message: str):
  """Raises InputError ``"{path}: {message}"``."""
  raise InputError(f"{path}: {message}")


def check_capacity(capacity, argument: str = "capacity") -> float:
  """A finite number of people > 0 (a number, not a bool or text), as float."""
  if not checks.is_number(capacity):
    checks.refuse(argument, "a number of people > 0", capacity)
  if not math.isfinite(capacity) or capacity <= 0:
    checks.refuse(argument, "a finite number of people > 0", capacity)
  return float(capacity)


def check_step(step_minutes) -> int:
  """A grid step in minutes that divides a day (1 to 1440)."""
  step = check_int("step_minutes", step_minutes, 1, 1440)
  if 1440 % step:
    checks.refuse("step_minutes", "a divisor of 1440 (a day has a whole number of steps, for "
                  "the seasonal baselines)", step_minutes)
  return step

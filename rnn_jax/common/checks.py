"""The argument checks every config shares. Each returns the value it accepted, converted (a whole
float such as JSON's ``12.0`` is an integer; a bool is never a number), or raises InputError
``"--flag-name: expected <what>, got <value!r>"``."""
from __future__ import annotations

import math
from typing import Any, Iterable, NoReturn

import numpy as np

from rnn_jax.common.cli import flag
from rnn_jax.common.errors import InputError


def refuse(name: str, what: str, value: Any) -> NoReturn:
  """Raises InputError ``"--flag-name: expected {what}, got {value!r}"``."""
  if isinstance(value, np.generic):                     # np.int64(3) is shown as 3
    value = value.item()
  raise InputError(f"{flag(name)}: expected {what}, got {value!r}")


def is_number(value) -> bool:
  """An int, float or numpy integer / float (finite or not); not a bool, not text."""
  return (not isinstance(value, (bool, np.bool_))
          and isinstance(value, (int, float, np.integer, np.floating)))


def _integer_words(low: int, high: int | None, plural: bool = False) -> str:
  s = "s" if plural else ""
  if high is not None:
    return f"{'' if plural else 'an '}integer{s} from {low} to {high}"
  if low == 1:
    return f"{'' if plural else 'a '}positive integer{s}"
  return f"{'' if plural else 'an '}integer{s} >= {low}"


def _whole(value, low: int, high: int | None) -> int | None:
  """``value`` as int when it is an integer (or whole float) from ``low`` to ``high``, else None."""
  if not is_number(value) or (isinstance(value, (float, np.floating))
                              and not (math.isfinite(value) and float(value).is_integer())):
    return None
  return int(value) if low <= value and (high is None or value <= high) else None


def integer(name: str, value, low: int, high: int | None = None) -> int:
  """An integer from ``low`` to ``high`` (no upper bound when None), as int."""
  whole = _whole(value, low, high)
  if whole is None:
    refuse(name, _integer_words(low, high), value)
  return whole


def integers(name: str, values, low: int = 1, high: int | None = None) -> tuple[int, ...]:
  """A non-empty tuple or list of integers from ``low`` to ``high``, as a tuple of ints."""
  if not isinstance(values, (tuple, list)) or not values:
    refuse(name, "a comma-separated list of " + _integer_words(low, high, plural=True), values)
  for v in values:
    if _whole(v, low, high) is None:
      refuse(name, _integer_words(low, high, plural=True), v)
  return tuple(int(v) for v in values)


def number(name: str, value, *, zero_is_off: bool = False) -> float:
  """A finite number > 0, or >= 0 with ``zero_is_off`` (0 switches the setting off), as float."""
  if (not is_number(value) or not math.isfinite(value)
      or (value < 0 if zero_is_off else value <= 0)):
    refuse(name, "a finite number >= 0 (0 = off)" if zero_is_off else "a finite positive number",
           value)
  return float(value)


def choice(name: str, value, options: Iterable):
  """One of ``options`` (compared with ``==``, bools never match), returned as given."""
  options = tuple(options)
  try:
    ok = not isinstance(value, (bool, np.bool_)) and value in options
  except (TypeError, ValueError):                     # e.g. an array
    ok = False
  if not ok:
    refuse(name, "one of " + ", ".join(map(str, options)), value)
  return value


def boolean(name: str, value) -> bool:
  """True or False (a numpy bool too), as bool; never 0, 1 or text."""
  if not isinstance(value, (bool, np.bool_)):
    refuse(name, "true or false", value)
  return bool(value)


check_int = integer   # the name the data modules use


def fail(path, message: str):
  """Raises InputError ``"{path}: {message}"``."""
  raise InputError(f"{path}: {message}")


def check_capacity(capacity, argument: str = "capacity") -> float:
  """A finite number of people > 0 (a number, not a bool or text), as float."""
  if not is_number(capacity):
    refuse(argument, "a number of people > 0", capacity)
  if not math.isfinite(capacity) or capacity <= 0:
    refuse(argument, "a finite number of people > 0", capacity)
  return float(capacity)


def check_step(step_minutes) -> int:
  """A grid step in minutes that divides a day (1 to 1440)."""
  step = check_int("step_minutes", step_minutes, 1, 1440)
  if 1440 % step:
    refuse("step_minutes", "a divisor of 1440 (a day has a whole number of steps, for "
                  "the seasonal baselines)", step_minutes)
  return step

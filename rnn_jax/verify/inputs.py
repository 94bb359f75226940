"""Small input files for the bad-input and fault cases: readings and letters CSVs, as bytes.

``GOOD`` is the readings file most cases start from (8 days of 10-minute readings); ``ROWS`` its
lines, and ``with_line`` a copy with one line replaced (the usual way a case damages it).
"""
from __future__ import annotations

from typing import Callable

import numpy as np


def readings_csv(n: int = 8 * 144, *, capacity: int = 60, seed: int = 0,
                 start: str = "2024-03-04T00:00", header: str = "time,people",
                 value: Callable[[np.ndarray], np.ndarray] | None = None,
                 extra: str = "") -> bytes:
  """``n`` readings every 10 minutes (ISO times, no offset), a daily rhythm in 0..capacity.

  8 days give 777 / 144 / 144 train / val / test windows of the default 24 + 6 steps.
  ``value(i)`` (i = reading index) replaces the rhythm; ``extra`` is appended to every row.
  """
  i = np.arange(n)
  if value is None:
    rng = np.random.default_rng(seed)
    hours = (i % 144) / 6
    v = 0.4 * capacity + 0.35 * capacity * np.sin(2 * np.pi * (hours - 9) / 24)
    v = np.clip(np.round(v + rng.normal(0, 3, n)), 0, capacity)
  else:
    v = np.asarray(value(i), np.float64)
  t0 = np.datetime64(start, "m")
  rows = [f"{t0 + np.timedelta64(10 * k, 'm')},{v[k]:g}{extra}" for k in range(n)]
  return (header + "\n" + "\n".join(rows) + "\n").encode()


def letters_csv(n: int = 60) -> bytes:
  """``n`` rows of the UCI letter-recognition format: a capital letter and 16 integers."""
  rng = np.random.default_rng(0)
  letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
  return "".join(letters[k % 26] + "," + ",".join(str(v) for v in rng.integers(0, 16, 16)) + "\n"
                 for k in range(n)).encode()


GOOD = readings_csv()
ROWS = GOOD.decode().splitlines()          # header + 1152 rows; ROWS[k] is line k + 1


def with_line(line: int, text: str) -> bytes:
  """GOOD with line ``line`` (1 = header) replaced by ``text``."""
  rows = list(ROWS)
  rows[line - 1] = text
  return ("\n".join(rows) + "\n").encode()

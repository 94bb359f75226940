"""Occupancy readings from a CSV file: ``read_csv`` and the ``Readings`` it returns.

The campus gym file (``../shared/data/campus_gym.csv``, Kaggle "Crowdedness at the Campus Gym");
tests/data/test_gym_data.py asserts every number stated about it here and where its quirks are
handled (``timestamps._repair_early_fall_back``, ``grid.to_grid``, ``windows.make_dataset``):
* 62,184 rows, 2015-08-14 17:00 to 2017-03-18 19:22 local time, a reading about every 10
  minutes (median step 602 s; the clock drifts, 58% of the steps are 601-603 s, so now and then
  a 10-minute bin is empty and is interpolated). ``number_people`` is 0..145, mean 29.1.
* ``date`` carries UTC offsets, -07:00 (38,874 rows) and -08:00 (23,310 rows), US Pacific time,
  switched an hour early on fall-back nights. Spring-forward labels are right (America/Los_Angeles's
  offset at each instant); both nights fall in outages (2016-03-13: none from 01:00 to 05:20
  local; 2017-03-12: a 42-hour one).
* Outages (in UTC, after the repair): 375 steps longer than an hour, 6 longer than a day, the
  longest 25 days (2017-01-19 23:00 to 2017-02-13 23:31 local, the winter break, in the test split).
* On the default grid (10 minutes, max_gap 2): 83,823 bins: 61,801 hold readings, 5,348 are
  interpolated (5,106 single bins, as when the clock skips one, and 121 pairs), 16,674 are gaps.
* No reading is a sensor fault (``faults``): none is negative, and the longest run of one
  nonzero value within its active hours (local 05:00 to 01:00) lasts 1.0 h, against the
  default ``max_flat_hours`` of 12; nothing is masked.
* Windows (horizons 1/3/6, splits 0.7/0.15/0.15; the features do not change the counts):
  train / val / test 40,147 / 11,661 / 3,834 at the default window 24 (``WindowSpec()``) and
  44,213 / 11,865 / 4,102 at window 12 (the README's runs). Validation starts 2016-09-25 11:20
  UTC, test 2016-12-21 19:00 UTC; the grid ends 2017-03-19 02:30 UTC.
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import os
import re
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
import pandas as pd

from rnn_jax.common.cli import flag
from rnn_jax.common.errors import InputError
from rnn_jax.common.checks import boolean, check_capacity, fail, number
from rnn_jax.data.faults import DEFAULT_MAX_FLAT_HOURS, REASONS, Faults, find_faults
from rnn_jax.data.timestamps import check_timezone, first_where, parse_timestamps, to_utc

GYM_TIME_COLUMN = "date"
GYM_VALUE_COLUMN = "number_people"
_WHAT = "a CSV file of occupancy readings"
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclasses.dataclass(frozen=True, eq=False)
class Readings:
  """R occupancy readings as read from a file (or generated), sorted by UTC time."""
  path: str                        # the file, or "<synthetic>"
  time_utc: np.ndarray             # [R] datetime64[ns], UTC, ascending (ties kept in file order)
  value: np.ndarray                # [R] float64, people (finite, >= 0)
  capacity: float | None           # people; None: to be fitted on the training split
  timezone: str | None             # IANA name for local time, or None (offsets in the file / UTC)
  local_offset_minutes: np.ndarray  # [R] int64: local time = UTC + this (for calendar features)
  sha256: str | None               # of the file's bytes; None for synthetic data
  line: np.ndarray                 # [R] int64: the line in the file (1 = header); 0 synthetic
  format: str = "csv"              # "campus_gym", "csv" or "synthetic"
  n_skipped_empty: int = 0         # rows whose reading was empty (skipped, not an error)
  n_offsets_repaired: int = 0      # readings moved back to the old offset on a fall-back night
  n_out_of_order: int = 0          # backwards steps in the file's order (after repair), sorted
  # Sensor faults dropped before gridding (``faults.find_faults``): readings per reason, the
  # hours they stood for (each to the next reading), the setting and the active local hours.
  n_masked_negative: int = 0
  n_masked_above_capacity: int = 0
  n_masked_frozen: int = 0
  masked_hours: tuple[float, float, float] = (0.0, 0.0, 0.0)   # negative, above_capacity, frozen
  max_flat_hours: float | None = None   # None: frozen stretches were not looked for
  active_hours: tuple[int, ...] = ()    # local hours of day in which the series usually changes

  def __len__(self) -> int:
    return int(self.value.shape[0])

  @property
  def n_masked(self) -> int:
    return self.n_masked_negative + self.n_masked_above_capacity + self.n_masked_frozen

  def masked(self) -> dict:
    """JSON-ready: per reason (negative, above_capacity, frozen) the masked readings and hours,
    the frozen-stretch setting and the active hours it counted."""
    counts = (self.n_masked_negative, self.n_masked_above_capacity, self.n_masked_frozen)
    out: dict = {name: {"readings": int(n), "hours": round(float(h), 2)}
                 for name, n, h in zip(REASONS, counts, self.masked_hours)}
    out["max_flat_hours"] = self.max_flat_hours
    out["active_hours"] = list(self.active_hours)
    return out

  def masked_text(self) -> str:
    """One phrase for a run's summary line, e.g. ``masked 120 readings (31.5 h): frozen 120``."""
    counts = (self.n_masked_negative, self.n_masked_above_capacity, self.n_masked_frozen)
    if not self.n_masked:
      return "masked 0 readings"
    parts = [f"{name.replace('_', ' ')} {n} ({h:.1f} h)"
             for name, n, h in zip(REASONS, counts, self.masked_hours) if n]
    return f"masked {self.n_masked} readings ({sum(self.masked_hours):.1f} h): {', '.join(parts)}"


def read_csv(path: str | os.PathLike, *, time_column: str | None = None,
             value_column: str | None = None, capacity: float | None = None,
             capacity_column: str | None = None, timezone: str | None = None,
             max_flat_hours: float | None = DEFAULT_MAX_FLAT_HOURS,
             strict: bool = False) -> Readings:
  """The campus gym format (columns ``number_people`` and ``date``, e.g. ``2015-08-14
  17:00:11-07:00``) is recognised; any other CSV needs ``time_column`` and ``value_column``.
  Capacity: ``capacity`` (people), or the largest of ``capacity_column``, else fitted on the
  training split (``windows.make_dataset``). Timestamps: ``timestamps.to_utc``; ``timezone`` also
  sets the calendar features' local time. Blank lines and rows with an empty reading (a sensor
  down; the grid treats the time as missing) are skipped, the latter counted. Sensor faults
  (``faults``: negative readings, readings above the capacity when it is known, the row's own
  with ``capacity_column``, and stretches frozen longer than ``max_flat_hours``, None or 0: not
  looked for) are dropped and counted, so the grid treats their times as missing; with
  ``strict`` the first of them raises ``InputError`` instead. Anything else wrong raises
  ``InputError``, one line naming the file and line (the header is line 1), column or argument,
  and what was expected."""
  timezone = check_timezone(timezone)
  if capacity is not None and capacity_column is not None:
    raise InputError("capacity and capacity_column: give one of them, not both")
  if capacity is not None:
    capacity = check_capacity(capacity)
  if max_flat_hours is not None:
    max_flat_hours = number("max_flat_hours", max_flat_hours, zero_is_off=True) or None
  strict = boolean("strict", strict)
  for name, value in (("time_column", time_column), ("value_column", value_column),
                      ("capacity_column", capacity_column)):
    if value is not None and (not isinstance(value, str) or not value.strip()):
      raise InputError(f"{flag(name)}: expected a column name, got {value!r}")
  if path is None:
    raise InputError("--csv: expected a path to a CSV file, got None")
  path = Path(path)
  raw, text = _read_text(path)
  header, rows, lines = _records(path, text)
  cols = _columns(path, header, rows, lines, time_column, value_column, capacity_column)
  lines = cols.lines
  stamps, problems = parse_timestamps(path, cols.times, lines, cols.time)
  people, found = _parse_numbers(path, cols.values, lines, cols.value, "reading",
                                 allow_negative=True)
  row_capacity = None
  if cols.capacities is not None:
    row_capacity, more = _parse_numbers(path, cols.capacities, lines, cols.capacity, "capacity",
                                        allow_zero=False)
    found += more
  _first_problem(cols.problems + problems + found)
  utc_ns, local_offset, n_repaired = to_utc(path, stamps, lines, timezone)
  order = np.argsort(utc_ns, kind="stable")
  limit = row_capacity[order] if row_capacity is not None else capacity
  faults = find_faults(utc_ns[order], local_offset[order], people[order], limit, max_flat_hours)
  if strict and faults.mask.any():
    raise InputError(_fault_message(path, faults, order, cols, people, lines, row_capacity,
                                    capacity, max_flat_hours))
  if row_capacity is not None:
    capacity = float(row_capacity.max())
  keep = order[~faults.mask]
  if not keep.size:
    fail(path, f"no readings left: all {len(people)} readings are sensor faults "
         f"({_fault_counts(faults)}); expected some valid readings")
  counts = faults.counts()
  return Readings(
      path=str(path), time_utc=utc_ns[keep].astype("datetime64[ns]"),
      value=people[keep].astype(np.float64), capacity=capacity, timezone=timezone,
      local_offset_minutes=local_offset[keep], sha256=hashlib.sha256(raw).hexdigest(),
      line=lines[keep], format="campus_gym" if cols.gym else "csv",
      n_skipped_empty=cols.n_skipped, n_offsets_repaired=int(n_repaired),
      n_out_of_order=int((np.diff(utc_ns) < 0).sum()),
      n_masked_negative=counts["negative"]["readings"],
      n_masked_above_capacity=counts["above_capacity"]["readings"],
      n_masked_frozen=counts["frozen"]["readings"],
      masked_hours=tuple(counts[r]["hours"] for r in REASONS),
      max_flat_hours=max_flat_hours, active_hours=faults.active_hours)


def before(readings: Readings, end) -> Readings:
  """The readings strictly before ``end`` (UTC, ``datetime64``), every per-reading array cut
  alike; the rest (path, SHA-256, capacity, the counts of masked faults, found on the whole
  file) is kept. A backtest fold's data (rnn_jax.forecasting.backtest)."""
  keep = readings.time_utc < np.datetime64(end, "ns")
  return dataclasses.replace(readings, time_utc=readings.time_utc[keep],
                             value=readings.value[keep],
                             local_offset_minutes=readings.local_offset_minutes[keep],
                             line=readings.line[keep])


_UNSTRICT = "(without --strict such {} are masked as gaps)"


def _fault_counts(faults: Faults) -> str:
  return ", ".join(f"{name.replace('_', ' ')} {c['readings']}"
                   for name, c in faults.counts().items() if c["readings"])


def _fault_message(path, faults: Faults, order: np.ndarray, cols: "_Columns", people: np.ndarray,
                   lines: np.ndarray, row_capacity: np.ndarray | None, capacity: float | None,
                   max_flat_hours: float | None) -> str:
  """The one-line message of the sensor fault on the earliest line (``strict``)."""
  reason = np.full(len(people), -1, np.int8)
  reason[order] = faults.reason                  # back in file order
  problems: list[tuple[int, str]] = []
  negative = reason == REASONS.index("negative")
  problems += first_where(negative, lines, lambda i: (
      f"{path}: line {lines[i]}: reading {str(cols.values[i])[:30]!r} in column {cols.value!r} "
      f"is negative; expected a number >= 0 {_UNSTRICT.format('readings')}"))
  above = reason == REASONS.index("above_capacity")

  def above_message(i: int) -> str:
    source = (f"the row's {cols.capacity!r} {row_capacity[i]:g}" if row_capacity is not None
              else f"the given capacity {capacity:g}")
    return (f"{path}: line {lines[i]}: reading {people[i]:g} in column {cols.value!r} is above "
            f"{source}; expected readings <= capacity {_UNSTRICT.format('readings')}")

  problems += first_where(above, lines, above_message)
  for run in faults.runs:
    first, last = order[run.start], order[run.stop - 1]
    problems.append((int(lines[order[run.start + 1]]), (
        f"{path}: lines {lines[first]}..{lines[last]}: reading {people[first]:g} in column "
        f"{cols.value!r} stays unchanged for {run.hours:.1f} hours ({run.stop - run.start} "
        f"readings), {run.active_hours:.1f} of them in the hours of day when it usually changes; "
        f"expected a change within --max-flat-hours {max_flat_hours:g} of them "
        f"{_UNSTRICT.format('stretches')}")))
  return min(problems)[1]


def _read_text(path: Path) -> tuple[bytes, str]:
  """The file's bytes and its UTF-8 text, or InputError for a missing/unreadable/binary file."""
  if not path.exists():
    fail(path, f"no such file (expected {_WHAT})")
  if path.is_dir():
    fail(path, f"is a directory, expected {_WHAT}")
  try:
    data = path.read_bytes()
  except OSError as err:
    fail(path, f"cannot be read ({err.strerror or err})")
  if not data.strip():
    fail(path, f"is empty (expected {_WHAT})")
  if b"\x00" in data:
    line = data[:data.index(b"\x00")].count(b"\n") + 1
    fail(path, f"line {line}: contains NUL bytes, so this looks like a binary file; "
          f"expected {_WHAT}")
  try:
    text = data.decode("utf-8-sig")
  except UnicodeDecodeError as err:
    line = data[:err.start].count(b"\n") + 1
    fail(path, f"line {line}: is not UTF-8 text (byte 0x{data[err.start]:02x} at byte offset "
          f"{err.start}); expected {_WHAT} saved as UTF-8")
  bad = _CONTROL_RE.search(text)
  if bad:
    line = text[:bad.start()].count("\n") + 1
    fail(path, f"line {line}: contains the control character 0x{ord(bad.group()):02x}, so this "
          f"looks like a binary file; expected {_WHAT}")
  return data, text


def _records(path: Path, text: str) -> tuple[list[str], list[list[str]], np.ndarray]:
  """Header, data records and each record's first line (1-based; blank lines dropped; quoted
  fields span lines)."""
  reader = csv.reader(io.StringIO(text, newline=""))
  header: list[str] | None = None
  rows: list[list[str]] = []
  lines: list[int] = []
  previous_end = 0
  try:
    for record in reader:
      start, previous_end = previous_end + 1, reader.line_num
      if not record or all(not f.strip() for f in record):
        continue
      if header is None:
        header, header_line = [f.strip() for f in record], start
        continue
      if len(record) != len(header):
        fail(path, f"line {start}: {len(record)} fields, but the header (line {header_line}) "
              f"has {len(header)}; expected one value per column")
      rows.append(record)
      lines.append(start)
  except csv.Error as err:
    fail(path, f"line {reader.line_num}: not readable as CSV ({err})")
  if header is None:
    fail(path, f"is empty (expected {_WHAT})")
  if not rows:
    fail(path, f"has a header (columns {_names(header)}) but no data rows")
  for i, name in enumerate(header):
    if name and header.index(name) < i:
      fail(path, f"line {header_line}: column {name!r} appears twice in the header (columns "
            f"{header.index(name) + 1} and {i + 1}); expected unique column names")
  return header, rows, np.asarray(lines, np.int64)


def _names(header: Sequence[str], limit: int = 12) -> str:
  shown = ", ".join(repr(h) for h in header[:limit])
  return shown + (f", ... ({len(header)} in all)" if len(header) > limit else "")


def _column(path, header, name: str, argument: str) -> int:
  if name not in header:
    hint = ""
    if len(header) == 1 and any(sep in header[0] for sep in ";\t|"):
      hint = " (the file seems to be separated by something other than commas)"
    fail(path, f"no column {name!r} ({argument}); found columns {_names(header)}{hint}")
  return header.index(name)


class _Columns(NamedTuple):
  """The chosen columns and their stripped cells in the R rows that have a reading."""
  time: str                        # column names (time and value stripped)
  value: str
  capacity: str | None             # capacity_column as given (messages quote it so)
  gym: bool                        # the campus gym format: its own columns, capacity fitted later
  times: pd.Series                 # [R] object
  values: np.ndarray               # [R] object
  capacities: np.ndarray | None    # [R] object, from capacity_column; None without it
  lines: np.ndarray                # [R] int64 line of each row
  n_skipped: int                   # rows skipped for an empty reading
  problems: list[tuple[int, str]]  # an empty timestamp beside a reading, as (line, message)


def _columns(path, header: list[str], rows: list[list[str]], lines: np.ndarray, time_column,
             value_column, capacity_column) -> _Columns:
  """The time, value and capacity columns (given, or the gym format's own) and their cells."""
  gym = GYM_TIME_COLUMN in header and GYM_VALUE_COLUMN in header
  if time_column is None and value_column is None and not gym:
    fail(path, f"not the campus gym format (no columns {GYM_VALUE_COLUMN!r} and "
         f"{GYM_TIME_COLUMN!r}); found columns {_names(header)}; name the time and value "
         "columns (time_column, value_column)")
  for name, value in (("time_column", time_column), ("value_column", value_column)):
    if value is None and not gym:
      fail(path, f"{name} is missing: the file is not in the campus gym format, so both "
           "time_column and value_column are needed")
  time_column = (time_column or GYM_TIME_COLUMN).strip()
  value_column = (value_column or GYM_VALUE_COLUMN).strip()
  t = _column(path, header, time_column, "time_column")
  v = _column(path, header, value_column, "value_column")
  c = (_column(path, header, capacity_column.strip(), "capacity_column")
       if capacity_column is not None else None)
  if t == v:
    raise InputError("time_column and value_column: name two different columns")
  times = pd.Series([r[t].strip() for r in rows], dtype=object)
  values = np.array([r[v].strip() for r in rows], dtype=object)
  keep = values != ""
  problems = first_where((times == "").to_numpy(bool) & keep, lines, lambda i: (
      f"{path}: line {lines[i]}: empty timestamp in column {time_column!r}; expected a date and "
      "time"))
  if not keep.any():
    _first_problem(problems)
    fail(path, f"no readings: all {len(rows)} data rows have an empty {value_column!r}")
  capacities = (np.array([r[c].strip() for r in rows], dtype=object)[keep]
                if c is not None else None)
  return _Columns(time_column, value_column, capacity_column,
                  gym and time_column == GYM_TIME_COLUMN and value_column == GYM_VALUE_COLUMN,
                  times[keep].reset_index(drop=True), values[keep], capacities, lines[keep],
                  int((~keep).sum()), problems)


def _first_problem(problems: list[tuple[int, str]]):
  if problems:
    raise InputError(min(problems)[1])


def _parse_numbers(path, strings: np.ndarray, lines: np.ndarray, column: str, what: str,
                   allow_zero: bool = True, allow_negative: bool = False
                   ) -> tuple[np.ndarray, list[tuple[int, str]]]:
  """float64 of non-empty strings, and the first non-numeric/NaN/inf/negative line of each kind
  (negative numbers pass with ``allow_negative``: readings, which ``faults`` judges)."""
  values = pd.to_numeric(pd.Series(strings, dtype=object), errors="coerce").to_numpy(np.float64)

  def at(i: int) -> str:
    return f"{path}: line {lines[i]}: {what} {str(strings[i])[:30]!r} in column {column!r} is"

  def nan(i: int) -> str:
    literal = str(strings[i]).strip().lower().lstrip("+-") == "nan"
    return f"{at(i)} {'NaN' if literal else 'not a number'}; expected a finite number"

  return values, (
      first_where(np.isnan(values), lines, nan)
      + first_where(np.isinf(values), lines, lambda i: f"{at(i)} infinite; expected a finite "
                    "number")
      + first_where(np.zeros(len(values), bool) if allow_negative else
                    (values < 0) if allow_zero else (values <= 0), lines, lambda i: (
          f"{at(i)} {'negative' if values[i] < 0 else 'zero'}; expected a number "
          f"{'>= 0' if allow_zero else '> 0'}")))

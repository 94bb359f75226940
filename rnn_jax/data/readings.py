"""Occupancy readings: a CSV (or the built-in synthetic series) to a regular grid to windows.

The pipeline, each step a pure function of the one before::

    read_csv(path) / synthetic_readings()  ->  Readings   (UTC times, people, capacity or None)
    to_grid(readings, step, max_gap)        ->  Grid       (one value per step, NaN in gaps)
    make_dataset(readings, WindowSpec())    ->  Dataset    (train / val / test windows)
    newest_window(readings, spec, capacity) ->  the newest complete window, for forecasting

Axis convention (as in rnn_jax.model): ``xs [N, T, D]`` windows of T steps with D inputs per
step, ``ys [N, K]`` targets in [0, 1]. ``D = 1`` (occupancy fraction, the derivation notes'
``x in R^24``: 4 hours of readings every 10 minutes) or ``D = 5`` with calendar features
(sin/cos of local time of day and of the day of the week). ``K = len(horizons)`` for the task
``horizons`` (the notes' 3 sigmoid outputs), ``K = 3`` (low / medium / high) for ``levels``.

The campus gym file (``../shared/data/campus_gym.csv``, Kaggle "Crowdedness at the Campus Gym")
and what this module does about its quirks (numbers from the file, checked by
tests/test_gym_data.py):

* 62,184 rows, 2015-08-14 17:00 to 2017-03-18 19:22 local time, a reading about every 10
  minutes (median step 602 s; the clock drifts by 1-3 s per reading, so now and then a 10-minute
  bin is empty and is interpolated). ``number_people`` is 0..145, mean 29.1.
* ``date`` carries UTC offsets, -07:00 (38,874 rows) and -08:00 (23,310 rows), US Pacific time.
  On fall-back nights the offset switches an hour EARLY: on 2016-11-06 the label changes from
  -07:00 to -08:00 at 01:01:48 wall-clock time, although the clock itself is turned back only
  after 01:51:52 (the next reading says 01:01:52 again). Read at face value the six readings
  01:01:48..01:51:52 land an hour late in UTC: a doubled 09:00 UTC hour, an empty 08:00 UTC hour
  and a -50 minute step back (the file's only backwards step, row 51178 / line 51180). See
  ``_repair_early_fall_back`` for the rule that fixes it (6 readings get -07:00 back). On
  2015-11-01 the label also switches at 01:00:13, but the next reading comes 4 h 20 min later, so
  the file gives no evidence of which pass through the repeated hour that one reading belongs to;
  it keeps its label (no backwards step or doubled hour results either way).
* Spring-forward nights (2016-03-13; 2017-03-12 falls in a 42-hour outage) are labelled
  correctly.
* One burst of 103 readings about 30 s apart on 2015-08-25 17:10:40..18:02:46 local time (up to
  20 in one 10-minute bin), and 58 pairs of readings seconds apart (mostly around midnight); each
  grid bin takes the mean of the readings inside it.
* The maximum, 145 people on Monday 2015-08-24 13:20 local (the first week of term), comes
  within 40 minutes of readings of 134, 139, 119 and 105: a real peak, not a glitch. It lies in
  the training split, so the fitted capacity is 145 (see ``make_dataset``).
* Outages: 375 steps longer than an hour, 6 longer than a day, the longest 25 days (2017-01-19
  to 2017-02-13, in the winter break that the test split falls into).
* On the default grid (10 minutes, max_gap 2): 83,823 bins, of which 61,801 hold readings,
  5,348 are interpolated (mostly single bins skipped by the drifting clock) and 16,674 are gaps.
  Default windows (24 in, +1/+3/+6 out): 40,147 train, 11,661 val, 3,834 test.

Local time. The calendar features need local time. With ``timezone`` (an IANA name) local time
is the UTC time converted with zoneinfo, so it is right at every instant. Without it, local time
is UTC plus the (repaired) offset of the newest reading at or before the grid bin's end: for the
gym file that is Pacific time except within the hour after a transition that has no reading.
Naive timestamps without ``timezone`` are taken as UTC and local time equals them.
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import math
import os
import re
import warnings
import zoneinfo
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
import pandas as pd
from pandas.tseries.api import guess_datetime_format

from rnn_jax.common.errors import InputError

GYM_TIME_COLUMN = "date"
GYM_VALUE_COLUMN = "number_people"
FEATURES = ("occupancy", "calendar")
TASKS = ("horizons", "levels")
SPLITS = ("train", "val", "test")
LEVELS = ("low", "medium", "high")
N_CALENDAR = 4  # sin, cos of time of day; sin, cos of time of week

_NS_PER_MINUTE = 60 * 10**9
# A timestamp's trailing UTC offset: ``Z``, ``UTC``, ``+HH``, ``+HHMM`` or ``+HH:MM`` after a time of
# day (so that the ``-14`` of a date such as ``2015-08-14`` is never taken for an offset).
_OFFSET_RE = (r"^(?P<wall>.*?\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?)\s*"
              r"(?P<off>[Zz]|UTC|GMT|[+-]\d{2}(?::?\d{2})?)$")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


# --------------------------------------------------------------------------------------------
# Readings


@dataclasses.dataclass(frozen=True, eq=False)
class Readings:
  """Occupancy readings as read from a file (or generated), sorted by UTC time.

  Arrays have one entry per reading, R readings in all.
  """
  path: str                        # the file, or "<synthetic>"
  time_utc: np.ndarray             # [R] datetime64[ns], UTC, ascending (ties kept in file order)
  value: np.ndarray                # [R] float64, people (finite, >= 0)
  capacity: float | None           # people; None: to be fitted on the training split
  timezone: str | None             # IANA name for local time, or None (offsets in the file / UTC)
  local_offset_minutes: np.ndarray  # [R] int64: local time = UTC + this (for calendar features)
  sha256: str | None               # of the file's bytes; None for synthetic data
  line: np.ndarray                 # [R] int64: the line in the file (1 = header); 0 synthetic
  format: str = "csv"              # "campus_gym", "csv" or "synthetic"
  time_column: str | None = None
  value_column: str | None = None
  n_skipped_empty: int = 0         # rows whose reading was empty (skipped, not an error)
  n_offsets_repaired: int = 0      # readings moved back to the old offset on a fall-back night
  n_out_of_order: int = 0          # backwards steps in the file's order (after repair), sorted

  def __len__(self) -> int:
    return int(self.value.shape[0])


def _fail(path, message: str):
  raise InputError(f"{path}: {message}")


def _read_text(path: Path, what: str) -> tuple[bytes, str]:
  """The file's bytes and its UTF-8 text, or InputError for a missing/unreadable/binary file."""
  if not path.exists():
    _fail(path, f"no such file (expected {what})")
  if path.is_dir():
    _fail(path, f"is a directory, expected {what}")
  try:
    data = path.read_bytes()
  except OSError as err:
    _fail(path, f"cannot be read ({err.strerror or err})")
  if not data.strip():
    _fail(path, f"is empty (expected {what})")
  if b"\x00" in data:
    line = data[:data.index(b"\x00")].count(b"\n") + 1
    _fail(path, f"line {line}: contains NUL bytes, so this looks like a binary file; "
          f"expected {what}")
  try:
    text = data.decode("utf-8-sig")
  except UnicodeDecodeError as err:
    line = data[:err.start].count(b"\n") + 1
    _fail(path, f"line {line}: is not UTF-8 text (byte 0x{data[err.start]:02x} at byte offset "
          f"{err.start}); expected {what} saved as UTF-8")
  bad = _CONTROL_RE.search(text)
  if bad:
    line = text[:bad.start()].count("\n") + 1
    _fail(path, f"line {line}: contains the control character 0x{ord(bad.group()):02x}, so this "
          f"looks like a binary file; expected {what}")
  return data, text


def _records(path: Path, text: str, what: str) -> tuple[list[str], list[list[str]], np.ndarray]:
  """Header, data records and each record's first line number (1-based; blank lines dropped).

  The stdlib csv module tokenizes, because it reports where each record starts (quoted fields
  may span lines); pandas parses the values afterwards. Every record must have as many fields
  as the header.
  """
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
        header = [f.strip() for f in record]
        header_line = start
        continue
      if len(record) != len(header):
        _fail(path, f"line {start}: {len(record)} fields, but the header (line {header_line}) "
              f"has {len(header)}; expected one value per column")
      rows.append(record)
      lines.append(start)
  except csv.Error as err:
    _fail(path, f"line {reader.line_num}: not readable as CSV ({err})")
  if header is None:
    _fail(path, f"is empty (expected {what})")
  if not rows:
    _fail(path, f"has a header (columns {_names(header)}) but no data rows")
  seen: dict[str, int] = {}
  for i, name in enumerate(header):
    if name and name in seen:
      _fail(path, f"line {header_line}: column {name!r} appears twice in the header (columns "
            f"{seen[name] + 1} and {i + 1}); expected unique column names")
    seen.setdefault(name, i)
  return header, rows, np.asarray(lines, np.int64)


def _names(header: Sequence[str], limit: int = 12) -> str:
  shown = ", ".join(repr(h) for h in header[:limit])
  return shown + (f", ... ({len(header)} in all)" if len(header) > limit else "")


def _column(path, header, name: str, argument: str) -> int:
  if name not in header:
    hint = ""
    if len(header) == 1 and any(sep in header[0] for sep in ";\t|"):
      hint = " (the file seems to be separated by something other than commas)"
    _fail(path, f"no column {name!r} ({argument}); found columns {_names(header)}{hint}")
  return header.index(name)


def _first_problem(problems: list[tuple[int, str]]):
  """Raises the problem with the lowest line number, if any."""
  if problems:
    raise InputError(min(problems)[1])


def _check_capacity_value(capacity, argument: str = "capacity") -> float:
  if isinstance(capacity, bool):
    raise InputError(f"{argument}: expected a number of people > 0, got {capacity!r}")
  try:
    value = float(capacity)
  except (TypeError, ValueError):
    raise InputError(f"{argument}: expected a number of people > 0, got {capacity!r}") from None
  if not math.isfinite(value) or value <= 0:
    raise InputError(f"{argument}: expected a finite number of people > 0, got {capacity!r}")
  return value


def check_timezone(timezone: str | None) -> str | None:
  """The IANA name, checked with zoneinfo; InputError naming the argument otherwise."""
  if timezone is None:
    return None
  if not isinstance(timezone, str) or not timezone.strip():
    raise InputError(f"timezone: expected an IANA time zone name such as Europe/Berlin, "
                     f"got {timezone!r}")
  try:
    zoneinfo.ZoneInfo(timezone.strip())
  except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
    raise InputError(f"timezone: {timezone!r} is not an IANA time zone name (expected e.g. "
                     "Europe/Berlin or America/Los_Angeles)") from None
  return timezone.strip()


def _parse_numbers(path, strings: np.ndarray, lines: np.ndarray, column: str, what: str,
                   allow_zero: bool = True) -> tuple[np.ndarray, list[tuple[int, str]]]:
  """float64 of non-empty strings, and the first non-numeric/NaN/inf/negative line of each kind."""
  values = pd.to_numeric(pd.Series(strings, dtype=object), errors="coerce").to_numpy(np.float64)
  problems = []
  nan = np.isnan(values)
  if nan.any():
    i = int(np.argmax(nan))
    text = str(strings[i])
    kind = "is NaN" if text.strip().lower().lstrip("+-") == "nan" else "is not a number"
    problems.append((lines[i], f"{path}: line {lines[i]}: {what} {text[:30]!r} in column "
                     f"{column!r} {kind}; expected a finite number"))
  inf = np.isinf(values)
  if inf.any():
    i = int(np.argmax(inf))
    problems.append((lines[i], f"{path}: line {lines[i]}: {what} {strings[i][:30]!r} in column "
                     f"{column!r} is infinite; expected a finite number"))
  bad = (values < 0) if allow_zero else (values <= 0)
  if bad.any():
    i = int(np.argmax(bad))
    sign = "negative" if values[i] < 0 else "zero"
    problems.append((lines[i], f"{path}: line {lines[i]}: {what} {strings[i][:30]!r} in "
                     f"column {column!r} is {sign}; expected a number "
                     f"{'>= 0' if allow_zero else '> 0'}"))
  return values, problems


def _parse_wall(strings: pd.Series) -> pd.Series:
  """Naive wall-clock datetimes (datetime64[ns]); NaT where unparseable or out of range.

  ISO 8601 first. Timestamps that are not ISO 8601 must all share one format: pandas guesses it
  from the first of them, once month first and once day first (``01.03.2021``); of the
  guesses that read the most rows, the one whose times run most nearly in file order (fewest
  backwards steps, then the shortest span) wins, so ``13.03.2021`` or a 10-minute series
  settles the order. A row that the chosen format cannot read is unparseable: rows are never
  read with different formats, which could silently swap day and month.
  """
  def to_ns(parsed: pd.Series) -> pd.Series:
    out = pd.Series(pd.NaT, index=parsed.index, dtype="datetime64[ns]")
    ok = parsed.notna()
    if ok.any():
      years = parsed[ok].dt.year
      inside = ok.copy()
      inside[ok] = (years > 1677) & (years < 2262)
      out[inside] = parsed[inside].astype("datetime64[ns]")
    return out

  def parse(fmt: str) -> pd.Series | None:
    try:
      parsed = pd.to_datetime(strings[retry], format=fmt, errors="coerce")
    except (ValueError, TypeError, OverflowError):
      return None
    if not (pd.api.types.is_datetime64_dtype(parsed.dtype)
            and getattr(parsed.dtype, "tz", None) is None):
      return None
    return to_ns(parsed)

  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    retry = pd.Series(True, index=strings.index)  # the rows ``parse`` reads: all, for ISO
    wall = parse("ISO8601")
    if wall is None:
      wall = pd.Series(pd.NaT, index=strings.index, dtype="datetime64[ns]")
    retry = wall.isna() & (strings.str.len() > 0)
    if retry.any():
      first = strings[retry].iloc[0]
      formats = {guess_datetime_format(first, dayfirst=d) for d in (False, True)} - {None}
      best, best_key = None, None
      for fmt in sorted(formats):
        parsed = parse(fmt)
        if parsed is None:
          continue
        t = parsed.dropna().to_numpy().astype(np.int64)
        key = (-len(t), int((np.diff(t) < 0).sum()) if len(t) else 0,
               int(t.max() - t.min()) if len(t) else 0, fmt.find("%d") > fmt.find("%m"))
        if best_key is None or key < best_key:
          best, best_key = parsed, key
      if best is not None:
        wall[retry] = best
  return wall


def _offset_minutes(strings: pd.Series) -> np.ndarray:
  """Offsets ``Z``/``UTC``/``GMT``/``+HH[[:]MM]`` in minutes (float, NaN where absent)."""
  absent = strings.isna().to_numpy(bool)
  text = strings.fillna("").astype(str).str.upper()
  zero = text.isin(["Z", "UTC", "GMT"])
  sign = np.where(text.str[0] == "-", -1.0, 1.0)
  digits = text.str.replace(":", "", regex=False).str[1:]
  hours = pd.to_numeric(digits.str[:2], errors="coerce").to_numpy(np.float64)
  minutes = pd.to_numeric(digits.str[2:4].replace("", "0"), errors="coerce").to_numpy(np.float64)
  minutes = np.where(np.isnan(minutes), 0.0, minutes)
  out = sign * (hours * 60 + minutes)
  out = np.where(zero.to_numpy(bool), 0.0, out)
  return np.where(absent, np.nan, out)


def _repair_early_fall_back(wall_ns: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, int]:
  """Moves readings labelled with the new offset too early on a fall-back night back to the old.

  ``wall_ns`` [R] int64 wall-clock time, ``offsets`` [R] int64 minutes, both in file order.
  A correct clock shows the repeated hour twice: first with the old offset, then, after the
  clock is turned back, with the new one; so the label changes exactly where the wall clock
  steps back. The gym file changes the label at the START of the repeated hour instead. The rule
  asks for evidence: after a change to a smaller offset (by ``delta`` minutes) at a reading whose
  wall clock did not step back, if the wall clock steps back later, within ``delta`` of wall time
  and with no further label change, then the readings in between still belong to the old offset.
  Without such a step back (e.g. an outage across the transition) labels are left as they are.
  Returns the repaired offsets and how many readings were changed.
  """
  offsets = offsets.copy()
  changed = 0
  switches = np.flatnonzero(offsets[1:] < offsets[:-1]) + 1
  for i in switches:
    delta = int(offsets[i - 1] - offsets[i])
    if wall_ns[i] < wall_ns[i - 1]:
      continue  # the clock was turned back together with the label: consistent
    limit = wall_ns[i] + delta * _NS_PER_MINUTE
    k = i + 1
    while k < len(offsets) and offsets[k] == offsets[i] and wall_ns[k - 1] < limit:
      if wall_ns[k] < wall_ns[k - 1]:
        offsets[i:k] = offsets[i - 1]
        changed += k - i
        break
      k += 1
  return offsets, changed


def _localize(path, wall: pd.Series, lines: np.ndarray, timezone: str) -> np.ndarray:
  """UTC ns int64 of naive wall-clock times in ``timezone``.

  Wall times that do not exist (skipped by a spring-forward) raise InputError. Wall times that
  occur twice (the repeated hour of a fall-back night) are read as the first pass (summer time)
  until the wall clock steps back within the run of such readings, then as the second.
  """
  index = pd.DatetimeIndex(wall.to_numpy("datetime64[ns]"))
  n = len(index)
  first = index.tz_localize(timezone, ambiguous=np.ones(n, bool), nonexistent="NaT")
  second = index.tz_localize(timezone, ambiguous=np.zeros(n, bool), nonexistent="NaT")
  missing = np.asarray(first.isna())
  if missing.any():
    i = int(np.argmax(missing))
    _fail(path, f"line {lines[i]}: local time {wall.iloc[i]} does not exist in {timezone} (the "
          "clocks skip it when summer time starts); expected a time that exists there")
  a = first.tz_convert("UTC").tz_localize(None).to_numpy().astype(np.int64)
  b = second.tz_convert("UTC").tz_localize(None).to_numpy().astype(np.int64)
  ambiguous = a != b
  use_second = np.zeros(n, bool)
  w = index.to_numpy().astype(np.int64)
  i = 0
  while i < n:
    if not ambiguous[i]:
      i += 1
      continue
    j = i
    stepped = False
    while j < n and ambiguous[j]:
      if j > i and w[j] < w[j - 1]:
        stepped = True
      use_second[j] = stepped
      j += 1
    i = j
  return np.where(use_second, b, a)


def read_csv(path: str | os.PathLike, *, time_column: str | None = None,
             value_column: str | None = None, capacity: float | None = None,
             capacity_column: str | None = None, timezone: str | None = None) -> Readings:
  """Reads occupancy readings from a CSV file.

  The campus gym format (columns ``number_people`` and ``date``, e.g. ``2015-08-14
  17:00:11-07:00``) is recognised by itself, and its capacity is left to be fitted on the
  training split (``capacity=None``). Any other CSV needs ``time_column`` and ``value_column``
  and either ``capacity`` (people) or ``capacity_column`` (its largest value is the capacity;
  every reading must be at most its own row's capacity).

  Timestamps: ISO 8601 is preferred; other rows must share one format, which pandas guesses
  (see ``_parse_wall`` for how day and month order is settled). Either every timestamp has a
  UTC offset or none has. Offsets are converted to
  UTC, after repairing fall-back nights whose offsets switch an hour early (see
  ``_repair_early_fall_back``). Naive timestamps are local time in ``timezone`` when given,
  otherwise UTC. ``timezone`` also sets the local time of the calendar features (by default the
  file's own offsets). Rows are sorted by UTC time (``n_out_of_order`` counts backwards steps).

  Rows with an empty reading are skipped and counted (``n_skipped_empty``): exports often
  leave a cell empty when a sensor was down, and the grid then treats the time as missing.
  Blank lines are skipped. Everything else that is wrong raises ``InputError`` with one line
  naming the file and the line (``line N`` counts lines as an editor does, the header is line
  1), column or argument and what was expected.
  """
  timezone = check_timezone(timezone)
  if capacity is not None and capacity_column is not None:
    raise InputError("capacity and capacity_column: give one of them, not both")
  if capacity is not None:
    capacity = _check_capacity_value(capacity)
  for name, value in (("time_column", time_column), ("value_column", value_column),
                      ("capacity_column", capacity_column)):
    if value is not None and (not isinstance(value, str) or not value.strip()):
      raise InputError(f"{name}: expected a column name, got {value!r}")
  if path is None:
    raise InputError("csv: expected a path to a CSV file, got None")
  path = Path(path)
  what = "a CSV file of occupancy readings"
  raw, text = _read_text(path, what)
  header, rows, lines = _records(path, text, what)

  gym = GYM_TIME_COLUMN in header and GYM_VALUE_COLUMN in header
  if time_column is None and value_column is None and not gym:
    _fail(path, f"not the campus gym format (no columns {GYM_VALUE_COLUMN!r} and "
          f"{GYM_TIME_COLUMN!r}); found columns {_names(header)}; name the time and value "
          "columns (time_column, value_column)")
  for name, value in (("time_column", time_column), ("value_column", value_column)):
    if value is None and not gym:
      _fail(path, f"{name} is missing: the file is not in the campus gym format, so both "
            "time_column and value_column are needed")
  time_column = (time_column or GYM_TIME_COLUMN).strip()
  value_column = (value_column or GYM_VALUE_COLUMN).strip()
  is_gym_format = gym and time_column == GYM_TIME_COLUMN and value_column == GYM_VALUE_COLUMN
  if capacity is None and capacity_column is None and not is_gym_format:
    _fail(path, "no capacity: give capacity (people) or capacity_column (only the campus gym "
          "format has its capacity fitted on the training data)")
  t_col = _column(path, header, time_column, "time_column")
  v_col = _column(path, header, value_column, "value_column")
  c_col = (_column(path, header, capacity_column.strip(), "capacity_column")
           if capacity_column is not None else None)
  if t_col == v_col:
    raise InputError("time_column and value_column: name two different columns")

  times = pd.Series([r[t_col].strip() for r in rows], dtype=object)
  values = np.array([r[v_col].strip() for r in rows], dtype=object)
  empty_value = values == ""
  empty_time = (times == "").to_numpy(bool)
  problems = []
  if (empty_time & ~empty_value).any():
    i = int(np.argmax(empty_time & ~empty_value))
    problems.append((lines[i], f"{path}: line {lines[i]}: empty timestamp in column "
                     f"{time_column!r}; expected a date and time"))
  keep = ~empty_value
  n_skipped = int(empty_value.sum())
  if not keep.any():
    _first_problem(problems)
    _fail(path, f"no readings: all {len(rows)} data rows have an empty {value_column!r}")
  times, values, lines_k = times[keep].reset_index(drop=True), values[keep], lines[keep]
  cap_strings = (np.array([r[c_col].strip() for r in rows], dtype=object)[keep]
                 if c_col is not None else None)

  # Timestamps: wall clock and offset parsed apart, so that offsets can be checked and repaired.
  parts = times.astype(str).str.extract(_OFFSET_RE)
  aware = parts["off"].notna().to_numpy(bool)
  wall_strings = pd.Series(np.where(aware, parts["wall"].fillna(""), times.astype(str)),
                           dtype=object).astype(str)
  wall = _parse_wall(wall_strings)
  bad_time = wall.isna().to_numpy(bool)
  if bad_time.any():
    i = int(np.argmax(bad_time))
    problems.append((lines_k[i], f"{path}: line {lines_k[i]}: timestamp {times.iloc[i][:40]!r} "
                     f"in column {time_column!r} is not a date and time between 1678 and 2261 "
                     "(expected e.g. 2015-08-14 17:00:11-07:00)"))
  offsets = _offset_minutes(parts["off"])
  bad_offset = aware & ~(np.abs(np.nan_to_num(offsets)) <= 18 * 60)
  if bad_offset.any():
    i = int(np.argmax(bad_offset))
    problems.append((lines_k[i], f"{path}: line {lines_k[i]}: timestamp {times.iloc[i][:40]!r} "
                     "has a UTC offset beyond +-18:00"))
  if aware.any() and not aware.all():
    minority = ~aware if aware.sum() >= (~aware).sum() else aware
    i = int(np.argmax(minority))
    j = int(np.argmax(~minority))
    kind = "has no UTC offset" if not aware[i] else "has a UTC offset"
    problems.append((lines_k[i], f"{path}: line {lines_k[i]}: timestamp {times.iloc[i][:40]!r} "
                     f"{kind} but line {lines_k[j]} ({times.iloc[j][:40]!r}) "
                     f"{'has one' if aware[j] else 'has none'}; expected all timestamps with "
                     "offsets or all without"))
  people, found = _parse_numbers(path, values, lines_k, value_column, "reading")
  problems += found
  row_capacity = None
  if cap_strings is not None:
    row_capacity, found = _parse_numbers(path, cap_strings, lines_k, capacity_column,
                                         "capacity", allow_zero=False)
    problems += found
  _first_problem(problems)

  limit = row_capacity if row_capacity is not None else capacity
  if limit is not None:
    above = people > limit
    if above.any():
      i = int(np.argmax(above))
      source = (f"the row's {capacity_column!r}" if row_capacity is not None
                else "the given capacity")
      cap_i = limit[i] if row_capacity is not None else limit
      _fail(path, f"line {lines_k[i]}: reading {people[i]:g} in column {value_column!r} is above "
            f"{source} {cap_i:g}; expected readings <= capacity")
    if row_capacity is not None:
      capacity = float(row_capacity.max())

  wall_ns = wall.to_numpy("datetime64[ns]").astype(np.int64)
  n_repaired = 0
  if aware.all():
    off = offsets.astype(np.int64)
    off, n_repaired = _repair_early_fall_back(wall_ns, off)
    utc_ns = wall_ns - off * _NS_PER_MINUTE
  elif timezone is not None:
    utc_ns = _localize(path, wall, lines_k, timezone)
  else:
    utc_ns = wall_ns
  if timezone is not None:
    local = (pd.DatetimeIndex(utc_ns.astype("datetime64[ns]")).tz_localize("UTC")
             .tz_convert(timezone).tz_localize(None).to_numpy().astype(np.int64))
    local_offset = (local - utc_ns) // _NS_PER_MINUTE
  elif aware.all():
    local_offset = off
  else:
    local_offset = np.zeros(len(utc_ns), np.int64)

  n_back = int((np.diff(utc_ns) < 0).sum())
  order = np.argsort(utc_ns, kind="stable")
  return Readings(
      path=str(path), time_utc=utc_ns[order].astype("datetime64[ns]"),
      value=people[order].astype(np.float64), capacity=capacity, timezone=timezone,
      local_offset_minutes=np.asarray(local_offset, np.int64)[order],
      sha256=hashlib.sha256(raw).hexdigest(), line=lines_k[order],
      format="campus_gym" if is_gym_format else "csv", time_column=time_column,
      value_column=value_column, n_skipped_empty=n_skipped, n_offsets_repaired=int(n_repaired),
      n_out_of_order=n_back)


# --------------------------------------------------------------------------------------------
# The built-in synthetic series


def _bump(hours: np.ndarray, centre: float, width: float) -> np.ndarray:
  return np.exp(-0.5 * ((hours - centre) / width) ** 2)


def synthetic_readings(seed: int = 0, days: int = 120, step_minutes: int = 10) -> Readings:
  """A built-in occupancy series (the default when no CSV is given), deterministic per seed.

  A made-up gym of capacity 120, starting Monday 2024-01-01, times in UTC (local = UTC):

  * opening hours 06:00-23:00 on weekdays and 08:00-20:00 at weekends, 0 people otherwise;
  * a daily rhythm (morning, lunch and a big evening peak on weekdays; one broad midday peak at
    weekends), a slow 8-week "term" cycle, a random factor per day and AR(1) noise, with counts
    drawn binomially from the capacity (so they never exceed it);
  * closures: about 3% of days (plus day 0, New Year's Day) closed all day, reading 0;
  * irregular timestamps: a reading every ``step_minutes`` with 0-90 s of jitter, 3% of readings
    dropped, a few bursts of readings 30 s apart (like the gym file);
  * outages (no readings at all): about one per 20 days, 2-30 hours long, and one of 3 days.

  120 days at 10 minutes are about 16,000 readings: ~11,000 training windows of 24 steps, which
  a 200-unit RNN trains on in about a minute on a CPU, and a rhythm worth learning.
  """
  for name, value in (("seed", seed), ("days", days), ("step_minutes", step_minutes)):
    if isinstance(value, bool) or int(value) != value:
      raise InputError(f"{name}: expected an integer, got {value!r}")
  if days < 1:
    raise InputError(f"days: expected an integer >= 1, got {days!r}")
  if step_minutes < 1 or step_minutes > 720:
    raise InputError(f"step_minutes: expected an integer from 1 to 720, got {step_minutes!r}")
  rng = np.random.default_rng(int(seed))
  capacity = 120
  step_ns = int(step_minutes) * _NS_PER_MINUTE
  n = int(days) * 1440 // int(step_minutes)
  start = np.datetime64("2024-01-01T00:00", "ns").astype(np.int64)
  nominal = start + np.arange(n, dtype=np.int64) * step_ns
  day = (nominal - start) // (1440 * _NS_PER_MINUTE)
  hours = ((nominal - start) % (1440 * _NS_PER_MINUTE)) / (60 * _NS_PER_MINUTE)
  weekend = (day % 7) >= 5

  weekday_rate = (0.12 + 0.25 * _bump(hours, 7.5, 1.0) + 0.22 * _bump(hours, 12.5, 0.8)
                  + 0.55 * _bump(hours, 18.0, 1.5))
  weekend_rate = 0.08 + 0.35 * _bump(hours, 12.0, 2.0) + 0.15 * _bump(hours, 16.5, 1.2)
  rate = np.where(weekend, weekend_rate, weekday_rate)
  open_hours = np.where(weekend, (hours >= 8) & (hours < 20), (hours >= 6) & (hours < 23))
  n_days = int(days)
  closed_days = rng.random(n_days) < 0.03
  closed_days[0] = True
  term = 0.8 + 0.25 * np.sin(2 * np.pi * np.arange(n_days) / 56.0)
  day_factor = np.exp(rng.normal(0.0, 0.12, n_days))
  ar = np.zeros(n)
  eps = rng.normal(0.0, 0.08, n)
  for t in range(1, n):  # data generation, not library math over time: a plain loop is clearest
    ar[t] = 0.9 * ar[t - 1] + eps[t]
  p = np.clip(rate * term[day] * day_factor[day] * np.exp(ar), 0.0, 0.98)
  p = np.where(open_hours & ~closed_days[day], p, 0.0)
  counts = rng.binomial(capacity, p).astype(np.float64)

  keep = rng.random(n) >= 0.03
  n_outages = max(1, n_days // 20)
  for _ in range(n_outages):
    begin = int(rng.integers(0, n))
    length = int(rng.integers(2, 31)) * 60 // int(step_minutes)
    keep[begin:begin + length] = False
  if n_days >= 10:
    begin = int(rng.integers(n // 3, 2 * n // 3))
    keep[begin:begin + 3 * 1440 // int(step_minutes)] = False
  jitter = rng.integers(0, 90 * 10**9, n)
  times = nominal + jitter
  # A few bursts of readings 30 s apart, as in the gym file, each with its own small count.
  extra_t, extra_v = [], []
  for _ in range(max(1, n_days // 40)):
    i = int(rng.integers(0, n))
    if keep[i]:
      m = int(rng.integers(5, 20))
      extra_t.append(times[i] + 30 * 10**9 * np.arange(1, m + 1))
      extra_v.append(rng.binomial(capacity, p[i], m).astype(np.float64))
  times = np.concatenate([times[keep], *extra_t])
  values = np.concatenate([counts[keep], *extra_v])
  order = np.argsort(times, kind="stable")
  r = len(order)
  return Readings(path="<synthetic>", time_utc=times[order].astype("datetime64[ns]"),
                  value=values[order], capacity=float(capacity), timezone=None,
                  local_offset_minutes=np.zeros(r, np.int64), sha256=None,
                  line=np.zeros(r, np.int64), format="synthetic", n_skipped_empty=0)


# --------------------------------------------------------------------------------------------
# The regular grid


@dataclasses.dataclass(frozen=True, eq=False)
class Grid:
  """Readings on a regular UTC grid of M bins of ``step_minutes``: bin i is [times[i], +step)."""
  times: np.ndarray         # [M] datetime64[ns], UTC start of each bin
  values: np.ndarray        # [M] float64 people: mean of the readings in the bin, interpolated
                            #     across runs of <= max_gap empty bins, NaN in longer gaps
  counts: np.ndarray        # [M] int64 readings in each bin
  interpolated: np.ndarray  # [M] bool: empty bin filled by linear interpolation
  local_times: np.ndarray   # [M] datetime64[ns], local wall-clock time of each bin's start
  step_minutes: int
  max_gap: int

  def __len__(self) -> int:
    return int(self.values.shape[0])

  @property
  def valid(self) -> np.ndarray:
    """[M] bool: the bin has a value (measured or interpolated)."""
    return ~np.isnan(self.values)

  def calendar(self) -> np.ndarray:
    """[M, 4] float64: sin, cos of local time of day; sin, cos of local time of week.

    The week phase is (day of week + fraction of day) / 7 with Monday 00:00 = 0, so both
    features are continuous across midnight.
    """
    return calendar_features(self.local_times)


def calendar_features(local_times: np.ndarray) -> np.ndarray:
  """[..., 4] sin/cos of the time of day and of the time of week of naive local datetimes."""
  ns = np.asarray(local_times, "datetime64[ns]").astype(np.int64)
  day_ns = 1440 * _NS_PER_MINUTE
  days = np.floor_divide(ns, day_ns)
  frac_day = (ns - days * day_ns) / day_ns
  weekday = (days + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
  frac_week = (weekday + frac_day) / 7.0
  angle_d, angle_w = 2 * np.pi * frac_day, 2 * np.pi * frac_week
  return np.stack([np.sin(angle_d), np.cos(angle_d), np.sin(angle_w), np.cos(angle_w)], -1)


def _check_int(name: str, value, low: int, high: int | None = None) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer, float)) or (
      isinstance(value, float) and not value.is_integer()):
    raise InputError(f"{name}: expected an integer >= {low}, got {value!r}")
  value = int(value)
  if value < low or (high is not None and value > high):
    bound = f">= {low}" if high is None else f"from {low} to {high}"
    raise InputError(f"{name}: expected an integer {bound}, got {value!r}")
  return value


def _check_step(step_minutes) -> int:
  step = _check_int("step_minutes", step_minutes, 1, 1440)
  if 1440 % step:
    raise InputError(f"step_minutes: expected a divisor of 1440 (a day has a whole number of "
                     f"steps, for the seasonal baselines), got {step_minutes!r}")
  return step


def to_grid(readings: Readings, step_minutes: int = 10, max_gap: int = 2) -> Grid:
  """Puts readings on a regular grid of ``step_minutes`` bins aligned to the UTC epoch.

  Each bin's value is the mean of the readings inside it (the gym's 30-second bursts become one
  value). Runs of at most ``max_gap`` empty bins between two filled ones are filled by linear
  interpolation between them; longer runs stay NaN (gaps). The grid spans the bin of the first
  reading to the bin of the last. Local time per bin: converted with ``readings.timezone`` when
  set, otherwise UTC plus the offset of the newest reading before the bin's end.
  """
  step = _check_step(step_minutes)
  max_gap = _check_int("max_gap", max_gap, 0)
  if len(readings) == 0:
    raise InputError(f"{readings.path}: no readings to put on a grid")
  step_ns = step * _NS_PER_MINUTE
  t = readings.time_utc.astype("datetime64[ns]").astype(np.int64)
  origin = (t[0] // step_ns) * step_ns
  bins = (t - origin) // step_ns
  m = int(bins[-1]) + 1
  counts = np.bincount(bins, minlength=m).astype(np.int64)
  sums = np.bincount(bins, weights=readings.value, minlength=m)
  filled = counts > 0
  values = np.full(m, np.nan)
  values[filled] = sums[filled] / counts[filled]
  idx = np.arange(m)
  prev = np.maximum.accumulate(np.where(filled, idx, -1))
  nxt = np.minimum.accumulate(np.where(filled, idx, m)[::-1])[::-1]
  gap_len = nxt - prev - 1
  fill = ~filled & (gap_len <= max_gap)
  if fill.any():
    values[fill] = np.interp(idx[fill], idx[filled], values[filled])
  times = origin + idx.astype(np.int64) * step_ns
  if readings.timezone is not None:
    local = (pd.DatetimeIndex(times.astype("datetime64[ns]")).tz_localize("UTC")
             .tz_convert(readings.timezone).tz_localize(None).to_numpy().astype(np.int64))
  else:
    newest = np.clip(np.searchsorted(t, times + step_ns, side="left") - 1, 0, len(t) - 1)
    local = times + readings.local_offset_minutes[newest] * _NS_PER_MINUTE
  return Grid(times=times.astype("datetime64[ns]"), values=values, counts=counts,
              interpolated=fill, local_times=local.astype("datetime64[ns]"),
              step_minutes=step, max_gap=max_gap)


# --------------------------------------------------------------------------------------------
# Windows


def _meta(help_text: str):
  return {"help": help_text}


@dataclasses.dataclass(frozen=True)
class WindowSpec:
  """How readings become windows and targets. Fields map one to one onto script flags."""
  window: int = dataclasses.field(default=24, metadata=_meta(
      "input steps per window T (24 x 10 min = 4 hours, the notes' x in R^24)"))
  horizons: tuple[int, ...] = dataclasses.field(default=(1, 3, 6), metadata=_meta(
      "steps ahead to predict, one sigmoid output each (1,3,6 = +10, +30, +60 min)"))
  features: tuple[str, ...] = dataclasses.field(default=("occupancy",), metadata=_meta(
      "inputs per step: occupancy (reading / capacity) and optionally calendar (sin/cos of "
      "local time of day and of week)"))
  task: str = dataclasses.field(default="horizons", metadata=_meta(
      "horizons: occupancy fraction at each horizon; levels: low/medium/high at level_horizon"))
  level_horizon: int | None = dataclasses.field(default=None, metadata=_meta(
      "for task levels: steps ahead (none = the last of horizons)"))
  splits: tuple[float, ...] = dataclasses.field(default=(0.7, 0.15, 0.15), metadata=_meta(
      "chronological train,val,test fractions of the grid"))
  step_minutes: int = dataclasses.field(default=10, metadata=_meta(
      "grid step in minutes (a divisor of 1440)"))
  max_gap: int = dataclasses.field(default=2, metadata=_meta(
      "longest run of empty bins that is interpolated; longer runs are gaps"))

  def __post_init__(self):
    set_ = lambda name, value: object.__setattr__(self, name, value)
    set_("window", _check_int("window", self.window, 1))
    horizons = self.horizons
    if isinstance(horizons, (int, np.integer)) and not isinstance(horizons, bool):
      horizons = (horizons,)
    if isinstance(horizons, str) or not isinstance(horizons, Sequence) or not horizons:
      raise InputError(f"horizons: expected one or more integers >= 1, got {self.horizons!r}")
    horizons = tuple(_check_int("horizons", h, 1) for h in horizons)
    if len(set(horizons)) != len(horizons):
      raise InputError(f"horizons: expected distinct steps, got {self.horizons!r}")
    set_("horizons", horizons)
    features = (self.features,) if isinstance(self.features, str) else tuple(self.features)
    unknown = [f for f in features if f not in FEATURES]
    if unknown or not features:
      raise InputError(f"features: unknown name {unknown[0]!r}; expected names from "
                       f"{', '.join(FEATURES)}" if unknown else
                       "features: expected at least 'occupancy'")
    if "occupancy" not in features:
      raise InputError(f"features: expected 'occupancy' among them (the notes' input), got "
                       f"{','.join(features)}")
    set_("features", tuple(f for f in FEATURES if f in features))
    if self.task not in TASKS:
      raise InputError(f"task: expected one of {', '.join(TASKS)}, got {self.task!r}")
    if self.level_horizon is not None:
      set_("level_horizon", _check_int("level_horizon", self.level_horizon, 1))
    splits = self.splits
    if isinstance(splits, str) or not isinstance(splits, Sequence) or len(splits) != 3:
      raise InputError(f"splits: expected three fractions train,val,test, got {splits!r}")
    try:
      splits = tuple(float(s) for s in splits)
    except (TypeError, ValueError):
      raise InputError(f"splits: expected three numbers, got {self.splits!r}") from None
    if not all(math.isfinite(s) and s > 0 for s in splits) or abs(sum(splits) - 1) > 1e-6:
      raise InputError(f"splits: expected three fractions > 0 that sum to 1, got {self.splits!r}")
    set_("splits", splits)
    set_("step_minutes", _check_step(self.step_minutes))
    set_("max_gap", _check_int("max_gap", self.max_gap, 0))

  @property
  def target_horizons(self) -> tuple[int, ...]:
    """The horizons of the targets: ``horizons``, or ``(level_horizon,)`` for task levels."""
    if self.task == "levels":
      return (self.level_horizon if self.level_horizon is not None else self.horizons[-1],)
    return self.horizons

  @property
  def input_size(self) -> int:
    """D: 1, plus 4 with calendar features."""
    return 1 + (N_CALENDAR if "calendar" in self.features else 0)

  @property
  def output_size(self) -> int:
    """K: one per horizon, or 3 levels."""
    return len(LEVELS) if self.task == "levels" else len(self.horizons)

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True, eq=False)
class Split:
  """The windows of one split. N windows, T input steps, D inputs, K outputs, H target horizons."""
  name: str
  xs: np.ndarray             # [N, T, D] float32 model inputs
  ys: np.ndarray             # [N, K] float32 targets in [0, 1]
  window_people: np.ndarray  # [N, T] float64 the window's readings in people
  target_people: np.ndarray  # [N, H] float64 the readings at the target horizons, in people
  naive_day: np.ndarray      # [N, H] float64 the reading one day before each target (NaN: none)
  naive_week: np.ndarray     # [N, H] float64 the reading one week before each target (NaN: none)
  end_index: np.ndarray      # [N] int64 grid bin of the window's last input step
  end_times: np.ndarray      # [N] datetime64[ns] UTC start of that bin (the forecast origin)
  target_times: np.ndarray   # [N, H] datetime64[ns] UTC start of each target bin
  calendar: np.ndarray       # [N, 4] float64 calendar features at the window's last step
  levels: np.ndarray | None  # [N] int64 level 0/1/2 of the target (task levels), else None
  bounds: tuple[int, int]    # [start, stop) grid bins of the split

  def __len__(self) -> int:
    return int(self.xs.shape[0])


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
  """Windows for training and evaluation, and everything fitted on the training split."""
  spec: WindowSpec
  grid: Grid
  capacity: float                    # people; inputs and targets are divided by it
  capacity_fitted: bool              # True: max of the training split's readings
  tertiles: tuple[float, float] | None  # people: level boundaries (task levels), from training
  horizons: tuple[int, ...]          # the target horizons H (spec.target_horizons)
  train: Split
  val: Split
  test: Split
  path: str
  sha256: str | None

  def __getitem__(self, name: str) -> Split:
    if name not in SPLITS:
      raise KeyError(f"split: expected one of {SPLITS}, got {name!r}")
    return getattr(self, name)

  def to_people(self, fractions) -> np.ndarray:
    """Occupancy fractions (e.g. the model's sigmoid outputs [N, H]) to people."""
    return np.asarray(fractions, np.float64) * self.capacity

  def level_of(self, people) -> np.ndarray:
    """Level 0 (low: <= t1), 1 (medium: <= t2) or 2 (high) of readings in people."""
    if self.tertiles is None:
      raise ValueError("level_of: this dataset has no tertiles (task horizons)")
    return levels_of(people, self.tertiles)

  def summary(self) -> dict:
    """JSON-ready facts about the data (for config.json and the README)."""
    grid = self.grid
    step = np.timedelta64(grid.step_minutes, "m")
    out = {
        "path": self.path, "sha256": self.sha256, "capacity": self.capacity,
        "capacity_fitted": self.capacity_fitted,
        "tertiles": list(self.tertiles) if self.tertiles is not None else None,
        "horizons": list(self.horizons), "grid_bins": len(grid),
        "grid_valid_bins": int(grid.valid.sum()),
        "grid_interpolated_bins": int(grid.interpolated.sum()),
        "grid_start_utc": str(grid.times[0]), "grid_end_utc": str(grid.times[-1] + step),
        "splits": {}}
    for name in SPLITS:
      s = self[name]
      lo, hi = s.bounds
      out["splits"][name] = {"n_windows": len(s), "start_utc": str(grid.times[lo]),
                             "end_utc": str(grid.times[hi - 1] + step)}
    return out


def levels_of(people, tertiles: tuple[float, float]) -> np.ndarray:
  """int64 level: 0 low (<= tertiles[0]), 1 medium (<= tertiles[1]), 2 high."""
  people = np.asarray(people, np.float64)
  return (people > tertiles[0]).astype(np.int64) + (people > tertiles[1]).astype(np.int64)


def _window_ends(valid: np.ndarray, lo: int, hi: int, window: int, ahead: int) -> np.ndarray:
  """Grid bins e in [lo, hi) such that bins e-window+1 .. e+ahead all lie in [lo, hi) and are
  valid (no gap inside a window or between it and its furthest target)."""
  bad = np.concatenate([[0], np.cumsum(~valid)])
  ends = np.arange(lo + window - 1, hi - ahead, dtype=np.int64)
  if ends.size == 0:
    return ends
  n_bad = bad[ends + ahead + 1] - bad[ends - window + 1]
  return ends[n_bad == 0]


def _longest_run(valid: np.ndarray) -> int:
  if not valid.any():
    return 0
  edges = np.diff(np.concatenate([[0], valid.astype(np.int8), [0]]))
  return int((np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)).max())


def _inputs(grid: Grid, calendar: np.ndarray | None, ends: np.ndarray, window: int,
            capacity: float) -> tuple[np.ndarray, np.ndarray]:
  """xs [N, T, D] float32 and the windows' readings [N, T] float64."""
  idx = ends[:, None] + np.arange(-window + 1, 1)[None, :]
  people = grid.values[idx]
  parts = [(people / capacity)[..., None]]
  if calendar is not None:
    parts.append(calendar[idx])
  return np.concatenate(parts, -1).astype(np.float32), people


def make_dataset(readings: Readings, spec: WindowSpec | None = None) -> Dataset:
  """Windows for every split, with targets and what the baselines need.

  Splits are chronological fractions of the grid's bins (``spec.splits``, 70/15/15 by default).
  A window (its T inputs, and every bin up to its furthest target) lies inside one split and
  contains no gap bin. Inputs per step: reading / capacity, and with calendar features also
  ``Grid.calendar()`` (D = 5).

  Fitted on the training split only:
  * capacity, when ``readings.capacity`` is None (the gym file): the maximum training reading
    (145 on the gym file). The sigmoid outputs cannot exceed 1, so the capacity must be at
    least every training target; the maximum is the smallest such value, while a high quantile
    would clip the busiest training days. A later reading above it gives an input above 1 and
    a target clipped to 1 (``ys``); ``target_people`` keep the real value, so errors in people
    stay honest.
  * tertiles (task levels): the 1/3 and 2/3 quantiles of the training windows' targets at the
    level horizon; low is ``<= t1``, medium ``<= t2``, high above (ties at 0 go to low).

  Targets: task ``horizons``: the occupancy fraction at each horizon, clipped to [0, 1];
  task ``levels``: one-hot of the level at ``spec.target_horizons[0]`` (K = 3).
  Seasonal naive values are the grid's value one day / one week before each target, NaN when
  that bin is a gap, lies before the grid, or is not yet known at the window's end.

  InputError when there are too few gap-free bins for one window, or when a split has no
  window; it says how many consecutive bins a window needs and how many windows each split has.
  """
  spec = spec if spec is not None else WindowSpec()
  grid = to_grid(readings, spec.step_minutes, spec.max_gap)
  m = len(grid)
  horizons = np.asarray(spec.target_horizons, np.int64)
  ahead = int(horizons.max())
  window = spec.window
  need = window + ahead
  valid = grid.valid
  b1 = int(round(m * spec.splits[0]))
  b2 = int(round(m * (spec.splits[0] + spec.splits[1])))
  bounds = {"train": (0, b1), "val": (b1, b2), "test": (b2, m)}
  ends = {name: _window_ends(valid, lo, hi, window, ahead) for name, (lo, hi) in bounds.items()}
  counts = ", ".join(f"{name} {len(e)}" for name, e in ends.items())
  what = (f"a window needs {need} consecutive {spec.step_minutes}-minute bins without a gap "
          f"(window {window} + horizon {ahead})")
  if not any(len(e) for e in ends.values()):
    run = _longest_run(valid)
    total = len(_window_ends(valid, 0, m, window, ahead))
    raise InputError(f"{readings.path}: too few readings: {what}; the data gives {m} bins, the "
                     f"longest run without a gap is {run} bins, {total} usable windows in all "
                     f"and none within a split ({counts})")
  for name in SPLITS:
    if not len(ends[name]):
      lo, hi = bounds[name]
      run = _longest_run(valid[lo:hi])
      raise InputError(f"{readings.path}: split {name!r} (bins {lo}..{hi} of {m}, splits "
                       f"{','.join(f'{s:g}' for s in spec.splits)}) has no usable window: {what}, "
                       f"its longest run without a gap is {run} bins; usable windows: {counts}")

  capacity_fitted = readings.capacity is None
  if capacity_fitted:
    t_end = grid.times[0] + np.timedelta64(b1 * spec.step_minutes, "m")
    train_values = readings.value[readings.time_utc < t_end]
    capacity = float(train_values.max()) if train_values.size else 0.0
    if not capacity > 0:
      raise InputError(f"{readings.path}: cannot fit the capacity: every reading in the training "
                       "split is 0; give a capacity")
  else:
    capacity = float(readings.capacity)

  calendar = grid.calendar()
  use_calendar = "calendar" in spec.features
  day_bins = 1440 // spec.step_minutes
  week_bins = 7 * day_bins

  def seasonal(e: np.ndarray, lag: int) -> np.ndarray:
    src = e[:, None] + horizons[None, :] - lag
    known = (src >= 0) & (src <= e[:, None])
    out = np.full(src.shape, np.nan)
    out[known] = grid.values[src[known]]
    return out

  tertiles = None
  if spec.task == "levels":
    train_targets = grid.values[ends["train"] + horizons[0]]
    t1, t2 = np.quantile(train_targets, [1 / 3, 2 / 3])
    tertiles = (float(t1), float(t2))

  splits = {}
  for name in SPLITS:
    e = ends[name]
    xs, window_people = _inputs(grid, calendar if use_calendar else None, e, window, capacity)
    target_idx = e[:, None] + horizons[None, :]
    target_people = grid.values[target_idx]
    if spec.task == "levels":
      levels = levels_of(target_people[:, 0], tertiles)
      ys = np.eye(len(LEVELS), dtype=np.float32)[levels]
    else:
      levels = None
      ys = np.clip(target_people / capacity, 0.0, 1.0).astype(np.float32)
    splits[name] = Split(
        name=name, xs=xs, ys=ys, window_people=window_people, target_people=target_people,
        naive_day=seasonal(e, day_bins), naive_week=seasonal(e, week_bins), end_index=e,
        end_times=grid.times[e], target_times=grid.times[target_idx], calendar=calendar[e],
        levels=levels, bounds=bounds[name])
  return Dataset(spec=spec, grid=grid, capacity=capacity, capacity_fitted=capacity_fitted,
                 tertiles=tertiles, horizons=tuple(int(h) for h in horizons), path=readings.path,
                 sha256=readings.sha256, **splits)


class NewestWindow(NamedTuple):
  """The newest complete window of a file, ready for the model."""
  xs: np.ndarray            # [1, T, D] float32
  end_time: np.datetime64   # UTC start of the window's last bin; horizon h is end_time + h*step


def newest_window(readings: Readings, spec: WindowSpec, capacity: float) -> NewestWindow:
  """The newest T consecutive gap-free grid bins of ``readings``, as model inputs.

  ``capacity`` is the trained run's (fitted or given) capacity. InputError when no T
  consecutive bins without a gap exist.
  """
  capacity = _check_capacity_value(capacity)
  grid = to_grid(readings, spec.step_minutes, spec.max_gap)
  ends = _window_ends(grid.valid, 0, len(grid), spec.window, 0)
  if not len(ends):
    raise InputError(f"{readings.path}: no complete window: a window needs {spec.window} "
                     f"consecutive {spec.step_minutes}-minute bins without a gap; the longest "
                     f"run is {_longest_run(grid.valid)} bins")
  e = ends[-1:]
  calendar = grid.calendar() if "calendar" in spec.features else None
  xs, _ = _inputs(grid, calendar, e, spec.window, capacity)
  return NewestWindow(xs=xs, end_time=grid.times[e[0]])

"""Timestamps for ``read_csv``: wall clock and UTC offset apart (``parse_timestamps``), to UTC."""
from __future__ import annotations

import warnings
import zoneinfo
from typing import NamedTuple

import numpy as np
import pandas as pd
from pandas.tseries.api import guess_datetime_format

from rnn_jax.common.errors import InputError
from rnn_jax.common.checks import fail

NS_PER_MINUTE = 60 * 10**9
# A trailing UTC offset: ``Z``, ``UTC``, ``GMT``, ``+HH``, ``+HHMM`` or ``+HH:MM`` after a time of
# day (so that the ``-14`` of a date such as ``2015-08-14`` is never taken for an offset).
_OFFSET_RE = (r"^(?P<wall>.*?\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?)\s*"
              r"(?P<off>[Zz]|UTC|GMT|(?P<sign>[+-])(?P<hh>\d{2})(?::?(?P<mm>\d{2}))?)$")


def check_timezone(timezone: str | None) -> str | None:
  """The IANA name, checked with zoneinfo; InputError naming the argument otherwise."""
  if timezone is None:
    return None
  if not isinstance(timezone, str) or not timezone.strip():
    raise InputError(f"--timezone: expected an IANA time zone name such as Europe/Berlin, "
                     f"got {timezone!r}")
  try:
    zoneinfo.ZoneInfo(timezone.strip())
  except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
    raise InputError(f"--timezone: {timezone!r} is not an IANA time zone name (expected e.g. "
                     "Europe/Berlin or America/Los_Angeles)") from None
  return timezone.strip()


def first_where(mask: np.ndarray, lines: np.ndarray, message) -> list[tuple[int, str]]:
  if not mask.any():
    return []
  i = int(np.argmax(mask))
  return [(lines[i], message(i))]


class Timestamps(NamedTuple):
  """A timestamp column parsed apart into wall clock and UTC offset, R readings in file order."""
  wall: pd.Series      # [R] datetime64[ns] naive wall-clock time; NaT where unreadable
  offsets: np.ndarray  # [R] float64 UTC offset in minutes; NaN where the timestamp has none
  aware: np.ndarray    # [R] bool: the timestamp has a UTC offset


def parse_timestamps(path, times: pd.Series, lines: np.ndarray,
                     column: str) -> tuple[Timestamps, list[tuple[int, str]]]:
  """Non-empty timestamp strings [R] parsed, wall clock and offset apart (so ``to_utc`` can
  repair offsets), and as ``(line, message)`` the first unreadable one, offset beyond +-18:00,
  and mix of timestamps with and without offsets."""
  parts = times.astype(str).str.extract(_OFFSET_RE)
  aware = parts["off"].notna().to_numpy(bool)
  wall_strings = pd.Series(np.where(aware, parts["wall"].fillna(""), times.astype(str)),
                           dtype=object).astype(str)
  hours, minutes = (pd.to_numeric(parts[g]).to_numpy(np.float64) for g in ("hh", "mm"))
  offsets = (np.where(parts["sign"] == "-", -1.0, 1.0)
             * (np.nan_to_num(hours) * 60 + np.nan_to_num(minutes)))   # Z, UTC, GMT: 0
  stamps = Timestamps(wall=_parse_wall(wall_strings), offsets=np.where(aware, offsets, np.nan),
                      aware=aware)

  def at(i: int) -> str:
    return f"{path}: line {lines[i]}: timestamp {times.iloc[i][:40]!r}"

  problems = (first_where(stamps.wall.isna().to_numpy(bool), lines, lambda i: (
      f"{at(i)} in column {column!r} is not a date and time between 1678 and 2261 (expected "
      "e.g. 2015-08-14 17:00:11-07:00)"))
      + first_where(aware & ~(np.abs(np.nan_to_num(stamps.offsets)) <= 18 * 60), lines,
                    lambda i: f"{at(i)} has a UTC offset beyond +-18:00"))
  if aware.any() and not aware.all():
    minority = ~aware if aware.sum() >= (~aware).sum() else aware
    i, j = int(np.argmax(minority)), int(np.argmax(~minority))
    problems.append((lines[i], f"{at(i)} {'has a UTC offset' if aware[i] else 'has no UTC offset'} "
                     f"but line {lines[j]} ({times.iloc[j][:40]!r}) "
                     f"{'has one' if aware[j] else 'has none'}; expected all timestamps with "
                     "offsets or all without"))
  return stamps, problems


def _parse_wall(strings: pd.Series) -> pd.Series:
  """Naive wall-clock datetimes (datetime64[ns]); NaT where unparseable or out of range. ISO
  8601 first; the rest share one format that pandas guesses from the first of them, month first
  and day first (``01.03.2021``): of the guesses that read the most rows, the one whose times
  run most nearly in file order (fewest backwards steps, then shortest span) wins. Mixed formats
  could silently swap day and month."""
  def parse(texts: pd.Series, fmt: str) -> pd.Series | None:
    try:
      parsed = pd.to_datetime(texts, format=fmt, errors="coerce")
    except (ValueError, TypeError, OverflowError):
      return None
    if not pd.api.types.is_datetime64_dtype(parsed.dtype):   # False for tz-aware dtypes too
      return None
    years = parsed.dt.year
    return parsed.where((years > 1677) & (years < 2262)).astype("datetime64[ns]")

  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    wall = parse(strings, "ISO8601")
    if wall is None:
      wall = pd.Series(pd.NaT, index=strings.index, dtype="datetime64[ns]")
    retry = wall.isna() & (strings.str.len() > 0)
    if retry.any():
      texts = strings[retry]
      formats = {guess_datetime_format(texts.iloc[0], dayfirst=d) for d in (False, True)}
      best, best_key = None, None
      for fmt in sorted(formats - {None}):
        parsed = parse(texts, fmt)
        if parsed is None:
          continue
        t = parsed.dropna().to_numpy().astype(np.int64)
        key = (-len(t), int((np.diff(t) < 0).sum()), int(t.max() - t.min()) if len(t) else 0,
               fmt.find("%d") > fmt.find("%m"))
        if best_key is None or key < best_key:
          best, best_key = parsed, key
      if best is not None:
        wall[retry] = best
  return wall


def _repair_early_fall_back(wall_ns: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, int]:
  """Repaired offsets [R] and how many changed, for ``wall_ns`` [R] int64 wall-clock time and
  ``offsets`` [R] int64 minutes in file order: readings labelled with the new offset too early
  on a fall-back night get the old one back. A correct clock changes the label where the wall
  clock steps back. The gym file changes it at the START of the repeated hour: on 2016-11-06
  from -07:00 to -08:00 at 01:01:48, though the clock is turned back only after 01:51:52 (the
  next reading says 01:01:52). At face value the six readings 01:01:48..01:51:52 land an hour
  late in UTC: a doubled 09:00 UTC hour, an empty 08:00 one and a -50 minute step back (the
  file's only one, row 51178 / line 51180). The rule asks for evidence: after a change to a
  smaller offset (by ``delta`` minutes) where the wall clock did not step back, if it steps back
  later, within ``delta`` of wall time and with no further label change, the readings in
  between get the old offset back (these 6). Else labels stay: on 2015-11-01 the label switches
  at 01:00:13 too, but the next reading comes 4 h 20 min later, so nothing says which pass
  through the repeated hour it belongs to."""
  offsets = offsets.copy()
  changed = 0
  for i in np.flatnonzero(offsets[1:] < offsets[:-1]) + 1:
    if wall_ns[i] < wall_ns[i - 1]:
      continue  # the clock was turned back together with the label: consistent
    limit = wall_ns[i] + int(offsets[i - 1] - offsets[i]) * NS_PER_MINUTE
    k = i + 1
    while k < len(offsets) and offsets[k] == offsets[i] and wall_ns[k - 1] < limit:
      if wall_ns[k] < wall_ns[k - 1]:
        offsets[i:k] = offsets[i - 1]
        changed += k - i
        break
      k += 1
  return offsets, changed


def _localize(path, wall: pd.Series, lines: np.ndarray, timezone: str) -> np.ndarray:
  """UTC ns int64 of naive wall-clock times in ``timezone``; InputError for a skipped one. A
  repeated hour is read as summer time until the wall clock steps back in it, then as winter."""
  index = pd.DatetimeIndex(wall.to_numpy("datetime64[ns]"))
  n = len(index)
  first = index.tz_localize(timezone, ambiguous=np.ones(n, bool), nonexistent="NaT")
  second = index.tz_localize(timezone, ambiguous=np.zeros(n, bool), nonexistent="NaT")
  missing = np.asarray(first.isna())
  if missing.any():
    i = int(np.argmax(missing))
    fail(path, f"line {lines[i]}: local time {wall.iloc[i]} does not exist in {timezone} (the "
          "clocks skip it when summer time starts); expected a time that exists there")
  a = first.tz_convert("UTC").tz_localize(None).to_numpy().astype(np.int64)
  b = second.tz_convert("UTC").tz_localize(None).to_numpy().astype(np.int64)
  ambiguous = a != b
  w = index.to_numpy().astype(np.int64)
  use_second = np.zeros(n, bool)
  for j in range(1, n):
    use_second[j] = ambiguous[j] and (use_second[j - 1] or (ambiguous[j - 1] and w[j] < w[j - 1]))
  return np.where(use_second, b, a)


def local_wall_ns(utc_ns: np.ndarray, timezone: str) -> np.ndarray:
  """int64 ns of the naive local wall-clock time in ``timezone`` of UTC times (int64 ns)."""
  return (pd.DatetimeIndex(utc_ns.astype("datetime64[ns]")).tz_localize("UTC")
          .tz_convert(timezone).tz_localize(None).to_numpy().astype(np.int64))


def to_utc(path, stamps: Timestamps, lines: np.ndarray,
           timezone: str | None) -> tuple[np.ndarray, np.ndarray, int]:
  """UTC ns [R] int64, local offset minutes [R] int64 (local = UTC + offset) and the number of
  repaired offsets, of timestamps that ``parse_timestamps`` passed. With offsets: UTC after
  ``_repair_early_fall_back``; without: local time in ``timezone`` (``_localize``), else UTC.
  The local offset comes from ``timezone``, else the (repaired) offsets, else 0."""
  wall_ns = stamps.wall.to_numpy("datetime64[ns]").astype(np.int64)
  local_offset = np.zeros(len(wall_ns), np.int64)
  n_repaired = 0
  if stamps.aware.all():
    local_offset, n_repaired = _repair_early_fall_back(wall_ns, stamps.offsets.astype(np.int64))
    utc_ns = wall_ns - local_offset * NS_PER_MINUTE
  elif timezone is not None:
    utc_ns = _localize(path, stamps.wall, lines, timezone)
  else:
    utc_ns = wall_ns
  if timezone is not None:
    local_offset = (local_wall_ns(utc_ns, timezone) - utc_ns) // NS_PER_MINUTE
  return utc_ns, np.asarray(local_offset, np.int64), n_repaired

"""The regular grid: readings binned on a UTC grid, short gaps interpolated, local calendar."""
from __future__ import annotations

import dataclasses

import numpy as np

from rnn_jax.common.errors import InputError
from rnn_jax.common.checks import check_int, check_step
from rnn_jax.data.readings import Readings
from rnn_jax.data.timestamps import NS_PER_MINUTE, local_wall_ns

N_CALENDAR = 4  # sin, cos of time of day; sin, cos of time of week


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
    return ~np.isnan(self.values)

  def calendar(self) -> np.ndarray:
      return calendar_features(self.local_times)


def calendar_features(local_times: np.ndarray) -> np.ndarray:
  """[..., 4] float64 of naive local datetimes: sin, cos of the time of day and of the time of
  week, (day of week + fraction of day) / 7 with Monday 00:00 = 0 (continuous across midnight)."""
  ns = np.asarray(local_times, "datetime64[ns]").astype(np.int64)
  day_ns = 1440 * NS_PER_MINUTE
  days = np.floor_divide(ns, day_ns)
  frac_day = (ns - days * day_ns) / day_ns
  weekday = (days + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
  angle_d, angle_w = 2 * np.pi * frac_day, 2 * np.pi * ((weekday + frac_day) / 7.0)
  return np.stack([np.sin(angle_d), np.cos(angle_d), np.sin(angle_w), np.cos(angle_w)], -1)


def to_grid(readings: Readings, step_minutes: int = 10, max_gap: int = 2) -> Grid:
  """Bins on a ``step_minutes`` grid aligned to the UTC epoch, first reading's bin to the last's.

  A bin's value is the mean of its readings: the gym file has one burst of 103 readings 30-33 s
  apart on 2015-08-25 17:10:40..18:02:46 local time (up to 20 in one 10-minute bin), and 58 other
  steps under a minute (isolated pairs, 56 of them between 23:00 and 02:00 local). Runs of at
  most ``max_gap`` empty bins between filled ones are linearly interpolated; longer stay NaN.
  Local time (calendar features): the UTC time in ``readings.timezone`` when given, else UTC
  plus the (repaired) offset of the newest reading before the bin's end; for the gym file,
  Pacific time except within the hour after a transition that has no reading."""
  step = check_step(step_minutes)
  max_gap = check_int("max_gap", max_gap, 0)
  if len(readings) == 0:
    raise InputError(f"{readings.path}: no readings to put on a grid")
  step_ns = step * NS_PER_MINUTE
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
  fill = ~filled & (nxt - prev - 1 <= max_gap)
  if fill.any():
    values[fill] = np.interp(idx[fill], idx[filled], values[filled])
  times = origin + idx.astype(np.int64) * step_ns
  if readings.timezone is not None:
    local = local_wall_ns(times, readings.timezone)
  else:
    newest = np.clip(np.searchsorted(t, times + step_ns, side="left") - 1, 0, len(t) - 1)
    local = times + readings.local_offset_minutes[newest] * NS_PER_MINUTE
  return Grid(times=times.astype("datetime64[ns]"), values=values, counts=counts,
              interpolated=fill, local_times=local.astype("datetime64[ns]"),
              step_minutes=step, max_gap=max_gap)

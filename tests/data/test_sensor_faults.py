"""rnn_jax.data.faults and how read_csv and make_dataset use it: impossible readings and frozen
stretches masked as gaps (or refused with ``strict``), and the robust fitted capacity."""
from __future__ import annotations

import numpy as np
import pytest

from rnn_jax import data
from rnn_jax.common.errors import InputError
from rnn_jax.data import faults, windows
from data_helpers import GENERIC, write

STEP = 10   # minutes


def daily_values(days: int) -> np.ndarray:
  """A reading every 10 minutes: by day (08:00-20:00) it changes every step, at night it holds
  3 (a quiet night, not a fault)."""
  i = np.arange(days * 144)
  hour = (i % 144) / 6
  return np.where((hour >= 8) & (hour < 20), 20 + (i % 7), 3).astype(float)


def csv_of(values, start="2024-03-04T00:00", step=STEP, times=None) -> str:
  t0 = np.datetime64(start, "m")
  times = times if times is not None else [t0 + np.timedelta64(step * k, "m")
                                           for k in range(len(values))]
  return "time,people\n" + "".join(f"{t},{v:g}\n" for t, v in zip(times, values))


def day_slice(day: int, hour_from: float, hour_to: float) -> slice:
  return slice(day * 144 + int(hour_from * 6), day * 144 + int(hour_to * 6))


# ------------------------------------------------------------------------- impossible readings

def test_negative_and_above_capacity_readings_are_masked_not_clipped(tmp_path):
  values = daily_values(3)
  values[100], values[200], values[201] = -43, 101, 250
  r = data.read_csv(write(tmp_path, csv_of(values)), **GENERIC)
  assert len(r) == len(values) - 3
  assert (r.n_masked_negative, r.n_masked_above_capacity, r.n_masked_frozen) == (1, 2, 0)
  assert r.masked()["negative"] == {"readings": 1, "hours": round(STEP / 60, 2)}
  assert r.masked()["above_capacity"]["readings"] == 2
  assert r.value.min() >= 0 and r.value.max() <= 100          # dropped, never clipped to 0 / 100
  assert 102 not in r.line and 202 not in r.line and 203 not in r.line   # line = index + 2
  assert "negative 1" in r.masked_text() and "above capacity 2" in r.masked_text()
  grid = data.to_grid(r, STEP, max_gap=1)                     # the 2-bin hole is a gap now
  bins = (np.asarray([200, 201]) * STEP * 60 * 10**9
          + np.datetime64("2024-03-04T00:00", "ns").astype(np.int64))
  idx = np.searchsorted(grid.times.astype(np.int64), bins)
  assert np.isnan(grid.values[idx]).all() and grid.interpolated[100]


def test_row_capacity_masks_readings_above_their_own_row(tmp_path):
  content = ("time,people,cap\n" + "".join(
      f"2024-03-04T{h:02d}:00,{v},{c}\n" for h, v, c in ((0, 5, 10), (1, 11, 10), (2, 11, 20))))
  r = data.read_csv(write(tmp_path, content), time_column="time", value_column="people",
                    capacity_column="cap")
  np.testing.assert_array_equal(r.value, [5, 11])
  assert r.n_masked_above_capacity == 1 and r.capacity == 20


def test_without_a_capacity_nothing_is_above_it(tmp_path):
  values = daily_values(2)
  values[50] = 5000
  r = data.read_csv(write(tmp_path, csv_of(values)), time_column="time", value_column="people")
  assert r.n_masked == 0 and r.value.max() == 5000


# ------------------------------------------------------------------------- frozen stretches

def test_active_hours_are_counted_by_rate_not_by_share_of_steps():
  """5-minute steps by day, 15-minute steps at night, both changing every other step: per step
  the shares are equal, per hour the day changes three times as often."""
  day = np.arange(8 * 60, 20 * 60, 5)
  night = np.r_[np.arange(0, 8 * 60, 15), np.arange(20 * 60, 24 * 60, 15)]
  minutes = np.sort(np.r_[day, night])
  t = np.concatenate([minutes + 1440 * d for d in range(4)]).astype(np.int64) * 60 * 10**9
  v = (np.arange(len(t)) // 2).astype(float)
  rates = faults.change_rates(t, np.zeros(len(t), np.int64), v)
  active = faults.active_hours(rates)
  assert active[8:20].all() and not active[:8].any() and not active[20:].any()


def test_frozen_stretch_is_masked_after_its_first_reading(tmp_path):
  values = daily_values(8)
  frozen = slice(day_slice(3, 12, 12).start, day_slice(5, 10, 10).start)   # 12:00 .. 09:50
  values[frozen] = 37
  r = data.read_csv(write(tmp_path, csv_of(values)), **GENERIC)
  n = frozen.stop - frozen.start
  assert r.n_masked_frozen == n - 1
  assert r.masked()["frozen"]["hours"] == pytest.approx((n - 1) * STEP / 60, abs=0.005)
  assert r.active_hours == tuple(range(8, 20))
  lines = set(r.line)
  assert frozen.start + 2 in lines                                   # its first reading stays
  assert not lines & set(range(frozen.start + 3, frozen.stop + 2))   # the rest is gone
  assert r.max_flat_hours == data.DEFAULT_MAX_FLAT_HOURS


def test_frozen_stretch_strict_names_its_lines_and_length(tmp_path):
  values = daily_values(8)
  values[day_slice(3, 12, 12).start:day_slice(5, 10, 10).start] = 37
  start = day_slice(3, 12, 12).start
  with pytest.raises(InputError) as info:
    data.read_csv(write(tmp_path, csv_of(values)), **GENERIC, strict=True)
  message = str(info.value)
  assert f"lines {start + 2}..{start + 46 * 6 + 1}: reading 37 in column 'people'" in message
  # 12:00 day 3 .. 09:50 day 5: 8 + 12 + 1 5/6 hours within 08:00-20:00
  assert "unchanged for 45.8 hours (276 readings), 21.8 of them" in message
  assert "--max-flat-hours 12" in message and "without --strict" in message
  assert "\n" not in message


@pytest.mark.parametrize("what,fill,stretch", [
    ("a quiet night (not active hours)", 3, (2, 20, 24 + 8)),
    ("a place closed for days (0 is a real state)", 0, (2, 6, 24 * 3 + 6)),
    ("full on a busy afternoon (6 h)", 100, (3, 11, 17)),
])
def test_legitimate_flat_stretches_survive(tmp_path, what, fill, stretch):
  values = daily_values(8)
  day, h0, h1 = stretch
  values[day * 144 + h0 * 6:day * 144 + h1 * 6] = fill
  r = data.read_csv(write(tmp_path, csv_of(values)), **GENERIC)
  assert r.n_masked == 0, what


def test_an_outage_between_equal_readings_is_not_a_frozen_stretch(tmp_path):
  """The file has no readings for 3 days (a gap for the grid); the value before and after is
  the same, which is no evidence of a frozen sensor. (100 days, so that the outage's 72 hours
  do not drown the file's hours at 12:00 and make that hour look quiet.)"""
  values = daily_values(100)
  start = np.datetime64("2024-03-04T00:00", "m")
  times = [start + np.timedelta64(STEP * k, "m") for k in range(len(values))]
  cut = day_slice(3, 12, 12).start
  keep = np.r_[np.arange(cut + 1), np.arange(cut + 3 * 144, len(values))]
  values[cut + 3 * 144] = values[cut]
  r = data.read_csv(write(tmp_path, csv_of(values[keep], times=[times[k] for k in keep])),
                    **GENERIC)
  assert r.n_masked == 0


@pytest.mark.parametrize("setting", [0, 0.0, None])
def test_max_flat_hours_zero_or_none_is_off(tmp_path, setting):
  values = daily_values(8)
  values[day_slice(3, 12, 12).start:day_slice(5, 10, 10).start] = 37
  r = data.read_csv(write(tmp_path, csv_of(values)), **GENERIC, max_flat_hours=setting)
  assert r.n_masked == 0 and r.max_flat_hours is None and r.active_hours == ()


def test_max_flat_hours_is_counted_in_active_hours_only(tmp_path):
  """18 h of wall clock from 14:00 to 08:00 hold 6 active hours: kept at 6, masked at 5.9."""
  values = daily_values(5)
  values[day_slice(2, 14, 14).start:day_slice(3, 8, 8).start + 1] = 37
  kept = data.read_csv(write(tmp_path, csv_of(values)), **GENERIC, max_flat_hours=6)
  masked = data.read_csv(write(tmp_path, csv_of(values)), **GENERIC, max_flat_hours=5.9)
  assert kept.n_masked_frozen == 0 and masked.n_masked_frozen == 18 * 6


def test_dataset_summary_reports_the_masked_readings(tmp_path):
  values = daily_values(10)
  values[300] = -5
  values[day_slice(6, 12, 12).start:day_slice(7, 16, 16).start] = 37
  r = data.read_csv(write(tmp_path, csv_of(values)), **GENERIC)
  summary = data.make_dataset(r, data.WindowSpec(window=6, horizons=(1,))).summary()
  assert summary["readings"] == len(r) == len(values) - 1 - r.n_masked_frozen
  assert summary["masked"]["negative"]["readings"] == 1
  assert summary["masked"]["frozen"]["readings"] == r.n_masked_frozen == 28 * 6 - 1
  assert summary["masked"]["max_flat_hours"] == 12.0
  assert summary["masked"]["active_hours"] == list(range(8, 20))


# ------------------------------------------------------------------------- robust capacity

def test_robust_max_ignores_single_reading_spikes():
  assert windows.robust_max(np.r_[np.arange(60.0), 1381.0, np.arange(60.0)]) == 59.0
  assert windows.robust_max([134, 139, 119, 145, 105]) == 145.0   # the gym's real peak
  assert windows.robust_max([10, 200, 200, 10, 5]) == 200.0      # held twice: real
  assert windows.robust_max([3.0, 9.0]) == 9.0
  assert windows.robust_max([]) == 0.0


def test_a_planted_spike_does_not_set_the_fitted_capacity(tmp_path):
  values = daily_values(10).copy()
  values[2 * 144 + 60] = 693
  r = data.read_csv(write(tmp_path, csv_of(values)), time_column="time", value_column="people")
  ds = data.make_dataset(r, data.WindowSpec(window=6, horizons=(1,)))
  assert ds.capacity_fitted and ds.capacity == 26.0
  spike = np.flatnonzero(ds.train.target_people[:, 0] == 693)
  assert spike.size == 1 and ds.train.ys[spike[0], 0] == 1.0     # its target clipped to 1


def test_a_training_split_of_zeros_and_spikes_cannot_fit_a_capacity(tmp_path):
  values = np.zeros(3 * 144)
  values[100] = 50
  path = write(tmp_path, csv_of(values))
  r = data.read_csv(path, time_column="time", value_column="people")
  with pytest.raises(InputError, match=r"every reading in the training split is 0 but for "
                     r"single-reading spikes \(up to 50\), which do not count; give a capacity"):
    data.make_dataset(r, data.WindowSpec(window=6, horizons=(1,)))

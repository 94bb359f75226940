"""The facts about the real campus gym file that the pipeline relies on (skipped without it).

``../shared/data/campus_gym.csv``: see the rnn_jax.data.readings docstring for what these
numbers mean. Expected values here are read from the raw file with pandas independently of
rnn_jax.data, except the row counts and dates, which are facts about the file itself.
"""
from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest

from rnn_jax import data

NS_MIN = 60 * 10**9


@functools.lru_cache(maxsize=1)
def _load(path):
  readings = data.read_csv(path)
  return readings, data.make_dataset(readings, data.WindowSpec())


@functools.lru_cache(maxsize=1)
def _raw(path):
  return pd.read_csv(path, dtype={"date": str})


@pytest.fixture
def gym(gym_csv):
  return _load(str(gym_csv))


@pytest.fixture
def raw(gym_csv):
  return _raw(str(gym_csv))


def utc(text):
  return np.datetime64(text, "ns")


def test_loads_every_row(gym, raw):
  readings, _ = gym
  assert len(raw) == 62184 and len(readings) == 62184
  assert readings.format == "campus_gym" and readings.capacity is None
  assert readings.n_skipped_empty == 0
  assert sorted(readings.value) == sorted(raw["number_people"].astype(float))
  np.testing.assert_array_equal(np.sort(readings.line), np.arange(2, 62186))


def test_fall_back_nights_have_no_backwards_step_and_no_doubled_hour(gym):
  readings, _ = gym
  t = readings.time_utc.astype(np.int64)
  assert readings.n_out_of_order == 0
  assert (np.diff(t) > 0).all()
  # 2016-11-06: the label switches to -08:00 at 01:01:48 local, an hour early. In UTC the night
  # must run on in 10-minute steps: 07:51 PDT readings, then the 08:xx hour (first pass through
  # 01:xx, PDT), then the 09:xx hour (second pass, PST), each hour exactly once.
  night = (readings.time_utc >= utc("2016-11-06T07:30")) & (readings.time_utc < utc("2016-11-06T10:30"))
  steps = np.diff(t[night]) / NS_MIN
  assert ((steps > 9.5) & (steps < 10.5)).all(), steps
  hours = readings.time_utc[night].astype("datetime64[h]")
  counts = pd.Series(hours).value_counts().sort_index()
  assert list(counts.loc[[utc("2016-11-06T08"), utc("2016-11-06T09")]]) == [6, 6]
  assert readings.n_offsets_repaired == 6
  # local offsets: -7 h through the first pass, -8 h from the second
  first = (readings.time_utc >= utc("2016-11-06T08:00")) & (readings.time_utc < utc("2016-11-06T09:00"))
  second = (readings.time_utc >= utc("2016-11-06T09:00")) & (readings.time_utc < utc("2016-11-06T10:00"))
  assert (readings.local_offset_minutes[first] == -420).all()
  assert (readings.local_offset_minutes[second] == -480).all()


def test_the_minus_50_minute_step_is_resolved(gym, raw):
  readings, _ = gym
  face_value = (pd.to_datetime(raw["date"], utc=True).dt.tz_localize(None).to_numpy()
                .astype("datetime64[ns]"))
  back = np.flatnonzero(np.diff(face_value.astype(np.int64)) < 0) + 1
  assert list(back) == [51178]                            # the file's only backwards step ...
  assert (face_value[51177] - face_value[51178]) == np.timedelta64(50, "m")
  assert raw["date"][51177] == "2016-11-06 01:51:52-08:00"
  assert raw["date"][51178] == "2016-11-06 01:01:52-08:00"
  line = 51178 + 2                                        # header is line 1
  i = int(np.flatnonzero(readings.line == line)[0])
  j = int(np.flatnonzero(readings.line == line - 1)[0])
  assert readings.time_utc[i] == face_value[51178]        # second pass keeps its -08:00
  assert readings.time_utc[j] == face_value[51177] - np.timedelta64(60, "m")  # first: -07:00
  assert i == j + 1


def test_2015_fall_back_reading_without_evidence_keeps_its_label(gym, raw):
  readings, _ = gym
  k = int(np.flatnonzero(raw["date"] == "2015-11-01 01:00:13-08:00")[0])
  i = int(np.flatnonzero(readings.line == k + 2)[0])
  assert readings.time_utc[i] == utc("2015-11-01T09:00:13")
  assert readings.time_utc[i - 1] == utc("2015-11-01T07:50:12")
  assert readings.time_utc[i + 1] == utc("2015-11-01T13:20:12")


def test_burst_bins_are_averaged(gym, raw):
  readings, ds = gym
  # The burst of readings ~30 s apart on 2015-08-25 17:10:40 .. 18:02:46 local (-07:00).
  local = pd.to_datetime(raw["date"].str[:19])
  burst = (local >= "2015-08-25 17:10:00") & (local < "2015-08-25 18:10:00")
  assert burst.sum() == 103
  grid = ds.grid
  total = 0
  for minute in range(10, 70, 10):
    start = pd.Timestamp("2015-08-25 17:00") + pd.Timedelta(minutes=minute)
    inside = (local >= start) & (local < start + pd.Timedelta(minutes=10))
    b = int(np.flatnonzero(grid.times == (start + pd.Timedelta(hours=7)).to_datetime64())[0])
    assert grid.counts[b] == inside.sum() > 1
    assert grid.values[b] == pytest.approx(raw["number_people"][inside].mean(), rel=1e-12)
    total += grid.counts[b]
  assert total == 103
  assert grid.counts.max() == 20                        # 17:10..17:20 local


def test_one_off_145_peak_is_present_and_sets_the_capacity(gym, raw):
  readings, ds = gym
  assert readings.value.max() == 145 == raw["number_people"].max()
  i = int(np.argmax(readings.value))
  assert readings.time_utc[i] == utc("2015-08-24T20:20:17")
  assert ds.capacity_fitted and ds.capacity == 145.0
  assert ds.train.end_times[0] < readings.time_utc[i] < ds.train.end_times[-1]


def test_no_window_spans_a_gap_or_a_split_boundary(gym):
  _, ds = gym
  spec, grid = ds.spec, ds.grid
  assert np.isnan(grid.values).sum() > 10000            # the file has long outages
  for name in data.SPLITS:
    s = ds[name]
    lo, hi = s.bounds
    span = s.end_index[:, None] + np.arange(-spec.window + 1, max(spec.horizons) + 1)[None, :]
    assert len(s) > 1000
    assert (span >= lo).all() and (span < hi).all()
    assert grid.valid[span].all()
    assert np.isfinite(s.xs).all() and np.isfinite(s.ys).all()


def test_calendar_local_time_is_pacific(gym):
  _, ds = gym
  grid = ds.grid
  offset = (grid.local_times - grid.times).astype("timedelta64[m]").astype(np.int64)
  assert set(np.unique(offset)) == {-420, -480}
  summer = grid.times == utc("2016-07-01T19:00")
  winter = grid.times == utc("2016-01-15T20:00")
  assert grid.local_times[summer][0] == utc("2016-07-01T12:00")
  assert grid.local_times[winter][0] == utc("2016-01-15T12:00")


def test_file_offsets_agree_with_the_iana_zone(gym, gym_csv):
  readings, ds = gym
  zoned = data.read_csv(gym_csv, timezone="America/Los_Angeles")
  np.testing.assert_array_equal(zoned.time_utc, readings.time_utc)
  np.testing.assert_array_equal(zoned.local_offset_minutes, readings.local_offset_minutes)
  grid = data.to_grid(zoned)
  differ = grid.local_times != ds.grid.local_times
  # only in outages across spring-forward nights, where no reading gives the new offset
  assert 0 < differ.sum() < 200 and not ds.grid.valid[differ].any()

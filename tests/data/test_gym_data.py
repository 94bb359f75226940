"""The facts about the real campus gym file that the pipeline relies on (skipped without it).

``../shared/data/campus_gym.csv``: every number that the rnn_jax.data docstrings (the readings
module's and those it names) and the README's "Data" and "Results on the campus gym data"
sections state about the file is asserted here exactly, at the precision it is written with.
Facts about the raw file are computed with pandas from the raw CSV, independently of
rnn_jax.data (``repaired_utc`` applies the one offset repair by hand); facts about the grid and
the windows come from rnn_jax.data, under the settings named beside them. The file is read once
per module.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import shared_file
from rnn_jax import data
from rnn_jax.data import faults

NS_MIN = 60 * 10**9
# Rows (0-based, header excluded) labelled -08:00 an hour early on 2016-11-06: 01:01:48..01:51:52.
EARLY_ROWS = slice(51172, 51178)
# The burst of readings ~30 s apart, local wall-clock time.
BURST = ("2015-08-25 17:10:00", "2015-08-25 18:10:00")
# The README's runs: window 12, calendar features (the counts do not depend on the features).
README_SPEC = data.WindowSpec(window=12, features=("occupancy", "calendar"))


def fmt(value, digits):
  """``value`` as the docs write it, e.g. fmt(29.07, 1) == "29.1"."""
  return f"{value:.{digits}f}"


@pytest.fixture(scope="module")
def gym_csv():
  # Module-scoped (the conftest one is per test), so that the file is read once per module.
  return shared_file("campus_gym.csv")


@pytest.fixture(scope="module")
def raw(gym_csv):
  return pd.read_csv(gym_csv, dtype={"date": str})


@pytest.fixture(scope="module")
def local(raw):
  """Wall-clock time of every row (the file's own, offset dropped)."""
  return pd.to_datetime(raw["date"].str[:19])


@pytest.fixture(scope="module")
def repaired_utc(raw):
  """UTC of every row with the six early -08:00 labels of 2016-11-06 set back to -07:00."""
  date = raw["date"].copy()
  date.iloc[EARLY_ROWS] = date.iloc[EARLY_ROWS].str[:19] + "-07:00"
  return pd.to_datetime(date, utc=True)


@pytest.fixture(scope="module")
def steps(repaired_utc):
  """Seconds between consecutive rows [62183] (the repaired file is in time order)."""
  assert repaired_utc.is_monotonic_increasing
  return repaired_utc.diff().dt.total_seconds().to_numpy()[1:]


@pytest.fixture(scope="module")
def gym(gym_csv):
  readings = data.read_csv(gym_csv)
  return readings, data.make_dataset(readings, data.WindowSpec())


@pytest.fixture(scope="module")
def readme_dataset(gym):
  return data.make_dataset(gym[0], README_SPEC)


def utc(text):
  return np.datetime64(text, "ns")


# --------------------------------------------------------------------------------------------
# The raw file (pandas only)


def test_rows_dates_steps_and_values(raw, local, steps):
  assert len(raw) == 62184
  assert str(local.min())[:16] == "2015-08-14 17:00" == str(local.iloc[0])[:16]
  assert str(local.max())[:16] == "2017-03-18 19:22" == str(local.iloc[-1])[:16]
  assert np.median(steps) == 602
  # the clock drifts: most steps are 601..603 s
  assert fmt(100 * np.mean((steps >= 601) & (steps <= 603)), 0) == "58"
  people = raw["number_people"]
  assert people.min() == 0 and people.max() == 145
  assert fmt(people.mean(), 1) == "29.1"


def test_offsets_are_pacific(raw):
  offset = raw["date"].str[19:]
  assert offset.value_counts().to_dict() == {"-07:00": 38874, "-08:00": 23310}
  # Every label is America/Los_Angeles's offset at its instant (the 2016-11-06 early labels
  # too: each is a valid offset for its wall time, only their order is wrong).
  face = pd.to_datetime(raw["date"], utc=True).dt.tz_convert("America/Los_Angeles")
  assert (face.dt.strftime("%Y-%m-%d %H:%M:%S") == raw["date"].str[:19]).all()


def test_spring_forward_nights_fall_in_outages(raw, repaired_utc):
  date = raw["date"]
  # 2016-03-13: the last -08:00 reading at 01:00:15, the next at 05:20:11 -07:00 (3 h 20 min)
  i = int(np.flatnonzero(date == "2016-03-13 01:00:15-08:00")[0])
  assert date[i + 1] == "2016-03-13 05:20:11-07:00"
  assert (repaired_utc[i + 1] - repaired_utc[i]).round("min") == pd.Timedelta("3h20min")
  # 2017-03-12 falls in a 42-hour outage
  i = int(np.flatnonzero(date == "2017-03-10 23:00:15-08:00")[0])
  assert date[i + 1] == "2017-03-12 17:51:01-07:00"
  assert (repaired_utc[i + 1] - repaired_utc[i]).round("h") == pd.Timedelta("42h")


def test_2016_fall_back_label_switches_an_hour_early(raw):
  date = raw["date"]
  assert date[EARLY_ROWS.start - 1] == "2016-11-06 00:51:47-07:00"
  assert date[EARLY_ROWS.start] == "2016-11-06 01:01:48-08:00"          # the label switches
  assert date[EARLY_ROWS.stop - 1] == "2016-11-06 01:51:52-08:00"
  assert date[EARLY_ROWS.stop] == "2016-11-06 01:01:52-08:00"           # the clock turns back
  assert (date[EARLY_ROWS].str[19:] == "-08:00").all() and len(date[EARLY_ROWS]) == 6
  # at face value: an empty 08:00 UTC hour and a doubled 09:00 UTC hour
  face = pd.to_datetime(date, utc=True)
  hour = face.dt.floor("h")
  assert (hour == pd.Timestamp("2016-11-06 08:00", tz="UTC")).sum() == 0
  assert (hour == pd.Timestamp("2016-11-06 09:00", tz="UTC")).sum() == 12


def test_burst_and_close_pairs(raw, local, steps):
  burst = ((local >= BURST[0]) & (local < BURST[1])).to_numpy()
  assert burst.sum() == 103
  assert raw["date"][burst].iloc[0] == "2015-08-25 17:10:40-07:00"
  assert raw["date"][burst].iloc[-1] == "2015-08-25 18:02:46-07:00"
  inside = burst[1:] & burst[:-1]
  assert steps[inside].min() == 30 and steps[inside].max() == 33      # about 30 s apart
  # other steps under a minute: 58 isolated pairs, 56 of them between 23:00 and 02:00 local
  close = np.flatnonzero((steps < 60) & ~inside)
  assert len(close) == 58 and (np.diff(close) > 1).all()
  hours = local.iloc[close + 1].dt.hour
  assert hours.isin([23, 0, 1]).sum() == 56


def test_peak_of_145_and_its_neighbours(raw, local):
  i = int(raw["number_people"].idxmax())
  assert (raw["number_people"] == 145).sum() == 1
  assert raw["date"][i] == "2015-08-24 13:20:17-07:00" and local[i].day_name() == "Monday"
  assert list(raw["number_people"][i - 3:i + 2]) == [134, 139, 119, 145, 105]
  assert list(local[i - 3:i + 2].dt.strftime("%H:%M")) == ["12:40", "12:50", "13:00", "13:20",
                                                           "13:30"]
  # two days before the file's semester flags turn on (2015-08-26)
  during = raw["is_during_semester"] == 1
  assert raw["is_during_semester"][i] == 0
  assert raw["date"][during].iloc[0].startswith("2015-08-26 00:00")


def test_outages(raw, local, steps, gym):
  _, ds = gym
  assert (steps > 3600).sum() == 375 and (steps > 86400).sum() == 6
  i = int(np.argmax(steps))
  assert fmt(steps[i] / 86400, 0) == "25"
  assert str(local[i])[:16] == "2017-01-19 23:00" and str(local[i + 1])[:16] == "2017-02-13 23:31"
  # in the test split
  start = pd.Timestamp(ds.grid.times[ds.test.bounds[0]], tz="UTC")
  assert pd.to_datetime(raw["date"][i], utc=True) > start


# --------------------------------------------------------------------------------------------
# rnn_jax.data on the file


def test_loads_every_row(gym, raw, repaired_utc):
  readings, _ = gym
  assert len(raw) == 62184 and len(readings) == 62184
  assert readings.format == "campus_gym" and readings.capacity is None
  assert readings.n_skipped_empty == 0
  # no sensor fault: no negative reading, and its longest unchanged nonzero run within its active
  # hours (local 05:00-01:00) is 1.0 h, far under the default 12 h
  assert readings.n_masked == 0 and readings.max_flat_hours == 12.0
  assert readings.active_hours == (0, *range(5, 24))
  runs = faults.find_faults(readings.time_utc.astype(np.int64), readings.local_offset_minutes,
                            readings.value, None, max_flat_hours=0.5).runs
  assert fmt(max(run.active_hours for run in runs), 1) == "1.0"
  assert sorted(readings.value) == sorted(raw["number_people"].astype(float))
  np.testing.assert_array_equal(np.sort(readings.line), np.arange(2, 62186))
  # the read (with its repair) gives the UTC times of the hand-repaired file, in file order
  np.testing.assert_array_equal(readings.time_utc,
                                repaired_utc.dt.tz_localize(None).to_numpy("datetime64[ns]"))
  np.testing.assert_array_equal(readings.line, np.arange(2, 62186))


def test_fall_back_nights_have_no_backwards_step_and_no_doubled_hour(gym):
  readings, _ = gym
  t = readings.time_utc.astype(np.int64)
  assert readings.n_out_of_order == 0
  assert (np.diff(t) > 0).all()
  # 2016-11-06: the label switches to -08:00 at 01:01:48 local, an hour early. In UTC the night
  # must run on in 10-minute steps: 07:51 PDT readings, then the 08:xx hour (first pass through
  # 01:xx, PDT), then the 09:xx hour (second pass, PST), each hour exactly once.
  night = ((readings.time_utc >= utc("2016-11-06T07:30"))
           & (readings.time_utc < utc("2016-11-06T10:30")))
  steps = np.diff(t[night]) / NS_MIN
  assert ((steps > 9.5) & (steps < 10.5)).all(), steps
  hours = readings.time_utc[night].astype("datetime64[h]")
  counts = pd.Series(hours).value_counts().sort_index()
  assert list(counts.loc[[utc("2016-11-06T08"), utc("2016-11-06T09")]]) == [6, 6]
  assert readings.n_offsets_repaired == 6
  # local offsets: -7 h through the first pass, -8 h from the second
  first = ((readings.time_utc >= utc("2016-11-06T08:00"))
           & (readings.time_utc < utc("2016-11-06T09:00")))
  second = ((readings.time_utc >= utc("2016-11-06T09:00"))
            & (readings.time_utc < utc("2016-11-06T10:00")))
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
  # the label switches at 01:00:13; the next reading comes 4 h 20 min later
  assert raw["date"][k - 1] == "2015-11-01 00:50:12-07:00"
  assert raw["date"][k + 1] == "2015-11-01 05:20:12-08:00"
  i = int(np.flatnonzero(readings.line == k + 2)[0])
  assert readings.time_utc[i] == utc("2015-11-01T09:00:13")
  assert readings.time_utc[i - 1] == utc("2015-11-01T07:50:12")
  assert readings.time_utc[i + 1] == utc("2015-11-01T13:20:12")
  gap = (readings.time_utc[i + 1] - readings.time_utc[i]).astype(np.int64)
  assert round(gap / NS_MIN) == 4 * 60 + 20


def test_burst_bins_are_averaged(gym, raw, local):
  readings, ds = gym
  # The burst of readings ~30 s apart on 2015-08-25 17:10:40 .. 18:02:46 local (-07:00).
  burst = (local >= BURST[0]) & (local < BURST[1])
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


def test_default_grid(gym, repaired_utc):
  """The default grid: 10-minute bins, max_gap 2."""
  _, ds = gym
  grid = ds.grid
  assert grid.step_minutes == 10 and grid.max_gap == 2
  assert len(grid) == 83823
  assert grid.times[0] == utc("2015-08-15T00:00") and grid.times[-1] == utc("2017-03-19T02:20")
  with_readings = grid.counts > 0
  assert with_readings.sum() == 61801 == repaired_utc.dt.floor("10min").nunique()
  assert grid.interpolated.sum() == 5348 and not (grid.interpolated & with_readings).any()
  assert (~grid.valid).sum() == 16674 == np.isnan(grid.values).sum()
  assert 61801 + 5348 + 16674 == len(grid)
  # runs of interpolated bins: 5,106 single bins, 121 pairs
  edges = np.diff(np.concatenate([[0], grid.interpolated.astype(np.int8), [0]]))
  runs = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
  assert list(np.bincount(runs)) == [0, 5106, 121]


def test_default_windows_and_split_dates(gym):
  """WindowSpec(): window 24, horizons 1,3,6, features occupancy, splits 0.7/0.15/0.15."""
  _, ds = gym
  spec = ds.spec
  assert (spec.window, spec.horizons, spec.features) == (24, (1, 3, 6), ("occupancy",))
  assert spec.splits == (0.7, 0.15, 0.15)
  assert {name: len(ds[name]) for name in data.SPLITS} == dict(train=40147, val=11661, test=3834)
  splits = ds.summary()["splits"]
  assert splits["val"]["start_utc"][:16] == "2016-09-25T11:20"       # 25 Sep 04:20 PDT
  assert splits["test"]["start_utc"][:16] == "2016-12-21T19:00"      # 21 Dec 11:00 PST
  assert splits["test"]["end_utc"][:16] == "2017-03-19T02:30"        # 18 Mar 19:30 PDT


def test_readme_windows_and_baselines(readme_dataset, gym):
  """The README's runs (window 12, horizons 1,3,6, calendar features): window counts, the
  persistence and seasonal naive MAE of its tables, and the quiet test split."""
  ds = readme_dataset
  assert {name: len(ds[name]) for name in data.SPLITS} == dict(train=44213, val=11865, test=4102)
  occupancy_only = data.make_dataset(gym[0], data.WindowSpec(window=12))
  assert {n: len(occupancy_only[n]) for n in data.SPLITS} == {n: len(ds[n]) for n in data.SPLITS}
  expected = {  # method: (val +10, +30, +60, test +10, +30, +60), people
      "persistence": "3.33 4.45 5.77 2.40 3.40 4.38",
      "seasonal_naive_day": "6.60 6.58 6.58 4.15 4.09 4.10",
      "seasonal_naive_week": "7.02 7.00 7.01 5.08 5.00 4.98"}
  for method, text in expected.items():
    got = []
    for name in ("val", "test"):
      s = ds[name]
      pred = {"persistence": np.repeat(s.window_people[:, -1:], 3, axis=1),
              "seasonal_naive_day": s.naive_day, "seasonal_naive_week": s.naive_week}[method]
      ok = np.isfinite(pred).all(axis=1)
      got += [fmt(m, 2) for m in np.abs(pred[ok] - s.target_people[ok]).mean(axis=0)]
    assert " ".join(got) == text, method
  # the README's share of test targets under 3 people, at this window
  assert fmt(100 * np.mean(ds.test.target_people < 3), 0) == "41"
  # and at the default window 24, where persistence's test MAE is 2.31 / 3.28 / 4.26
  _, default = gym
  assert fmt(100 * np.mean(default.test.target_people < 3), 0) == "43"
  s = default.test
  persistence = np.abs(s.window_people[:, -1:] - s.target_people).mean(axis=0)
  assert [fmt(m, 2) for m in persistence] == ["2.31", "3.28", "4.26"]


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

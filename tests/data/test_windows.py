"""rnn_jax.data.windows: WindowSpec, windows and splits, fitting on train only, newest_window."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from rnn_jax import data
from rnn_jax.common.errors import InputError
from data_helpers import GENERIC, NS_MIN, ramp_csv, readings_from, write


@pytest.mark.parametrize("kwargs,fragment", [
    (dict(window=0), "--window"), (dict(window=-3), "--window"), (dict(window=2.5), "--window"),
    (dict(horizons=(0,)), "--horizons"), (dict(horizons=(1, -1)), "--horizons"),
    (dict(horizons=()), "--horizons"), (dict(horizons=(3, 3)), "--horizons: expected distinct"),
    (dict(features=("occupancy", "weather")), "unknown name 'weather'"),
    (dict(features=("calendar",)), "--features: expected 'occupancy'"),
    (dict(task="classes"), "--task"), (dict(level_horizon=0), "--level-horizon"),
    (dict(splits=(0.7, 0.3)), "--splits"), (dict(splits=(0.7, 0.2, 0.2)), "--splits"),
    (dict(splits=(0.8, 0.2, 0.0)), "--splits"), (dict(step_minutes=0), "--step-minutes"),
    (dict(max_gap=-1), "--max-gap")])
def test_window_spec_checks_arguments(kwargs, fragment):
  with pytest.raises(InputError) as info:
    data.WindowSpec(**kwargs)
  assert fragment in str(info.value)


def test_window_spec_normalises_and_sizes():
  spec = data.WindowSpec(horizons=[6, 1], features=("calendar", "occupancy"))
  assert spec.horizons == (6, 1) and spec.features == ("occupancy", "calendar")
  assert spec.input_size == 5 and spec.output_size == 2
  levels = data.WindowSpec(task="levels")
  assert levels.target_horizons == (6,) and levels.output_size == 3
  assert data.WindowSpec(task="levels", level_horizon=2).target_horizons == (2,)


def gappy_readings(seed, n_bins=400, p_missing=0.05, n_outages=3):
  """Readings on a 10-minute grid with random missing bins and outages, values 0..40."""
  rng = np.random.default_rng(seed)
  keep = rng.random(n_bins) > p_missing
  for _ in range(n_outages):
    start = rng.integers(0, n_bins)
    keep[start:start + rng.integers(3, 20)] = False
  keep[0] = keep[-1] = True
  idx = np.flatnonzero(keep)
  t0 = np.datetime64("2024-01-01T00:00", "ns").astype(np.int64)
  times = t0 + idx * 10 * NS_MIN + rng.integers(0, 60, len(idx)) * 10**9
  return readings_from(times, rng.integers(0, 41, len(idx)), capacity=50.0)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10**6), window=st.integers(1, 12),
       horizons=st.lists(st.integers(1, 8), min_size=1, max_size=3, unique=True),
       max_gap=st.integers(0, 3))
def test_windows_never_span_a_gap_or_a_split_boundary(seed, window, horizons, max_gap):
  r = gappy_readings(seed)
  spec = data.WindowSpec(window=window, horizons=tuple(horizons), max_gap=max_gap,
                         features=("occupancy", "calendar"))
  try:
    ds = data.make_dataset(r, spec)
  except InputError as err:
    assert "usable window" in str(err)
    return
  grid = ds.grid
  ahead = max(horizons)
  calendar = grid.calendar()
  found = set()
  for name in data.SPLITS:
    s = ds[name]
    lo, hi = s.bounds
    span = s.end_index[:, None] + np.arange(-window + 1, ahead + 1)[None, :]  # [N, T + ahead]
    assert (span[:, 0] >= lo).all() and (span[:, -1] < hi).all()
    assert grid.valid[span].all()
    inputs = span[:, :window]
    np.testing.assert_array_equal(s.window_people, grid.values[inputs])
    np.testing.assert_array_equal(s.target_people,
                                  grid.values[s.end_index[:, None] + np.array(horizons)])
    np.testing.assert_allclose(s.xs[..., 0], grid.values[inputs] / 50.0, rtol=1e-6)
    np.testing.assert_allclose(s.xs[..., 1:], calendar[inputs], atol=1e-6)
    found.update(s.end_index.tolist())
  # ... and every window that fits is used (brute force over all ends).
  bounds = [ds[n].bounds for n in data.SPLITS]
  expected = {e for lo, hi in bounds for e in range(lo + window - 1, hi - ahead)
              if grid.valid[e - window + 1:e + ahead + 1].all()}
  assert found == expected


def test_splits_are_chronological_fractions_of_the_grid():
  r = readings_from(np.datetime64("2024-01-01", "ns") + np.arange(1000) * np.timedelta64(10, "m"),
                    np.arange(1000) % 30)
  ds = data.make_dataset(r, data.WindowSpec(window=4, horizons=(1, 2)))
  assert [ds[n].bounds for n in data.SPLITS] == [(0, 700), (700, 850), (850, 1000)]
  assert len(ds.train) == 700 - 3 - 2 and len(ds.val) == 150 - 5 and len(ds.test) == 145


def test_capacity_and_tertiles_are_fitted_on_training_only():
  n = 300
  values = np.r_[np.arange(210) % 31, np.full(90, 500.0)]  # train: 0..30; val, test: 500
  r = dataclasses.replace(
      readings_from(np.datetime64("2024-01-01", "ns") + np.arange(n) * np.timedelta64(10, "m"),
                    values), capacity=None)
  ds = data.make_dataset(r, data.WindowSpec(window=3, horizons=(1,)))
  assert ds.capacity_fitted and ds.capacity == 30.0
  assert ds.train.ys.max() <= 1.0 and ds.test.ys.min() == 1.0  # clipped above the capacity
  assert ds.test.target_people.min() == 500.0                   # ... but people stay honest
  assert ds.test.xs.max() == pytest.approx(500 / 30)
  levels = data.make_dataset(r, data.WindowSpec(window=3, horizons=(1,), task="levels"))
  train_targets = levels.train.target_people[:, 0]
  np.testing.assert_allclose(levels.tertiles, np.quantile(train_targets, [1 / 3, 2 / 3]))
  assert levels.tertiles[1] <= 30
  assert (levels.test.levels == 2).all()
  np.testing.assert_array_equal(levels.train.ys.argmax(1), levels.train.levels)
  counts = np.bincount(levels.train.levels, minlength=3)
  assert counts.min() > 0.25 * len(levels.train)


def test_whole_counts_is_fitted_on_training_only_and_rounds_median_forecasts():
  times = np.datetime64("2024-01-01", "ns") + np.arange(300) * np.timedelta64(10, "m")
  spec = data.WindowSpec(window=3, horizons=(1,))
  counts = (np.arange(300) % 31).astype(np.float64)
  ds = data.make_dataset(readings_from(times, counts), spec)
  assert ds.whole_counts and ds.summary()["whole_counts"] is True
  np.testing.assert_array_equal(ds.median_point([[0.4, 2.6], [7.5, 8.49]]), [[0, 3], [8, 8]])
  late = data.make_dataset(readings_from(times, np.r_[counts[:210], counts[210:] + 0.5]), spec)
  assert late.whole_counts                                       # val and test do not count
  early = data.make_dataset(readings_from(times, np.r_[counts[:5], 2.5, counts[6:]]), spec)
  assert not early.whole_counts
  np.testing.assert_array_equal(early.median_point([0.4, 2.6]), [0.4, 2.6])


def test_given_capacity_is_used_as_is():
  r = readings_from(np.datetime64("2024-01-01", "ns") + np.arange(200) * np.timedelta64(10, "m"),
                    np.arange(200) % 10, capacity=80.0)
  ds = data.make_dataset(r, data.WindowSpec(window=3, horizons=(1,)))
  assert ds.capacity == 80.0 and not ds.capacity_fitted
  np.testing.assert_allclose(ds.train.ys[:, 0], ds.train.target_people[:, 0] / 80.0, rtol=1e-6)


def test_seasonal_naive_values_are_one_day_and_one_week_earlier():
  n = 3 * 7 * 144
  r = readings_from(np.datetime64("2024-01-01", "ns") + np.arange(n) * np.timedelta64(10, "m"),
                    np.arange(n) % 97, capacity=100.0)
  ds = data.make_dataset(r, data.WindowSpec(window=6, horizons=(1, 3)))
  for name in data.SPLITS:
    s = ds[name]
    target_idx = s.end_index[:, None] + np.array([1, 3])
    for lag, naive in ((144, s.naive_day), (1008, s.naive_week)):
      src = target_idx - lag
      has = src >= 0
      np.testing.assert_array_equal(np.isnan(naive), ~has)
      np.testing.assert_array_equal(naive[has], ds.grid.values[src[has]])
  assert np.isnan(ds.train.naive_week[0]).all() and not np.isnan(ds.test.naive_week).any()


def test_too_few_readings_says_how_many_are_needed(tmp_path):
  r = data.read_csv(write(tmp_path, ramp_csv(20)), **GENERIC)
  with pytest.raises(InputError) as info:
    data.make_dataset(r, data.WindowSpec())
  message = str(info.value)
  assert "needs 30 consecutive 10-minute bins" in message and "20 bins" in message
  assert "0 usable windows" in message and "\n" not in message


def test_a_split_without_windows_is_named(tmp_path):
  r = data.read_csv(write(tmp_path, ramp_csv(200)), **GENERIC)
  with pytest.raises(InputError) as info:
    data.make_dataset(r, data.WindowSpec(window=24, splits=(0.8, 0.1, 0.1)))
  assert "split 'val'" in str(info.value) and "usable windows: train" in str(info.value)


def test_newest_window_is_the_last_complete_one():
  times = np.datetime64("2024-01-01", "ns") + np.r_[np.arange(50), np.arange(60, 64)] * \
      np.timedelta64(10, "m")
  values = np.arange(54.0)
  r = readings_from(times, values, capacity=100.0)
  spec = data.WindowSpec(window=5, features=("occupancy", "calendar"))
  nw = data.newest_window(r, spec, capacity=100.0)
  assert nw.xs.shape == (1, 5, 5) and nw.xs.dtype == np.float32
  np.testing.assert_allclose(nw.xs[0, :, 0], values[45:50] / 100, rtol=1e-6)
  assert nw.end_time == np.datetime64("2024-01-01T08:10", "ns")
  with pytest.raises(InputError, match="no complete window"):
    data.newest_window(r, data.WindowSpec(window=51), capacity=100.0)
  with pytest.raises(InputError, match="capacity"):
    data.newest_window(r, spec, capacity=0)

"""rnn_jax.evaluation.baselines: the median and quantile gradient boosting baselines and the
statistical baseline (statsforecast's MSTL), on small synthetic series whose answers are known."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

from rnn_jax import data, evaluation
from conftest import REPO
from evaluation_helpers import series


@pytest.fixture(scope="module")
def skewed():
  """Independent exponential readings (scale 20 people): the window says nothing about the next
  reading, so the best forecast under MAE is the median 20 ln 2 = 13.9 (expected error 13.9),
  while the mean, 20, has expected error 40 / e = 14.7."""
  values = np.random.default_rng(0).exponential(20.0, 20000)
  return data.make_dataset(series(values, capacity=400.0),
                           data.WindowSpec(window=2, horizons=(1, 2), splits=(0.5, 0.25, 0.25)))


@pytest.fixture(scope="module")
def skewed_fitted(skewed):
  return evaluation.fit_baselines(skewed, gbm_max_iter=20, mstl=False)


def test_gbm_median_forecasts_the_median_of_a_skewed_target(skewed, skewed_fitted):
  train = skewed.train.target_people
  val = evaluation.baselines(skewed, "val", skewed_fitted)
  # each fitter sits near its own statistic of the training targets (median 13.9, mean 20)
  assert abs(np.median(val["gbm_median"]) - np.median(train)) < 1.5
  assert abs(np.median(val["gbm"]) - train.mean()) < 1.5
  results = evaluation.report(skewed, fitted=skewed_fitted)
  for split in ("val", "test"):
    entries = results["splits"][split]
    median, mean = np.array(entries["gbm_median"]["mae"]), np.array(entries["gbm"]["mae"])
    assert (median < mean - 0.4).all(), (median, mean)


def test_gbm_median_is_rounded_to_whole_counts_like_the_model(skewed, skewed_fitted):
  assert not skewed.whole_counts                       # exponential readings: not counts
  plain = evaluation.baselines(skewed, "val", skewed_fitted)
  counted = evaluation.baselines(dataclasses.replace(skewed, whole_counts=True), "val",
                                 skewed_fitted)
  assert not np.array_equal(plain["gbm_median"], np.round(plain["gbm_median"]))
  np.testing.assert_array_equal(counted["gbm_median"], np.round(plain["gbm_median"]))
  np.testing.assert_array_equal(counted["gbm"], plain["gbm"])      # a mean: not rounded


@pytest.mark.parametrize("level", [0.8, 0.5])
def test_gbm_quantile_covers_near_its_level_where_the_data_are_like_training(skewed, level):
  """The interval of the 10% and 90% (or 25% and 75%) quantile fits covers 80% (50%) of the
  training targets, and close to that on validation and test, which come from the training
  split's distribution here. (With fewer windows, or more iterations, the fits follow the noise
  and the held-out coverage drops: 0.71 at 80% with 3,000 training windows and 100 iterations.)"""
  fitted = evaluation.fit_baselines(skewed, gbm_max_iter=20, mstl=False, level=level)
  assert fitted.level == level
  train = evaluation.baseline_intervals(skewed, "train", fitted)["gbm_quantile"]
  np.testing.assert_allclose(train["coverage"], level, atol=0.01)
  for split in ("val", "test"):
    report = evaluation.baseline_intervals(skewed, split, fitted)["gbm_quantile"]
    assert report["level"] == level
    np.testing.assert_allclose(report["coverage"], level, atol=0.03)
    np.testing.assert_allclose(report["quantiles"], [(1 - level) / 2, (1 + level) / 2])
    lo, hi = np.quantile(skewed.train.target_people, report["quantiles"])
    np.testing.assert_allclose(report["mean_width"], hi - lo, rtol=0.15)


def test_gbm_quantile_interval_is_scored_in_the_report(skewed, skewed_fitted):
  preds = evaluation.baselines(skewed, "test", skewed_fitted)
  interval = preds["gbm_quantile"]
  assert isinstance(interval, evaluation.Interval) and interval.level == 0.8
  assert (interval.lo <= interval.hi).all() and (interval.lo >= 0).all()
  assert (interval.hi <= skewed.capacity).all()
  target = skewed.test.target_people
  results = evaluation.report(skewed, fitted=skewed_fitted)
  json.dumps(results, allow_nan=False)
  entry = results["baseline_intervals"]["test"]["gbm_quantile"]
  assert entry == evaluation.baseline_intervals(skewed, "test", skewed_fitted)["gbm_quantile"]
  covered = (target >= interval.lo) & (target <= interval.hi)
  np.testing.assert_allclose(entry["coverage"], covered.mean(axis=0))
  np.testing.assert_allclose(entry["interval_score"],
                             evaluation.scores.interval_score(interval.lo, interval.hi, target,
                                                              0.8))
  np.testing.assert_allclose(entry["pinball_lo"],
                             evaluation.scores.pinball(interval.lo, target, 0.1))
  np.testing.assert_allclose(entry["pinball_hi"],
                             evaluation.scores.pinball(interval.hi, target, 0.9))
  # the interval is not a point forecast: no MAE row
  assert "gbm_quantile" not in results["splits"]["test"]
  assert "gbm_quantile" not in evaluation.format_table(results)


def test_crossing_quantile_fits_are_rearranged(skewed, skewed_fitted):
  """Swapped fits (the upper quantile's models below) give the same interval: per window the
  smaller forecast is the lower bound."""
  swapped = skewed_fitted._replace(gbm_quantile=skewed_fitted.gbm_quantile[::-1])
  a, b = (evaluation.baselines(skewed, "val", f)["gbm_quantile"] for f in (skewed_fitted, swapped))
  assert (a.hi - a.lo).mean() > 10
  np.testing.assert_array_equal(a.lo, b.lo)
  np.testing.assert_array_equal(a.hi, b.hi)


def test_the_new_gbm_fits_are_deterministic(skewed, skewed_fitted):
  again = evaluation.fit_baselines(skewed, gbm_max_iter=20, mstl=False)
  a, b = (evaluation.baselines(skewed, "test", f) for f in (skewed_fitted, again))
  np.testing.assert_array_equal(a["gbm_median"], b["gbm_median"])
  np.testing.assert_array_equal(a["gbm_quantile"].lo, b["gbm_quantile"].lo)
  np.testing.assert_array_equal(a["gbm_quantile"].hi, b["gbm_quantile"].hi)


def test_without_gbm_there_is_no_quantile_interval(skewed):
  fitted = evaluation.fit_baselines(skewed, gbm=False, mstl=False)
  assert fitted.gbm_median is None and fitted.gbm_quantile is None
  assert evaluation.baseline_intervals(skewed, "val", fitted) == {}
  results = evaluation.report(skewed, fitted=fitted)
  assert results["baseline_intervals"] == {"val": {}, "test": {}}
  assert "gbm_median" not in results["splits"]["val"]


# --- mstl ------------------------------------------------------------------------------------

HOURS = 24 * 7 * 18   # 18 weeks of hourly readings: train 12.6 weeks, val and test 2.7 each


@pytest.fixture(scope="module")
def seasonal():
  """Hourly readings: a daily and a weekly rhythm on a slowly wandering level (a random walk
  with steps of sd 0.3 people). Persistence errs by the daily rhythm's change, seasonal naive by
  the level's change over a day or a week; MSTL's seasons plus the ETS level track both."""
  t = np.arange(HOURS)
  rng = np.random.default_rng(1)
  values = (40 + 15 * np.sin(2 * np.pi * t / 24) + 6 * np.sin(2 * np.pi * t / 168)
            + np.cumsum(rng.normal(0, 0.3, HOURS)))
  return data.make_dataset(series(values, capacity=200.0, step_minutes=60),
                           data.WindowSpec(window=3, horizons=(1, 3), step_minutes=60))


@pytest.fixture(scope="module")
def seasonal_mstl(seasonal):
  return evaluation.fit_mstl(seasonal)


def test_mstl_follows_a_daily_and_weekly_rhythm(seasonal, seasonal_mstl):
  assert seasonal_mstl.seasons == (24, 168) and seasonal_mstl.method.startswith("ETS(A,")
  assert seasonal_mstl.start == 0 and seasonal_mstl.fit_end == seasonal.train.bounds[1]
  fitted = evaluation.fit_baselines(seasonal, gbm=False)._replace(mstl=seasonal_mstl)
  results = evaluation.report(seasonal, fitted=fitted)
  for split in ("val", "test"):
    e = results["splits"][split]
    mstl = np.array(e["mstl"]["mae"])
    assert e["mstl"]["n_windows"] == len(seasonal[split])
    others = np.min([e[m]["mae"] for m in ("persistence", "seasonal_naive_day",
                                           "seasonal_naive_week")], axis=0)
    assert (mstl < 0.5 * others).all(), (mstl, others)
    assert (mstl < 1.0).all(), mstl


def test_mstl_forecasts_are_statsforecasts_from_each_origin(seasonal, seasonal_mstl):
  """The vectorised origins against statsforecast's public API: from the last training bin,
  ``MSTL.predict``; from later origins, ``AutoETS.forward`` over the seasonally adjusted
  readings up to the origin, plus the projected seasonal part at the target."""
  from statsforecast.models import MSTL, AutoETS
  m = seasonal_mstl
  y = evaluation.filled(seasonal.grid.values, 24)[m.start:]
  model = MSTL(season_length=list(m.seasons), trend_forecaster=AutoETS(model="AZN"),
               stl_kwargs=evaluation.STL_JUMPS).fit(y[:m.fit_end - m.start])
  h = np.array(seasonal.horizons)
  np.testing.assert_allclose(evaluation.mstl_forecasts(seasonal, m, [m.fit_end - 1])[0],
                             model.predict(h=h.max())["mean"][h - 1], rtol=1e-9)
  adjusted = y - m.seasonal
  for e in seasonal.val.end_index[[0, 7, 100]]:
    expected = (model.trend_forecaster.forward(y=adjusted[:e + 1 - m.start], h=h.max())["mean"]
                [h - 1] + m.seasonal[e + h - m.start])
    np.testing.assert_allclose(evaluation.mstl_forecasts(seasonal, m, [e])[0], expected,
                               rtol=1e-9)


def test_mstl_has_no_forecast_from_inside_its_fit(seasonal, seasonal_mstl):
  fitted = evaluation.fit_baselines(seasonal, gbm=False)._replace(mstl=seasonal_mstl)
  assert np.isnan(evaluation.baselines(seasonal, "train", fitted)["mstl"]).all()
  assert not np.isnan(evaluation.baselines(seasonal, "val", fitted)["mstl"]).any()


def test_mstl_fits_only_the_last_days_of_training(seasonal):
  m = evaluation.fit_mstl(seasonal, days=10)   # 240 hours: two days fit, two weeks do not
  assert m.seasons == (24,) and m.start == m.fit_end - 240
  assert evaluation.fit_mstl(seasonal, days=1) is None


def test_too_little_training_gives_mstl_no_windows():
  ds = data.make_dataset(series(np.arange(400) % 20, capacity=50.0),
                         data.WindowSpec(window=3, horizons=(1, 2)))   # 280 training bins
  results = evaluation.report(ds, fitted=evaluation.fit_baselines(ds, gbm=False))
  assert results["splits"]["val"]["mstl"] == {"mae": [None, None], "mae_pct": [None, None],
                                              "n_windows": 0}
  assert "mstl" in evaluation.format_table(results)


def test_mstl_of_a_training_split_without_a_visitor():
  """A constant training series: statsforecast then sets ETS(A,N,N) with alpha 0.9999 (no
  optimisation), whose forecast is the last reading (the seasons are 0)."""
  values = np.r_[np.zeros(2500), np.arange(500) % 7]
  ds = data.make_dataset(series(values, capacity=50.0), data.WindowSpec(window=3, horizons=(1, 2)))
  m = evaluation.fit_mstl(ds)
  assert m.method == "ETS(A,N,N)"
  forecasts = evaluation.mstl_forecasts(ds, m, ds.val.end_index)
  np.testing.assert_allclose(forecasts, ds.val.window_people[:, [-1, -1]], atol=1e-3)
  assert forecasts.max() > 5


def test_gaps_are_filled_from_a_week_or_a_day_earlier():
  day = 4
  v = np.arange(40, dtype=np.float64)
  v[[2, 5, 30, 31, 39]] = np.nan
  filled = evaluation.filled(v, day)
  assert filled[31] == 3 and filled[39] == 11   # a week (28 bins) earlier
  assert filled[30] == 26                        # a week earlier is a gap too: a day earlier
  assert filled[5] == 1                          # a day earlier
  assert filled[2] == 2                          # neither: between its neighbours 1 and 3
  assert not np.isnan(filled).any()


def test_without_statsforecast_mstl_is_skipped_with_a_warning(monkeypatch, seasonal):
  monkeypatch.setitem(sys.modules, "statsforecast.models", None)
  monkeypatch.setitem(sys.modules, "statsforecast.ets", None)
  with pytest.warns(UserWarning, match="mstl skipped: statsforecast cannot be imported"):
    fitted = evaluation.fit_baselines(seasonal, gbm=False)
  assert "mstl" not in evaluation.baselines(seasonal, "val", fitted)


def test_importing_the_evaluation_loads_no_statsforecast():
  code = "import sys, rnn_jax.evaluation; sys.exit('statsforecast' in sys.modules)"
  assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0

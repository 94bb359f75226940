"""rnn_jax.evaluation.baselines: MAE, baselines and the results table, on series small enough to
check by hand."""
from __future__ import annotations

import json

import numpy as np
import pytest

from rnn_jax import data, evaluation
from evaluation_helpers import series


@pytest.fixture(scope="module")
def ramp():
  """v_i = i people on a 10-minute grid of 3000 bins: every baseline's error is known."""
  return data.make_dataset(series(np.arange(3000), capacity=3000.0),
                           data.WindowSpec(window=4, horizons=(1, 3)))


@pytest.fixture(scope="module")
def ramp_fitted(ramp):
  return evaluation.fit_baselines(ramp, gbm_max_iter=20)


def test_mae_ignores_windows_without_a_prediction():
  pred = np.array([[1.0, 2.0], [3.0, np.nan], [0.0, 0.0]])
  target = np.array([[2.0, 2.0], [3.0, 5.0], [1.0, -3.0]])
  m = evaluation.mae(pred, target)
  np.testing.assert_allclose(m.mae, [1.0, 1.5])
  assert m.n_windows == 2
  empty = evaluation.mae(np.full((2, 1), np.nan), np.zeros((2, 1)))
  assert empty.n_windows == 0 and np.isnan(empty.mae).all()
  with pytest.raises(ValueError, match="shape"):
    evaluation.mae(np.zeros((2, 2)), np.zeros((2, 3)))


def test_baselines_on_a_ramp_have_the_errors_computed_by_hand(ramp, ramp_fitted):
  # splits of 3000 bins: train [0, 2100), val [2100, 2550), test [2550, 3000);
  # a window needs 4 + 3 bins, so val has 450 - 6 = 444 windows, ending at 2103 .. 2546.
  results = evaluation.report(ramp, fitted=ramp_fitted)
  val = results["splits"]["val"]
  assert val["persistence"]["mae"] == [1.0, 3.0]          # target i + h, last reading i
  assert val["persistence"]["n_windows"] == 444
  assert val["seasonal_naive_day"]["mae"] == [144.0, 144.0]
  assert val["seasonal_naive_week"]["mae"] == [1008.0, 1008.0]
  assert val["seasonal_naive_week"]["n_windows"] == 444    # 2103 + 1 - 1008 >= 0
  np.testing.assert_allclose(val["persistence"]["mae_pct"], [100 / 3000, 300 / 3000])
  # ridge can write the ramp's rule (mean of the window + a constant) exactly
  assert max(val["ridge"]["mae"]) < 0.01
  assert set(val) == {"persistence", "seasonal_naive_day", "seasonal_naive_week", "ridge", "gbm",
                      "gbm_median", "mstl"}
  assert set(results["baseline_intervals"]["val"]) == {"gbm_quantile"}


def test_seasonal_baselines_count_only_windows_with_an_earlier_reading():
  # 1 week + 600 bins; the week-earlier reading exists only for the last 600 bins' targets
  n = 1008 + 600
  ds = data.make_dataset(series(np.arange(n) % 50, capacity=100.0),
                         data.WindowSpec(window=2, horizons=(1,), splits=(0.5, 0.25, 0.25)))
  preds = evaluation.baselines(ds, "val", evaluation.fit_baselines(ds, gbm=False))
  week = preds["seasonal_naive_week"]
  lo, hi = ds.val.bounds
  expected_rows = (ds.val.end_index + 1 - 1008) >= 0
  np.testing.assert_array_equal(~np.isnan(week[:, 0]), expected_rows)
  m = evaluation.mae(week, ds.val.target_people)
  assert m.n_windows == expected_rows.sum() > 0
  # the series repeats every 50 bins and 1008 = 20 * 50 + 8: the week-earlier value is off by 8
  np.testing.assert_allclose(
      m.mae, np.abs(((ds.val.end_index[expected_rows] + 1) % 50)
                    - ((ds.val.end_index[expected_rows] + 1 - 1008) % 50)).mean())


def test_model_predictions_are_reported_on_the_same_windows(ramp, ramp_fitted):
  perfect = {s: ramp[s].target_people.copy() for s in ("val", "test")}
  results = evaluation.report(ramp, perfect, fitted=ramp_fitted)
  json.dumps(results, allow_nan=False)
  for split in ("val", "test"):
    entry = results["splits"][split]["model"]
    assert entry["mae"] == [0.0, 0.0] and entry["n_windows"] == len(ramp[split])
    assert results["splits"][split]["seasonal_naive_day"]["model_mae_same_windows"] == [0.0, 0.0]
  assert results["horizon_minutes"] == [10, 30] and results["capacity"] == 3000.0
  with pytest.raises(ValueError, match="shape"):
    evaluation.report(ramp, {"val": perfect["val"][:, :1]}, fitted=ramp_fitted)


def test_results_are_json_safe_when_a_baseline_has_no_windows():
  ds = data.make_dataset(series(np.arange(400) % 20, capacity=50.0),
                         data.WindowSpec(window=3, horizons=(1, 2)))
  results = evaluation.report(ds, fitted=evaluation.fit_baselines(ds, gbm_max_iter=5))
  week = results["splits"]["test"]["seasonal_naive_week"]
  assert week["n_windows"] == 0 and week["mae"] == [None, None]
  json.dumps(results, allow_nan=False)
  table = evaluation.format_table(results)
  assert "seasonal_naive_week" in table and "+20 min" in table


def test_calendar_features_reach_the_baselines():
  values = np.arange(2000) % 144
  spec = data.WindowSpec(window=6, horizons=(1, 2), features=("occupancy", "calendar"))
  ds = data.make_dataset(series(values, capacity=200.0), spec)
  x = evaluation.features(ds, ds.train)
  assert x.shape == (len(ds.train), 6 + 4)
  np.testing.assert_allclose(x[:, 6:], ds.grid.calendar()[ds.train.end_index])
  fitted = evaluation.fit_baselines(ds, gbm_max_iter=5)
  assert fitted.ridge.coef_.shape == (2, 10)
  assert all(m.n_features_in_ == 10 for m in fitted.gbm)


def test_gbm_is_deterministic_and_fitted_on_train_only(ramp, ramp_fitted):
  a = evaluation.baselines(ramp, "test", ramp_fitted)["gbm"]
  b = evaluation.baselines(ramp, "test", evaluation.fit_baselines(ramp, gbm_max_iter=20))["gbm"]
  np.testing.assert_array_equal(a, b)
  # trees cannot extrapolate: on the ramp's test split they stay near the training maximum
  assert a.max() <= ramp.train.target_people.max() + 1e-9
  assert (a >= 0).all() and (a <= ramp.capacity).all()


@pytest.mark.parametrize("h,window,accuracy", [(3, 1, 1.0), (1, 3, 0.0)])
def test_level_baselines_by_hand(h, window, accuracy):
  # 0, 10, 20, 0, 10, 20, ...: 630 training bins and 627 training windows (window + h = 4), so
  # each value is a third of the training targets and the tertiles put one value in each level.
  # Three steps ahead the reading repeats (persistence and ridge are always right); one step
  # ahead it never keeps its level (persistence is always wrong).
  ds = data.make_dataset(series((np.arange(900) % 3) * 10.0, capacity=30.0),
                         data.WindowSpec(window=window, horizons=(1, 3), task="levels",
                                         level_horizon=h))
  assert ds.tertiles[0] < 10 <= ds.tertiles[1] < 20
  results = evaluation.report(ds, {"val": np.eye(3)[ds.val.levels], "test": ds.test.levels})
  for split in ("val", "test"):
    entries = results["splits"][split]
    assert entries["model"]["accuracy"] == 1.0 and entries["model"]["macro_f1"] == 1.0
    assert entries["persistence"]["accuracy"] == accuracy
    assert entries["persistence"]["macro_f1"] == accuracy
    if h == 3:
      assert entries["ridge_threshold"]["accuracy"] == 1.0
    assert entries["persistence"]["n_windows"] == len(ds[split])
  assert set(results["splits"]["val"]) == {"model", "persistence", "ridge_threshold"}
  json.dumps(results, allow_nan=False)
  table = evaluation.format_table(results)
  assert f"levels at +{10 * h} min" in table and "ridge_threshold" in table


def test_format_table_shows_every_method_and_horizon(ramp, ramp_fitted):
  results = evaluation.report(ramp, {"val": ramp.val.target_people, "test": ramp.test.target_people},
                            fitted=ramp_fitted)
  table = evaluation.format_table(results)
  lines = table.splitlines()
  assert "VAL" in lines[1] and "TEST" in lines[1]
  assert lines[2].count("+10 min") == 2 and lines[2].count("+30 min") == 2
  rows = {line.split()[0]: line for line in lines[3:]}
  assert list(rows) == list(evaluation.HORIZON_METHODS)
  assert "1.00 (0.0%)" in rows["persistence"] and "3.00 (0.1%)" in rows["persistence"]
  assert "0.00 (0.0%)" in rows["model"]


def test_a_report_from_precomputed_baseline_predictions_is_the_same_report(ramp, ramp_fitted):
  """What occupancy.evaluate does for every model of an ensemble: the baselines predicted once
  and handed to each report give the report that predicts them itself."""
  model = {"val": ramp.val.target_people + 1.0, "test": ramp.test.target_people - 2.0}
  base = {split: evaluation.baselines(ramp, split, ramp_fitted) for split in ("val", "test")}
  assert (evaluation.report(ramp, model, baseline_predictions=base)
          == evaluation.report(ramp, model, fitted=ramp_fitted))

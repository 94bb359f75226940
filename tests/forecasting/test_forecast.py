"""Forecast times in the series' local time (rnn_jax.forecasting.forecast.local_time), and the
forecast of a run with quantile outputs: the median and the CQR interval per horizon."""
from __future__ import annotations

import dataclasses
import json
import shutil

import jax
import numpy as np
import pytest

from rnn_jax import data
from rnn_jax.core import model
from rnn_jax.data import WindowSpec
from rnn_jax.forecasting import forecast, occupancy
from conftest import load_script, unfinished_copy


def test_named_zone_follows_daylight_saving():
  readings = dataclasses.replace(data.synthetic_readings(days=8), timezone="Europe/Berlin")
  times = np.array(["2024-03-30T23:50", "2024-03-31T01:10", "2024-10-27T00:30",
                    "2024-10-27T01:30"], "datetime64[ns]")
  local, zone = forecast.local_time(times, readings)
  assert zone == "Europe/Berlin"
  # CET (+1) before 01:00 UTC on 31 March, CEST (+2) after; back to CET at 01:00 UTC on 27 Oct
  assert local == ["2024-03-31 00:50", "2024-03-31 03:10", "2024-10-27 02:30",
                   "2024-10-27 02:30"]


def test_without_a_zone_the_newest_readings_offset_is_used():
  base = data.synthetic_readings(days=8)
  offsets = np.zeros(len(base), np.int64)
  offsets[-1] = -7 * 60
  readings = dataclasses.replace(base, local_offset_minutes=offsets)
  local, zone = forecast.local_time(np.array(["2017-03-19T02:20"], "datetime64[ns]"), readings)
  assert (local, zone) == (["2017-03-18 19:20"], "UTC-07:00")
  offsets[-1] = 5 * 60 + 30
  local, zone = forecast.local_time(np.array(["2017-03-19T02:20"], "datetime64[ns]"), readings)
  assert (local, zone) == (["2017-03-19 07:50"], "UTC+05:30")
  assert forecast.local_time(np.array(["2017-03-19T02:20"], "datetime64[ns]"), base) == (
      ["2017-03-19 02:20"], "UTC")


def test_forecast_of_a_quantile_run_is_the_median_with_the_cqr_interval(pinball_run):
  """A run trained with --loss pinball forecasts, per horizon, the median of its rearranged
  quantile outputs (averaged over its models; rounded to whole people, as the synthetic gym
  counts them) and the CQR interval calibrated on val and adapted
  over test: the band between the lower and upper quantile, widened by the q that ACI reached
  once every test target was known, clipped to [0, capacity]."""
  out, result = pinball_run
  fc = forecast.forecast(out, occupancy.DataSource())
  window = data.newest_window(data.synthetic_readings(), WindowSpec(), result["dataset"].capacity)
  z = np.asarray(jax.vmap(model.predict, in_axes=(0, None))(result["fit"].params, window.xs))
  bands = np.sort(z[:, 0].reshape(2, 3, 3), axis=-1).mean(0)        # [H, 3]
  capacity = fc["capacity"]
  q = occupancy.online_q(result["dataset"], occupancy.quantile_predictions(
      result["dataset"], result["fit"].params))[1]
  static = json.loads((out / "results.json").read_text())["splits"]["val"]["model"]["cqr"]["q"]
  assert not np.allclose(q, static)                  # the test split moved it
  assert fc["models"] == 2 and fc["interval_method"] == "cqr"
  for i, f in enumerate(fc["forecasts"]):
    assert f["value"] == np.round(bands[i, 1] * capacity)
    assert f["fraction"] == pytest.approx(f["value"] / capacity, rel=1e-12)
    lo, hi = np.clip([bands[i, 0] * capacity - q[i], bands[i, 2] * capacity + q[i]], 0, capacity)
    assert f["interval"] == {"level": 0.8, "low": pytest.approx(lo, rel=1e-5, abs=1e-6),
                             "high": pytest.approx(hi, rel=1e-5)}
  text = forecast.forecast_text(out)
  lines = text.splitlines()
  assert "the mean of 2 models" in lines[0] and len(lines) == 4
  for line, f in zip(lines[1:], fc["forecasts"]):
    iv = f["interval"]
    assert line.endswith(f": {f['value']:.0f} people (80% CQR: {iv['low']:.0f}-{iv['high']:.0f}), "
                         f"{100 * f['fraction']:.0f}% of capacity"), line
  forecast_script = load_script("forecast.py")
  assert forecast_script.main(["--run", str(out)]) == 0


def test_forecast_of_a_quantile_run_without_results_has_no_interval(pinball_run, tmp_path):
  out, _ = pinball_run
  partial = unfinished_copy(out, tmp_path)
  fc = forecast.forecast(partial, occupancy.DataSource())
  assert "interval_method" not in fc and all("interval" not in f for f in fc["forecasts"])
  assert "no interval" in forecast.forecast_text(partial)



def test_a_quantile_run_without_the_online_interval_uses_val_calibration(pinball_run, tmp_path):
  """results.json of a run from before the online adaptation: the CQR q calibrated on val."""
  out, result = pinball_run
  old = tmp_path / "old"
  shutil.copytree(out, old)
  results = json.loads((old / "results.json").read_text())
  del results["splits"]["test"]["model"]["cqr_online"]
  (old / "results.json").write_text(json.dumps(results))
  q = results["splits"]["val"]["model"]["cqr"]["q"]
  fc = forecast.forecast(old, occupancy.DataSource())
  window = data.newest_window(data.synthetic_readings(), WindowSpec(), result["dataset"].capacity)
  z = np.asarray(jax.vmap(model.predict, in_axes=(0, None))(result["fit"].params, window.xs))
  bands, capacity = np.sort(z[:, 0].reshape(2, 3, 3), axis=-1).mean(0), fc["capacity"]
  assert fc["interval_method"] == "cqr"
  for i, f in enumerate(fc["forecasts"]):
    lo, hi = np.clip([bands[i, 0] * capacity - q[i], bands[i, 2] * capacity + q[i]], 0, capacity)
    assert f["interval"] == {"level": 0.8, "low": pytest.approx(lo, rel=1e-5, abs=1e-6),
                             "high": pytest.approx(hi, rel=1e-5)}

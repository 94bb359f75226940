"""Forecast times in the series' local time (rnn_jax.forecasting.forecast.local_time)."""
from __future__ import annotations

import dataclasses

import numpy as np

from rnn_jax import data
from rnn_jax.forecasting import forecast


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

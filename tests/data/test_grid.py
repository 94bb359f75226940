"""rnn_jax.data.grid: bins, interpolation of short runs, gaps, calendar features."""
from __future__ import annotations

import numpy as np
import pytest

from rnn_jax import data
from rnn_jax.common.errors import InputError
from data_helpers import GENERIC, readings_from, write


def test_grid_averages_bins_interpolates_short_runs_and_keeps_long_gaps(tmp_path):
  rows = [("00:01", 2), ("00:03", 4), ("00:09:59", 6),  # bin 0: mean 4
          ("00:12", 10),                                # bin 1
          # bins 2, 3 empty: a run of 2 <= max_gap, interpolated 10 -> 40
          ("00:45", 40),                                # bin 4
          # bins 5, 6, 7 empty: a run of 3 > max_gap, a gap
          ("01:21", 8), ("01:29", 12)]                  # bin 8: mean 10
  content = "time,people\n" + "".join(f"2021-01-01 {t},{v}\n" for t, v in rows)
  grid = data.to_grid(data.read_csv(write(tmp_path, content), **GENERIC), 10, max_gap=2)
  np.testing.assert_allclose(grid.values, [4, 10, 20, 30, 40, np.nan, np.nan, np.nan, 10])
  np.testing.assert_array_equal(grid.counts, [3, 1, 0, 0, 1, 0, 0, 0, 2])
  np.testing.assert_array_equal(grid.interpolated, [0, 0, 1, 1, 0, 0, 0, 0, 0])
  assert grid.times[0] == np.datetime64("2021-01-01T00:00", "ns")
  grid0 = data.to_grid(data.read_csv(write(tmp_path, content), **GENERIC), 10, max_gap=0)
  assert np.isnan(grid0.values[[2, 3]]).all()


def test_grid_bins_align_to_the_epoch_and_calendar_features():
  r = readings_from(["2024-01-01T06:07", "2024-01-01T06:17"], [1, 2])  # a Monday
  grid = data.to_grid(r, 10, 2)
  assert grid.times[0] == np.datetime64("2024-01-01T06:00", "ns")
  cal = grid.calendar()
  np.testing.assert_allclose(cal[0], [1, 0, np.sin(2 * np.pi * 0.25 / 7),
                                      np.cos(2 * np.pi * 0.25 / 7)], atol=1e-12)


@pytest.mark.parametrize("kwargs,fragment", [
    (dict(step_minutes=0), "--step-minutes"), (dict(step_minutes=7), "divisor of 1440"),
    (dict(max_gap=-1), "--max-gap"), (dict(max_gap=1.5), "--max-gap")])
def test_grid_arguments_are_checked(kwargs, fragment):
  with pytest.raises(InputError, match=fragment):
    data.to_grid(readings_from(["2024-01-01T06:07"], [1]), **kwargs)

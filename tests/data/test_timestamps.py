"""rnn_jax.data.timestamps (through read_csv): offsets, the fall-back repair, time zones, formats."""
from __future__ import annotations

import numpy as np
import pytest

from rnn_jax import data
from rnn_jax.common.errors import InputError
from data_helpers import GENERIC, NS_MIN, ramp_csv, write


def test_offsets_are_converted_to_utc_and_give_local_time(tmp_path):
  content = "time,people\n2021-06-01 10:00:00+02:00,1\n2021-06-01 08:10:00Z,2\n"
  r = data.read_csv(write(tmp_path, content), **GENERIC)
  np.testing.assert_array_equal(r.time_utc, np.array(["2021-06-01T08:00", "2021-06-01T08:10"],
                                                     "datetime64[ns]"))
  np.testing.assert_array_equal(r.local_offset_minutes, [120, 0])


def fall_back_csv(early: bool, gap: bool = False) -> str:
  """A US fall-back night (2016-11-06, clocks 02:00 PDT -> 01:00 PST), readings every 10 min.

  early=True labels the first pass through 01:xx as -08:00, as the campus gym file does.
  """
  rows = []
  for h, m, off in ([(0, m, "-07:00") for m in (30, 40, 50)]
                    + [(1, m, "-08:00" if early else "-07:00") for m in range(0, 60, 10)]
                    + [(1, m, "-08:00") for m in range(0, 60, 10)]
                    + [(2, m, "-08:00") for m in (0, 10)]):
    rows.append(f"2016-11-06 {h:02d}:{m:02d}:12{off},{h}")
  if gap:
    rows = rows[:4] + rows[-2:]  # an outage across the repeated hour
  return "time,people\n" + "\n".join(rows) + "\n"


@pytest.mark.parametrize("early", [True, False], ids=["early-switch", "correct-switch"])
def test_fall_back_night_has_no_backwards_step_or_doubled_hour(tmp_path, early):
  r = data.read_csv(write(tmp_path, fall_back_csv(early)), **GENERIC)
  assert r.n_offsets_repaired == (6 if early else 0)
  assert r.n_out_of_order == 0
  step = np.diff(r.time_utc.astype(np.int64))
  np.testing.assert_array_equal(step, np.full(len(step), 10 * NS_MIN))  # 07:30 .. 10:10 UTC
  assert r.time_utc[0] == np.datetime64("2016-11-06T07:30:12", "ns")
  np.testing.assert_array_equal(r.local_offset_minutes, [-420] * 9 + [-480] * 8)


def test_fall_back_without_evidence_keeps_labels(tmp_path):
  r = data.read_csv(write(tmp_path, fall_back_csv(True, gap=True)), **GENERIC)
  assert r.n_offsets_repaired == 0 and r.n_out_of_order == 0
  assert r.time_utc[3] == np.datetime64("2016-11-06T09:00:12", "ns")  # 01:00:12-08:00 as given


def test_naive_times_in_a_timezone_across_fall_back(tmp_path):
  walls = ["01:50", "02:10", "02:30", "02:50", "02:10", "02:30", "02:50", "03:10"]
  content = "time,people\n" + "".join(f"2021-10-31 {w},1\n" for w in walls)
  r = data.read_csv(write(tmp_path, content), **GENERIC, timezone="Europe/Berlin")
  expected = np.datetime64("2021-10-30T23:50", "ns") + np.arange(8) * np.timedelta64(20, "m")
  np.testing.assert_array_equal(r.time_utc, expected)
  np.testing.assert_array_equal(r.local_offset_minutes, [120] * 4 + [60] * 4)
  grid = data.to_grid(r, step_minutes=10)
  local = grid.local_times.astype("datetime64[m]").astype(str)
  assert local[0] == "2021-10-31T01:50" and local[-1] == "2021-10-31T03:10"
  assert list(local[[4, 10]]) == ["2021-10-31T02:30", "2021-10-31T02:30"]


@pytest.mark.parametrize("fmt", ["%d.%m.%Y %H:%M", "%m/%d/%Y %H:%M", "%d %b %Y %H:%M"])
def test_non_iso_timestamps_use_one_format_with_day_and_month_settled(tmp_path, fmt):
  # 1..2 March: "01.03.2021" could be 3 January; the 10-minute series settles it
  t0 = np.datetime64("2021-03-01T00:00")
  times = [t0 + np.timedelta64(10 * i, "m") for i in range(200)]
  content = "time,people\n" + "".join(f"{t.astype(object):{fmt}},1\n" for t in times)
  r = data.read_csv(write(tmp_path, content), **GENERIC)
  np.testing.assert_array_equal(r.time_utc, np.array(times, "datetime64[ns]"))
  mixed = content.replace(f"{times[5].astype(object):{fmt}}", "2021-03-01 00:50", 1)
  r = data.read_csv(write(tmp_path, mixed), **GENERIC)  # ISO rows are always welcome
  np.testing.assert_array_equal(r.time_utc, np.array(times, "datetime64[ns]"))
  other = content.replace(f"{times[7].astype(object):{fmt}}", "1 March 2021 at 01:10", 1)
  with pytest.raises(InputError, match="line 9: timestamp '1 March 2021 at 01:10'"):
    data.read_csv(write(tmp_path, other), **GENERIC)


def test_naive_times_without_timezone_are_utc(tmp_path):
  r = data.read_csv(write(tmp_path, ramp_csv(3)), **GENERIC)
  assert r.timezone is None
  assert r.time_utc[0] == np.datetime64("2021-03-01T00:00", "ns")
  np.testing.assert_array_equal(r.local_offset_minutes, 0)

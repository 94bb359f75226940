"""rnn_jax.data: CSV reading and its one-line errors, the grid, windows, fitting on train only."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from rnn_jax import data
from rnn_jax.common.errors import InputError

NS_MIN = 60 * 10**9


def write(tmp_path, content, name="readings.csv"):
  path = tmp_path / name
  path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
  return path


def ramp_csv(n=40, step_min=10, start="2021-03-01 00:00", value=lambda i: i % 7):
  t0 = np.datetime64(start)
  rows = [f"{t0 + np.timedelta64(i * step_min, 'm')},{value(i)}" for i in range(n)]
  return "time,people\n" + "\n".join(rows) + "\n"


def readings_from(times, values, capacity=100.0):
  """Readings built directly (no file): times as datetime64 strings or ns ints (UTC)."""
  t = np.asarray(times, "datetime64[ns]")
  return data.Readings(path="<test>", time_utc=t, value=np.asarray(values, np.float64),
                       capacity=capacity, timezone=None,
                       local_offset_minutes=np.zeros(len(t), np.int64), sha256=None,
                       line=np.zeros(len(t), np.int64))


GENERIC = dict(time_column="time", value_column="people", capacity=100)


# --------------------------------------------------------------------------------------------
# Bad input: every case gives InputError with one line naming the file and what was expected.

BAD_FILES = [
    # id, file bytes (None: do not create), read_csv kwargs, fragments the message must contain
    ("empty-file", b"", GENERIC, ["is empty"]),
    ("blank-lines-only", b"\n  \n\n", GENERIC, ["is empty"]),
    ("header-only", b"time,people\n", GENERIC, ["header", "no data rows"]),
    ("not-utf8", "time,people\n2021-01-01 00:00,1\n2021-01-01 00:10,1\xe9\n".encode("latin-1"),
     GENERIC, ["line 3", "not UTF-8"]),
    ("binary-garbage", bytes(range(256)) * 4, GENERIC, ["binary"]),
    ("control-chars", b"time,people\n2021-01-01 00:00,1\x01\x02\n", GENERIC, ["line 2", "binary"]),
    ("columns-absent-no-gym", ramp_csv().replace("time,people", "when,count").encode(), {},
     ["not the campus gym format", "found columns 'when', 'count'"]),
    ("time-column-absent", ramp_csv().encode(), dict(GENERIC, time_column="stamp"),
     ["no column 'stamp' (time_column)", "found columns 'time', 'people'"]),
    ("value-column-absent", ramp_csv().encode(), dict(GENERIC, value_column="n"),
     ["no column 'n' (value_column)"]),
    ("capacity-column-absent", ramp_csv().encode(),
     dict(time_column="time", value_column="people", capacity_column="cap"),
     ["no column 'cap' (capacity_column)"]),
    ("duplicate-column", b"time,people,people\n2021-01-01 00:00,1,2\n", GENERIC,
     ["line 1", "'people' appears twice"]),
    ("non-numeric", b"time,people\n2021-01-01 00:00,1\n2021-01-01 00:10,lots\n", GENERIC,
     ["line 3", "'lots'", "not a number"]),
    ("negative", b"time,people\n2021-01-01 00:00,1\n2021-01-01 00:10,2\n2021-01-01 00:20,-3\n",
     GENERIC, ["line 4", "negative"]),
    ("nan", b"time,people\n2021-01-01 00:00,NaN\n", GENERIC, ["line 2", "is NaN"]),
    ("infinite", b"time,people\n2021-01-01 00:00,1\n2021-01-01 00:10,inf\n", GENERIC,
     ["line 3", "infinite"]),
    ("bad-timestamp", b"time,people\n2021-01-01 00:00,1\n2021-01-01 00:10,1\nyesterday,1\n",
     GENERIC, ["line 4", "'yesterday'", "not a date and time"]),
    ("impossible-date", b"time,people\n2021-02-30 00:00,1\n", GENERIC, ["line 2", "timestamp"]),
    ("empty-timestamp", b"time,people\n2021-01-01 00:00,1\n,4\n", GENERIC,
     ["line 3", "empty timestamp"]),
    ("mixed-naive-aware",
     b"time,people\n2021-01-01 00:00+01:00,1\n2021-01-01 00:10+01:00,1\n2021-01-01 00:20,1\n",
     GENERIC, ["line 4", "no UTC offset", "line 2"]),
    ("above-capacity", b"time,people\n2021-01-01 00:00,1\n2021-01-01 00:10,101\n", GENERIC,
     ["line 3", "above", "capacity 100"]),
    ("above-row-capacity", b"time,people,cap\n2021-01-01 00:00,1,50\n2021-01-01 00:10,51,50\n",
     dict(time_column="time", value_column="people", capacity_column="cap"),
     ["line 3", "above", "'cap' 50"]),
    ("row-capacity-zero", b"time,people,cap\n2021-01-01 00:00,0,50\n2021-01-01 00:10,0,0\n",
     dict(time_column="time", value_column="people", capacity_column="cap"),
     ["line 3", "capacity", "zero"]),
    ("too-many-fields", b"time,people\n2021-01-01 00:00,1\n2021-01-01 00:10,1,7\n", GENERIC,
     ["line 3", "3 fields", "has 2"]),
    ("truncated-line", b"time,people\n2021-01-01 00:00,1\n2021-01-01 00:10\n", GENERIC,
     ["line 3", "1 fields"]),
    ("stray-quote", b'time,people\n2021-01-01 00:00,1\n"2021-01-01 00:10,1\n', GENERIC,
     ["line"]),
    ("no-capacity-generic", ramp_csv().encode(), dict(time_column="time", value_column="people"),
     ["no capacity", "capacity_column"]),
    ("only-value-column-named", ramp_csv().encode(), dict(value_column="people", capacity=10),
     ["time_column is missing"]),
    ("all-readings-empty", b"time,people\n2021-01-01 00:00,\n2021-01-01 00:10,\n", GENERIC,
     ["no readings", "all 2 data rows"]),
    ("semicolons", b"time;people\n2021-01-01 00:00;1\n", GENERIC,
     ["no column 'time'", "separated by something other than commas"]),
    ("offset-out-of-range", b"time,people\n2021-01-01 00:00+19:00,1\n", GENERIC,
     ["line 2", "offset"]),
    ("nonexistent-local-time", b"time,people\n2021-03-28 01:50,1\n2021-03-28 02:10,1\n",
     dict(GENERIC, timezone="Europe/Berlin"), ["line 3", "does not exist in Europe/Berlin"]),
]


@pytest.mark.parametrize("content,kwargs,fragments", [c[1:] for c in BAD_FILES],
                         ids=[c[0] for c in BAD_FILES])
def test_bad_file_gives_one_line_input_error(tmp_path, content, kwargs, fragments):
  path = write(tmp_path, content)
  with pytest.raises(InputError) as info:
    data.read_csv(path, **kwargs)
  message = str(info.value)
  assert "\n" not in message
  assert str(path) in message
  for fragment in fragments:
    assert fragment in message, message


def test_missing_file_and_directory(tmp_path):
  with pytest.raises(InputError, match=r"missing\.csv: no such file"):
    data.read_csv(tmp_path / "missing.csv", **GENERIC)
  with pytest.raises(InputError, match="is a directory"):
    data.read_csv(tmp_path, **GENERIC)


BAD_ARGUMENTS = [
    ("capacity-zero", dict(GENERIC, capacity=0), "capacity: expected a finite number of people > 0"),
    ("capacity-negative", dict(GENERIC, capacity=-5), "capacity: expected a finite"),
    ("capacity-nan", dict(GENERIC, capacity=float("nan")), "capacity: expected a finite"),
    ("capacity-text", dict(GENERIC, capacity="many"), "capacity: expected a number"),
    ("capacity-and-column", dict(GENERIC, capacity_column="people"), "give one of them"),
    ("unknown-timezone", dict(GENERIC, timezone="Mars/Olympus_Mons"),
     "timezone: 'Mars/Olympus_Mons' is not an IANA time zone name"),
    ("same-column-twice", dict(GENERIC, value_column="time"), "two different columns"),
]


@pytest.mark.parametrize("kwargs,fragment", [c[1:] for c in BAD_ARGUMENTS],
                         ids=[c[0] for c in BAD_ARGUMENTS])
def test_bad_argument_names_it(tmp_path, kwargs, fragment):
  path = write(tmp_path, ramp_csv())
  with pytest.raises(InputError) as info:
    data.read_csv(path, **kwargs)
  assert fragment in str(info.value) and "\n" not in str(info.value)


def test_line_numbers_count_blank_lines_and_multiline_fields(tmp_path):
  content = ('time,people,note\n2021-01-01 00:00,1,x\n\n2021-01-01 00:10,1,"two\nlines"\n'
             "2021-01-01 00:20,oops,y\n")
  with pytest.raises(InputError, match="line 6: reading 'oops'"):
    data.read_csv(write(tmp_path, content), **GENERIC)


def test_earliest_problem_is_reported(tmp_path):
  content = "time,people\n2021-01-01 00:00,1\nsoon,1\n2021-01-01 00:20,-1\n"
  with pytest.raises(InputError, match="line 3: timestamp 'soon'"):
    data.read_csv(write(tmp_path, content), **GENERIC)


def test_empty_readings_are_skipped_and_counted(tmp_path):
  content = "time,people\n2021-01-01 00:00,1\n2021-01-01 00:10,\n\n2021-01-01 00:20,3\n"
  r = data.read_csv(write(tmp_path, content), **GENERIC)
  assert r.n_skipped_empty == 1
  np.testing.assert_array_equal(r.value, [1, 3])
  np.testing.assert_array_equal(r.line, [2, 5])


def test_reads_generic_csv_with_bom_and_capacity_column(tmp_path):
  content = "\ufeffpeople,time,cap\n3,2021-01-01T00:10:00Z,40\n2,2021-01-01T00:00:00Z,50\n"
  r = data.read_csv(write(tmp_path, content), time_column="time", value_column="people",
                    capacity_column="cap")
  assert r.capacity == 50.0 and r.format == "csv"
  np.testing.assert_array_equal(r.value, [2, 3])  # sorted by time
  assert r.n_out_of_order == 1
  assert r.time_utc[0] == np.datetime64("2021-01-01T00:00", "ns")
  assert len(r.sha256) == 64


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


# --------------------------------------------------------------------------------------------
# Damaged files: either what is valid loads, or one line of InputError, never anything else.

_VALID = ramp_csv(12, value=lambda i: i).encode()


@st.composite
def damaged(draw):
  content = bytearray(_VALID)
  for _ in range(draw(st.integers(1, 3))):
    kind = draw(st.sampled_from(["truncate", "quote", "bytes", "delete", "swap-columns"]))
    pos = draw(st.integers(0, max(len(content) - 1, 0)))
    if kind == "truncate":
      content = content[:pos]
    elif kind == "quote":
      content[pos:pos] = b'"'
    elif kind == "bytes":
      content[pos:pos] = draw(st.binary(min_size=1, max_size=6))
    elif kind == "delete":
      content[pos:pos + draw(st.integers(1, 8))] = b""
    else:
      lines = bytes(content).split(b"\n")
      content = bytearray(b"\n".join(b",".join(reversed(l.split(b","))) for l in lines))
  return bytes(content)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=damaged())
def test_damaged_files_load_or_fail_with_one_line(tmp_path, content):
  path = write(tmp_path, content, "damaged.csv")
  try:
    r = data.read_csv(path, **GENERIC)
  except InputError as err:
    assert "\n" not in str(err) and str(path) in str(err)
  else:
    assert len(r) >= 1 and np.isfinite(r.value).all() and (r.value >= 0).all()
    assert (np.diff(r.time_utc.astype(np.int64)) >= 0).all()


def test_shuffled_columns_load_the_same(tmp_path):
  lines = ramp_csv(12, value=lambda i: i).strip().split("\n")
  swapped = "\n".join(",".join(reversed(l.split(","))) for l in lines) + "\n"
  a = data.read_csv(write(tmp_path, ramp_csv(12, value=lambda i: i), "a.csv"), **GENERIC)
  b = data.read_csv(write(tmp_path, swapped, "b.csv"), **GENERIC)
  np.testing.assert_array_equal(a.time_utc, b.time_utc)
  np.testing.assert_array_equal(a.value, b.value)


# --------------------------------------------------------------------------------------------
# The grid


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
    (dict(step_minutes=0), "step_minutes"), (dict(step_minutes=7), "divisor of 1440"),
    (dict(max_gap=-1), "max_gap"), (dict(max_gap=1.5), "max_gap")])
def test_grid_arguments_are_checked(kwargs, fragment):
  with pytest.raises(InputError, match=fragment):
    data.to_grid(readings_from(["2024-01-01T06:07"], [1]), **kwargs)


# --------------------------------------------------------------------------------------------
# WindowSpec and make_dataset


@pytest.mark.parametrize("kwargs,fragment", [
    (dict(window=0), "window"), (dict(window=-3), "window"), (dict(window=2.5), "window"),
    (dict(horizons=(0,)), "horizons"), (dict(horizons=(1, -1)), "horizons"),
    (dict(horizons=()), "horizons"), (dict(horizons=(3, 3)), "horizons: expected distinct"),
    (dict(features=("occupancy", "weather")), "unknown name 'weather'"),
    (dict(features=("calendar",)), "features: expected 'occupancy'"),
    (dict(task="classes"), "task"), (dict(level_horizon=0), "level_horizon"),
    (dict(splits=(0.7, 0.3)), "splits"), (dict(splits=(0.7, 0.2, 0.2)), "splits"),
    (dict(splits=(0.8, 0.2, 0.0)), "splits"), (dict(step_minutes=0), "step_minutes"),
    (dict(max_gap=-1), "max_gap")])
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


# --------------------------------------------------------------------------------------------
# The built-in synthetic series


def test_synthetic_default_is_deterministic_per_seed():
  a, b, c = data.synthetic_readings(0), data.synthetic_readings(0), data.synthetic_readings(1)
  np.testing.assert_array_equal(a.time_utc, b.time_utc)
  np.testing.assert_array_equal(a.value, b.value)
  assert len(a) != len(c) or not np.array_equal(a.value, c.value)


def test_synthetic_default_has_rhythm_closures_jitter_and_gaps():
  r = data.synthetic_readings(0)
  assert r.capacity == 120.0 and r.value.max() <= 120 and r.path == "<synthetic>"
  assert (np.diff(r.time_utc.astype(np.int64)) >= 0).all()
  seconds = (r.time_utc.astype(np.int64) // 10**9) % 600
  assert len(np.unique(seconds)) > 50                       # jittered, irregular timestamps
  grid = data.to_grid(r)
  assert np.isnan(grid.values).sum() > 144                  # at least a day of gaps
  assert (grid.counts > 1).any()                            # bursts averaged
  local = grid.local_times
  hour = (local.astype("datetime64[h]").astype(np.int64)) % 24
  weekday = (local.astype("datetime64[D]").astype(np.int64) + 3) % 7
  v = grid.values
  at = lambda mask: np.nanmean(v[mask])
  assert at((hour == 3)) == 0                               # closed at night
  assert at((hour == 18) & (weekday < 5)) > 2 * at((hour == 18) & (weekday >= 5))
  daily = np.nansum(v[:len(v) // 144 * 144].reshape(-1, 144), axis=1)
  assert (daily == 0).sum() >= 1                            # closed days
  ds = data.make_dataset(r)
  assert len(ds.train) > 5000 and len(ds.val) > 1000 and len(ds.test) > 1000

"""rnn_jax.data.readings: read_csv, its one-line errors, and damaged files that load or fail."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from rnn_jax import data
from rnn_jax.common.errors import InputError
from data_helpers import GENERIC, ramp_csv, write


# --------------------------------------------------------------------------------------------
# Bad input: every case gives InputError with one line naming the file and what was expected.

STRICT = dict(GENERIC, strict=True)

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
    ("negative-strict",
     b"time,people\n2021-01-01 00:00,1\n2021-01-01 00:10,2\n2021-01-01 00:20,-3\n",
     STRICT, ["line 4", "'-3'", "negative", "expected a number >= 0", "without --strict"]),
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
    ("above-capacity-strict", b"time,people\n2021-01-01 00:00,1\n2021-01-01 00:10,101\n",
     STRICT, ["line 3", "above", "capacity 100", "without --strict"]),
    ("above-row-capacity-strict",
     b"time,people,cap\n2021-01-01 00:00,1,50\n2021-01-01 00:10,51,50\n",
     dict(time_column="time", value_column="people", capacity_column="cap", strict=True),
     ["line 3", "above", "'cap' 50"]),
    ("every-reading-a-fault", b"time,people\n2021-01-01 00:00,-1\n2021-01-01 00:10,-2\n",
     GENERIC, ["no readings left", "all 2 readings are sensor faults", "negative 2"]),
    ("row-capacity-zero", b"time,people,cap\n2021-01-01 00:00,0,50\n2021-01-01 00:10,0,0\n",
     dict(time_column="time", value_column="people", capacity_column="cap"),
     ["line 3", "capacity", "zero"]),
    ("too-many-fields", b"time,people\n2021-01-01 00:00,1\n2021-01-01 00:10,1,7\n", GENERIC,
     ["line 3", "3 fields", "has 2"]),
    ("truncated-line", b"time,people\n2021-01-01 00:00,1\n2021-01-01 00:10\n", GENERIC,
     ["line 3", "1 fields"]),
    ("stray-quote", b'time,people\n2021-01-01 00:00,1\n"2021-01-01 00:10,1\n', GENERIC,
     ["line"]),
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
    ("max-flat-hours-negative", dict(GENERIC, max_flat_hours=-1),
     "--max-flat-hours: expected a finite number >= 0 (0 = off), got -1"),
    ("strict-not-bool", dict(GENERIC, strict="yes"), "--strict: expected true or false"),
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


def test_generic_csv_without_capacity_has_it_fitted_on_the_training_split(tmp_path):
  """Any CSV works without --capacity; the largest training reading is the capacity
  (never a validation or test reading: here the peak of 90 is in the test split)."""
  values = lambda i: 90 if i == 390 else (i % 37) // 2   # noqa: E731
  path = write(tmp_path, ramp_csv(n=400, value=values))
  readings = data.read_csv(path, time_column="time", value_column="people")
  assert readings.capacity is None
  ds = data.make_dataset(readings, data.WindowSpec(window=4, horizons=(1,)))
  assert ds.capacity_fitted and ds.capacity == 18.0
  assert ds.test.target_people.max() == 90.0

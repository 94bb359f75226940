"""Helpers shared by the tests of rnn_jax.data: CSV files in tmp_path and Readings built directly."""
from __future__ import annotations

import numpy as np

from rnn_jax import data

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

"""Readings for the evaluation tests, made in memory."""
import numpy as np

from rnn_jax import data


def series(values, capacity, step_minutes=10):
  """``data.Readings`` of ``values`` (people) every ``step_minutes`` from 2024-01-01 UTC."""
  values = np.asarray(values, np.float64)
  t = np.datetime64("2024-01-01", "ns") + np.arange(len(values)) * np.timedelta64(step_minutes, "m")
  return data.Readings(path="<test>", time_utc=t, value=values, capacity=capacity, timezone=None,
                       local_offset_minutes=np.zeros(len(t), np.int64), sha256=None,
                       line=np.zeros(len(t), np.int64))

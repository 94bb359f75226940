"""rnn_jax.data.synthetic: the built-in synthetic gym."""
from __future__ import annotations

import numpy as np

from rnn_jax import data


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

"""conformal.online_quantiles: adaptive conformal inference (Gibbs and Candes 2021) over the test
split, each target used only once it is known; and the CQR interval it adapts."""
from __future__ import annotations

import math

import numpy as np
import pytest

from rnn_jax.evaluation import conformal


def reference(cal, scores, times, known_at, level, gamma):
  """ACI written the slow way: for every forecast, replay from the start every window whose
  target is known by then, in the order the targets became known."""
  cal = np.sort(cal, axis=0)
  m, (n, K) = cal.shape[0], scores.shape
  read = lambda a, k: (np.inf if math.ceil((m + 1) * (1 - a) - 1e-9) > m else
                       -np.inf if math.ceil((m + 1) * (1 - a) - 1e-9) < 1 else
                       cal[math.ceil((m + 1) * (1 - a) - 1e-9) - 1, k])
  q = np.full((n, K), np.nan)
  for k in range(K):
    for j in np.argsort(times, kind="stable"):
      alpha = 1 - level
      for i in np.argsort(known_at[:, k], kind="stable"):
        if known_at[i, k] <= times[j]:
          assert not np.isnan(q[i, k]), "a target known before its own forecast was made"
          alpha += gamma * (1 - level - float(scores[i, k] > q[i, k]))
      q[j, k] = read(alpha, k)
  return q


def shifted(n=400, m=300, seed=0):
  """Calibration scores N(0, 1); online scores whose spread doubles halfway (a shift); 10-minute
  forecasts at horizons of 1 and 6 steps, targets known 1 and 6 steps later."""
  rng = np.random.default_rng(seed)
  cal = rng.normal(size=(m, 2))
  scale = np.where(np.arange(n) < n // 2, 1.0, 2.0)[:, None]
  scores = rng.normal(size=(n, 2)) * scale
  times = np.datetime64("2024-01-01T00:00") + np.arange(n) * np.timedelta64(10, "m")
  known_at = times[:, None] + np.array([1, 6]) * np.timedelta64(10, "m")
  return cal, scores, times, known_at


def test_equals_the_slow_replay_with_delayed_targets():
  cal, scores, times, known_at = shifted()
  q, q_next = conformal.online_quantiles(cal, scores, times, known_at, 0.8, gamma=0.02)
  np.testing.assert_array_equal(q, reference(cal, scores, times, known_at, 0.8, 0.02))
  # q_next: after every target, as a forecast made after the last one is known
  later = np.r_[times, times[-1] + np.timedelta64(70, "m")]
  q_all, _ = conformal.online_quantiles(cal, np.r_[scores, [[0.0, 0.0]]], later,
                                        np.r_[known_at, [[later[-1] + np.timedelta64(1, "m")] * 2]],
                                        0.8, gamma=0.02)
  np.testing.assert_array_equal(q_next, q_all[-1])


def test_a_target_not_yet_known_changes_nothing():
  """The forecast at time j uses no target known after j: changing the scores of the windows
  whose targets are still unknown at j leaves q up to j unchanged, at the longer horizon too."""
  cal, scores, times, known_at = shifted()
  q, _ = conformal.online_quantiles(cal, scores, times, known_at, 0.8, gamma=0.05)
  j = 250
  changed = scores.copy()
  changed[j - 5:] += 10.0                  # targets at +6 steps of windows j-5.. come after j
  q2, _ = conformal.online_quantiles(cal, changed, times, known_at, 0.8, gamma=0.05)
  np.testing.assert_array_equal(q2[:j + 1, 1], q[:j + 1, 1])
  np.testing.assert_array_equal(q2[:j - 4, 0], q[:j - 4, 0])
  assert not np.array_equal(q2[j + 1:, 1], q[j + 1:, 1])   # ... and they count once known


def test_gamma_zero_is_split_conformal():
  cal, scores, times, known_at = shifted()
  q, q_next = conformal.online_quantiles(cal, scores, times, known_at, 0.8, gamma=0.0)
  np.testing.assert_array_equal(q, np.broadcast_to(conformal.quantiles(cal, 0.8), q.shape))
  np.testing.assert_array_equal(q_next, conformal.quantiles(cal, 0.8))


def test_coverage_recovers_under_a_shift():
  """Split conformal under-covers once the spread doubles; ACI's long-run miscoverage stays
  within (1 + gamma) / (gamma n) of 1 - level (Gibbs and Candes 2021, Proposition 4.1, here with
  targets known up to 6 steps late)."""
  cal, scores, times, known_at = shifted(n=6000, seed=1)
  static = (scores <= conformal.quantiles(cal, 0.8)).mean(axis=0)
  q, _ = conformal.online_quantiles(cal, scores, times, known_at, 0.8)
  online = (scores <= q).mean(axis=0)
  assert (static < 0.72).all()
  bound = (1 + conformal.ACI_GAMMA) / (conformal.ACI_GAMMA * len(scores)) + 6 / len(scores)
  assert (np.abs(online - 0.8) <= bound).all(), (online, bound)


def test_infinite_q_is_the_whole_range_or_the_middle():
  lo, hi = np.array([[2.0, 2.0]]), np.array([[4.0, 4.0]])
  l, h = conformal.cqr_intervals(lo, hi, np.array([[np.inf, -np.inf]]), 10.0)
  np.testing.assert_array_equal(l, [[0.0, 3.0]])
  np.testing.assert_array_equal(h, [[10.0, 3.0]])


def test_bad_shapes_are_refused():
  cal, scores, times, known_at = shifted()
  with pytest.raises(ValueError, match=r"expected \[m >= 1, K\], \[n, K\], \[n\] and \[n, K\]"):
    conformal.online_quantiles(cal[:, :1], scores, times, known_at, 0.8)
  with pytest.raises(ValueError, match="expected"):
    conformal.online_quantiles(cal, scores, times[:-1], known_at, 0.8)
  with pytest.raises(ValueError, match="known_at: every target must come after its forecast"):
    conformal.online_quantiles(cal, scores, times, np.c_[times, times], 0.8)
  with pytest.raises(ValueError, match="level"):
    conformal.online_quantiles(cal, scores, times, known_at, 1.0)

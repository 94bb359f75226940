"""Split-conformal intervals (rnn_jax.evaluation.conformal) on constructed examples whose
quantiles and coverage are known."""
from __future__ import annotations

import numpy as np
import pytest

from rnn_jax.evaluation import conformal


def test_quantile_is_the_finite_sample_rank():
  # n = 10 residuals 1..10 (shuffled); level 0.8: rank ceil(11 * 0.8) = 9 -> q = 9.
  # level 0.5: rank ceil(5.5) = 6 -> 6. level 0.9: rank ceil(9.9) = 10 -> 10; 0.95: rank 11 > n.
  r = np.random.default_rng(0).permutation(np.arange(1.0, 11.0))
  res = np.stack([r, 2 * r], axis=1)
  np.testing.assert_array_equal(conformal.quantiles(res, 0.8), [9.0, 18.0])
  np.testing.assert_array_equal(conformal.quantiles(res, 0.5), [6.0, 12.0])
  np.testing.assert_array_equal(conformal.quantiles(res, 0.9), [10.0, 20.0])
  assert np.isinf(conformal.quantiles(res, 0.95)).all()
  # (n + 1) * level an integer that floating point puts a ulp above (25 * 0.28 =
  # 7.000000000000001): n = 24, level 0.28 -> rank 7, not 8.
  np.testing.assert_array_equal(conformal.quantiles(np.arange(1.0, 25.0)[:, None], 0.28), [7.0])


def test_summary_counts_coverage_and_width_per_horizon():
  pred = np.array([[10.0, 10.0], [10.0, 10.0], [1.0, 10.0], [10.0, 10.0]])
  target = np.array([[12.0, 10.0], [13.0, 16.0], [0.0, 4.0], [7.0, 10.0]])
  q = np.array([2.0, 6.0])
  s = conformal.summary(pred, target, q, capacity=15.0, level=0.8)
  # horizon 0: intervals [8,12] [8,12] [0,3] (clipped at 0) [8,12]: 12, 0 in; 13, 7 out.
  # horizon 1: [4,15] (clipped at the capacity) everywhere: 10, 4, 10 in; 16 out.
  assert s["coverage"] == [0.5, 0.75]
  assert s["mean_width"] == pytest.approx([(4 + 4 + 3 + 4) / 4, 11.0])
  assert s["q"] == [2.0, 6.0] and s["level"] == 0.8


@pytest.mark.parametrize("level", [0.5, 0.8, 0.9])
def test_coverage_is_at_least_the_level_on_exchangeable_data(level):
  # Residuals drawn i.i.d.: averaged over many calibration/test draws the coverage lies in
  # [level, level + 1/(n+1)] (Lei et al. 2018, Theorem 2.2). 4000 draws: standard error
  # ~ 0.4/sqrt(4000 * 50) < 0.001.
  rng = np.random.default_rng(1)
  n, m, draws = 49, 50, 4000
  cov = []
  for _ in range(draws):
    cal = np.abs(rng.standard_t(3, size=(n, 1)))
    q = conformal.quantiles(cal, level)
    test = np.abs(rng.standard_t(3, size=(m, 1)))   # pred 0: the interval is [0, q]
    cov.append(conformal.summary(np.zeros((m, 1)), test, q, np.inf, level)["coverage"][0])
  mean = float(np.mean(cov))
  assert level - 0.005 <= mean <= level + 1 / (n + 1) + 0.005


@pytest.mark.parametrize("level", [0, 1, 1.5, -0.2, True, "0.8", float("nan")])
def test_bad_level_is_refused(level):
  with pytest.raises(ValueError, match="level"):
    conformal.quantiles(np.ones((5, 1)), level)

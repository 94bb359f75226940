"""Quantile outputs' intervals (rnn_jax.evaluation.conformal): the quantile levels, the
rearrangement that keeps quantiles from crossing, conformalized quantile regression (CQR) by
hand and by its coverage on exchangeable data, and the scores reported next to the symmetric
split-conformal interval."""
from __future__ import annotations

import numpy as np
import pytest

from rnn_jax.evaluation import conformal, scores


def test_quantile_levels():
  assert conformal.quantile_levels(0.8) == (0.1, 0.5, 0.9)
  assert conformal.quantile_levels(0.9) == (0.05, 0.5, 0.95)
  assert conformal.quantile_levels(0.5) == (0.25, 0.5, 0.75)
  with pytest.raises(ValueError, match="strictly between 0 and 1"):
    conformal.quantile_levels(1.0)


def test_rearrange_sorts_each_horizon():
  bands = np.array([[[3.0, 1.0, 2.0], [0.0, 5.0, 4.0]]])
  np.testing.assert_array_equal(conformal.rearrange(bands),
                                [[[1.0, 2.0, 3.0], [0.0, 4.0, 5.0]]])


def test_rearrangement_never_increases_the_pinball_loss():
  """For every window, sorting crossed quantiles lowers (or keeps) the pinball loss summed over
  the levels (Chernozhukov, Fernandez-Val and Galichon 2010): the sum is ``sum_j (y - q_j) tau_j``
  plus a term that ignores the order, and pairing the larger q with the larger tau maximises
  ``sum_j q_j tau_j`` (the rearrangement inequality)."""
  rng = np.random.default_rng(0)
  taus = conformal.quantile_levels(0.8)
  bands = rng.normal(size=(2000, 1, 3)) * 5
  target = rng.normal(size=(2000, 1)) * 5
  loss = lambda b: sum(np.maximum(t * (target - b[..., j]), (t - 1) * (target - b[..., j]))
                       for j, t in enumerate(taus))
  before, after = loss(bands), loss(conformal.rearrange(bands))
  crossed = (np.diff(bands, axis=-1) < 0).any(-1)
  assert crossed.mean() > 0.5
  assert np.all(after <= before + 1e-12)
  assert np.mean(after[crossed] < before[crossed] - 1e-9) > 0.3      # strictly better often
  np.testing.assert_array_equal(after[~crossed], before[~crossed])
  # and the mean loss, as scores.pinball reports it
  total = lambda b: sum(scores.pinball(b[..., j], target, t) for j, t in enumerate(taus))
  assert total(conformal.rearrange(bands)) < total(bands)


def test_cqr_quantile_by_hand():
  # E = max(lo - y, y - hi): inside the band negative (the distance to the nearer end)
  lo = np.array([[2.0], [2.0], [2.0], [2.0], [2.0]])
  hi = np.array([[6.0], [6.0], [6.0], [6.0], [6.0]])
  y = np.array([[3.0], [1.0], [9.0], [5.5], [4.0]])
  # E: max(-1, -3) = -1; max(1, -5) = 1; max(-7, 3) = 3; max(-3.5, -0.5) = -0.5; max(-2, -2) = -2
  # sorted: -2, -1, -0.5, 1, 3; n = 5, level 0.5: rank ceil(3) = 3 -> -0.5; 0.6: ceil(3.6) = 4
  np.testing.assert_array_equal(conformal.cqr_quantiles(lo, hi, y, 0.5), [-0.5])
  np.testing.assert_array_equal(conformal.cqr_quantiles(lo, hi, y, 0.6), [1.0])
  np.testing.assert_array_equal(conformal.cqr_quantiles(lo, hi, y, 0.8), [3.0])  # rank 5
  assert np.isinf(conformal.cqr_quantiles(lo, hi, y, 0.9)).all()                 # rank 6 > n
  with pytest.raises(ValueError, match="differ in shape"):
    conformal.cqr_quantiles(lo, hi[:3], y, 0.5)


def test_cqr_intervals_by_hand():
  lo = np.array([[2.0, 10.0], [0.5, 1.0]])
  hi = np.array([[6.0, 14.0], [3.0, 1.5]])
  q = np.array([1.0, -1.0])
  got_lo, got_hi = conformal.cqr_intervals(lo, hi, q, capacity=12.0)
  # horizon 0 widened by 1 and clipped at 0; horizon 1 narrowed by 1, clipped at the capacity,
  # and where narrowing would cross (1 + 1 > 1.5 - 1) both ends sit at the band's middle, 1.25
  np.testing.assert_array_equal(got_lo, [[1.0, 11.0], [0.0, 1.25]])
  np.testing.assert_array_equal(got_hi, [[7.0, 12.0], [4.0, 1.25]])


@pytest.mark.parametrize("level", [0.5, 0.8, 0.9])
def test_cqr_coverage_is_the_level_on_exchangeable_data(level):
  """Exchangeable windows, a quantile model that is wrong in scale and centre (a band of fixed
  width around a biased centre, while the noise grows with x): averaged over calibration/test
  draws CQR covers in [level, level + 1/(n+1)] (Romano, Patterson and Candes 2019, Theorem 1;
  continuous scores, so no ties). Each of the 4000 columns is an independent draw; standard
  error ~ 0.4 / sqrt(4000 * 50) < 0.001. The uncalibrated band covers far from the level."""
  rng = np.random.default_rng(2)
  n, m, draws = 49, 50, 4000

  def sample(size):
    x = rng.uniform(0, 1, size=(size, draws))
    y = 100 + 3 * x + (0.2 + 2 * x) * rng.standard_normal((size, draws))
    return 100.5 + 2 * x - 0.4, 100.5 + 2 * x + 0.4, y     # lo, hi, y

  lo, hi, y = sample(n)
  q = conformal.cqr_quantiles(lo, hi, y, level)
  lo_t, hi_t, y_t = sample(m)
  cal_lo, cal_hi = conformal.cqr_intervals(lo_t, hi_t, q, capacity=np.inf)
  coverage = ((y_t >= cal_lo) & (y_t <= cal_hi)).mean()
  assert level - 0.003 <= coverage <= level + 1 / (n + 1) + 0.003, coverage
  raw = ((y_t >= lo_t) & (y_t <= hi_t)).mean()
  assert abs(raw - level) > 0.1, raw
  # the band moves with the window: widths vary only through the clip and the crossing rule
  assert np.ptp(cal_hi - cal_lo, axis=0).max() < 1e-9


def test_cqr_summary_reports_the_scores():
  bands = np.array([[[1.0, 2.0, 4.0]], [[2.0, 3.0, 3.5]], [[0.0, 1.0, 2.0]]])
  target = np.array([[5.0], [2.5], [0.5]])
  q = np.array([0.5])
  s = conformal.cqr_summary(bands, target, q, capacity=4.75, level=0.8)
  lo = np.array([[0.5], [1.5], [0.0]])           # 1 - 0.5, 2 - 0.5, 0 - 0.5 clipped at 0
  hi = np.array([[4.5], [4.0], [2.5]])
  assert s["level"] == 0.8 and s["q"] == [0.5]
  assert s["coverage"] == pytest.approx([2 / 3])   # 5 is outside [0.5, 4.5]
  assert s["mean_width"] == pytest.approx([(4 + 2.5 + 2.5) / 3])
  # Winkler: widths plus (2 / 0.2) times the miss (5 - 4.5)
  assert s["interval_score"] == pytest.approx([(4 + 2.5 + 2.5 + 10 * 0.5) / 3])
  expected = np.mean([scores.pinball(lo, target, 0.1),
                      scores.pinball(bands[..., 1], target, 0.5),
                      scores.pinball(hi, target, 0.9)], axis=0)
  assert s["pinball"] == pytest.approx(expected.tolist())
  raw = s["uncalibrated"]
  assert raw["coverage"] == pytest.approx([2 / 3])   # 5 outside [1, 4]; 2.5, 0.5 inside
  assert raw["mean_width"] == pytest.approx([(3 + 1.5 + 2) / 3])


def test_symmetric_summary_reports_the_same_scores():
  pred = np.array([[10.0], [3.0]])
  target = np.array([[13.0], [2.0]])
  s = conformal.summary(pred, target, np.array([2.0]), capacity=20.0, level=0.8)
  lo, hi = np.array([[8.0], [1.0]]), np.array([[12.0], [5.0]])
  assert s["coverage"] == [0.5] and s["mean_width"] == [4.0]
  assert s["interval_score"] == pytest.approx(scores.interval_score(lo, hi, target, 0.8).tolist())
  expected = np.mean([scores.pinball(lo, target, 0.1), scores.pinball(pred, target, 0.5),
                      scores.pinball(hi, target, 0.9)], axis=0)
  assert s["pinball"] == pytest.approx(expected.tolist())


def test_format_lines_show_both_intervals():
  entry = lambda v: {"level": 0.8, "q": [1.0], "coverage": [v], "mean_width": [2.0],
                     "interval_score": [3.0], "pinball": [0.25]}
  results = {"unit": "cars", "splits": {
      s: {"model": {"interval": entry(0.75), "cqr": entry(0.5)}} for s in ("val", "test")}}
  lines = conformal.format_lines(results, 14, 10)
  assert lines[0].startswith("model's 80% interval (split-conformal, symmetric")
  assert "widths and scores in cars" in lines[0]
  assert lines[5].startswith("model's 80% interval (conformalized quantile regression")
  rows = [line.split() for line in lines]
  assert rows[1] == ["coverage", "0.750", "0.750"] and rows[6] == ["coverage", "0.500", "0.500"]
  assert rows[3] == ["interval_score", "3.00", "3.00"] and rows[4] == ["pinball", "0.250", "0.250"]
  del results["splits"]["test"]["model"]["cqr"]          # a bce run: the symmetric one only
  assert len(conformal.format_lines(results, 14, 10)) == 5

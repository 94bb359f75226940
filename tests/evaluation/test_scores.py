"""rnn_jax.evaluation.scores against values worked by hand and their defining properties."""
import numpy as np
import pytest

from rnn_jax.evaluation import scores


def test_pinball_by_hand():
  # y - q = 2 at tau 0.9: 0.9 * 2; y - q = -2: 0.1 * 2
  assert scores.pinball([[0.0], [4.0]], [[2.0], [2.0]], 0.9) == pytest.approx([(1.8 + 0.2) / 2])


def test_pinball_median_is_half_the_absolute_error():
  rng = np.random.default_rng(0)
  p, y = rng.normal(size=(50, 3)), rng.normal(size=(50, 3))
  np.testing.assert_allclose(scores.pinball(p, y, 0.5), 0.5 * np.abs(p - y).mean(axis=0))


def test_pinball_is_minimised_by_the_empirical_quantile():
  y = np.random.default_rng(1).exponential(size=(999, 1))
  candidates = np.linspace(0, 5, 501)
  losses = [scores.pinball(np.full_like(y, c), y, 0.8)[0] for c in candidates]
  assert candidates[int(np.argmin(losses))] == pytest.approx(np.quantile(y, 0.8), abs=0.01)


def test_interval_score_by_hand():
  # level 0.8, alpha 0.2: covered -> width 2; below by 1 -> 2 + 10; above by 0.5 -> 2 + 5
  lo, hi = np.zeros((3, 1)), np.full((3, 1), 2.0)
  y = np.array([[1.0], [-1.0], [2.5]])
  assert scores.interval_score(lo, hi, y, 0.8) == pytest.approx([(2 + 12 + 7) / 3])
  s = scores.interval_summary(lo, hi, y, 0.8)
  assert s["coverage"] == pytest.approx([1 / 3]) and s["mean_width"] == pytest.approx([2.0])


def test_bad_arguments():
  with pytest.raises(ValueError, match="tau"):
    scores.pinball([[0.0]], [[0.0]], 1.0)
  with pytest.raises(ValueError, match="level"):
    scores.interval_score([[0.0]], [[1.0]], [[0.5]], 0.0)
  with pytest.raises(ValueError, match="differ in shape"):
    scores.pinball([[0.0, 1.0]], [[0.0]], 0.5)

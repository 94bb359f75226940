"""Every plot writes a real PNG atomically and refuses inputs that do not fit together."""
from __future__ import annotations

import matplotlib.image
import numpy as np
import pytest

from rnn_jax.common import plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HORIZONS = [10, 30, 60]


def history(n=12, **extra):
  rows = []
  for e in range(1, n + 1):
    rows.append({"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.0 / e + 0.01 * e,
                 "val_mae": 0.5 / e, "seconds": 0.1 * e, **extra})
  return rows


def week(n_missing=60):
  """One week of 10-minute times with a gap, forecasts at three horizons."""
  times = np.arange("2017-12-18T00:00", "2017-12-26T00:00", np.timedelta64(10, "m"),
                    dtype="datetime64[m]")
  times = np.delete(times, np.arange(400, 400 + n_missing))
  rng = np.random.default_rng(0)
  actual = np.stack([50 + 30 * np.sin(np.arange(len(times)) / 24 + k) for k in range(3)], 1)
  preds = {"model": actual + rng.normal(0, 3, actual.shape), "persistence": np.roll(actual, 3, 0)}
  return times, actual, preds


RESULTS = {"model": {"mae": [2.0, 3.5, 5.0], "n_windows": 10},
           "persistence": {"mae": [2.5, 4.5, 7.0]},
           "seasonal_naive_week": {"mae": [None, 9.0, float("nan")]},
           "gbm": {"mae": [2.2, 3.9, 5.5]}}

RATIOS = np.array([[0.9, 1.1, 0.5], [2.0, np.nan, 1.0], [1.3, 1.0, 0.71]])

# name -> a call writing to `path`
GOOD = {
    "learning_curves": lambda path: plots.learning_curves(history(), path, title="run"),
    "learning_curves_one_epoch": lambda path: plots.learning_curves(
        [{"train_loss": 0.7, "val_loss": 0.8}], path),
    "learning_curves_missing_values": lambda path: plots.learning_curves(
        history(5) + [{"epoch": 6, "train_loss": 0.1}], path),
    "accuracy_curve": lambda path: plots.accuracy_curve(
        [{"epoch": e, "train_accuracy": 1 - 1 / (e + 1), "val_accuracy": 1 - 1.2 / (e + 1)}
         for e in range(1, 30)], path, chance=1 / 26),
    "forecast_vs_actual": lambda path: plots.forecast_vs_actual(*week(), HORIZONS, path),
    "forecast_all_days": lambda path: plots.forecast_vs_actual(*week(), HORIZONS, path, days=None,
                                                               ylabel="people"),
    "forecast_with_band": lambda path: plots.forecast_vs_actual(
        *week(), HORIZONS, path, band=(week()[2]["model"] - 2, week()[2]["model"] + 2),
        band_label="80% interval"),
    "forecast_one_horizon_1d": lambda path: plots.forecast_vs_actual(
        week()[0], week()[1][:, 0], {"model": week()[2]["model"][:, 0]}, [30], path),
    "mae_by_horizon": lambda path: plots.mae_by_horizon(RESULTS, HORIZONS, path,
                                                        ylabel="MAE (people)"),
    "ratio_grid": lambda path: plots.ratio_grid(
        {"val": RATIOS, "test": RATIOS[::-1]}, ["garage", "gym", "geometric mean"], HORIZONS,
        path),
    "ratio_grid_one_table_all_ones": lambda path: plots.ratio_grid(
        {"test": np.ones((1, 3))}, ["gym"], HORIZONS, path, title="one"),
    "grad_norms_1d": lambda path: plots.grad_norms(np.exp(-0.3 * np.arange(24))[::-1], path),
    "grad_norms_2d": lambda path: plots.grad_norms(
        np.exp(np.random.default_rng(1).normal(size=(6, 24)) + 0.2 * np.arange(24)), path),
    "grad_norms_zeros_and_nan": lambda path: plots.grad_norms(
        np.array([[0.0, 1e-3, np.nan, 1.0], [np.inf, 1e-2, 0.1, 2.0]]), path),
    "grad_norms_all_zero": lambda path: plots.grad_norms(np.zeros(24), path),
}


@pytest.mark.parametrize("name", sorted(GOOD))
def test_writes_a_png_and_nothing_else(tmp_path, name):
  path = tmp_path / "plot.png"
  GOOD[name](path)
  assert [p.name for p in tmp_path.iterdir()] == ["plot.png"]        # no temporary file left
  assert path.read_bytes()[:8] == PNG_SIGNATURE
  image = matplotlib.image.imread(path)
  assert image.ndim == 3 and image.shape[0] >= 300 and image.shape[1] >= 500
  assert image[..., :3].std() > 0.01                                   # something was drawn


def test_replaces_an_existing_file(tmp_path):
  path = tmp_path / "curve.png"
  path.write_bytes(b"old")
  plots.learning_curves(history(), path)
  assert path.read_bytes()[:8] == PNG_SIGNATURE
  assert [p.name for p in tmp_path.iterdir()] == ["curve.png"]


def _times(n):
  return np.datetime64("2018-01-01T00:00") + np.arange(n).astype("timedelta64[m]")


BAD = {
    "history_empty": (lambda p: plots.learning_curves([], p), "non-empty list"),
    "history_dict": (lambda p: plots.learning_curves({"train_loss": [1, 2]}, p), "non-empty list"),
    "history_not_dicts": (lambda p: plots.learning_curves([1.0, 2.0], p), r"history\[0\]"),
    "history_no_loss": (lambda p: plots.learning_curves([{"epoch": 1, "acc": 0.5}], p),
                        "no numeric key with 'loss'"),
    "accuracy_missing": (lambda p: plots.accuracy_curve(history(), p),
                         "no numeric key with 'accuracy'"),
    "times_vs_actual": (lambda p: plots.forecast_vs_actual(
        _times(9), np.zeros((10, 3)), {"model": np.zeros((10, 3))}, HORIZONS, p),
        r"actual: expected shape \[9, 3\]"),
    "prediction_rows": (lambda p: plots.forecast_vs_actual(
        _times(10), np.zeros((10, 3)), {"model": np.zeros((9, 3))}, HORIZONS, p),
        r"predictions\['model'\]: expected shape \[10, 3\]"),
    "horizons_vs_columns": (lambda p: plots.forecast_vs_actual(
        _times(10), np.zeros((10, 3)), {"model": np.zeros((10, 3))}, [10, 30], p),
        r"expected shape \[10, 2\]"),
    "times_not_datetime": (lambda p: plots.forecast_vs_actual(
        np.arange(10), np.zeros((10, 1)), {"model": np.zeros((10, 1))}, [10], p),
        "datetime64"),
    "band_rows": (lambda p: plots.forecast_vs_actual(
        _times(10), np.zeros((10, 3)), {"model": np.zeros((10, 3))}, HORIZONS, p,
        band=(np.zeros((10, 3)), np.zeros((9, 3)))), r"band\[1\]: expected shape \[10, 3\]"),
    "no_predictions": (lambda p: plots.forecast_vs_actual(
        _times(10), np.zeros((10, 1)), {}, [10], p), "at least one method"),
    "mae_length": (lambda p: plots.mae_by_horizon(
        {"model": {"mae": [1.0, 2.0]}}, HORIZONS, p, ylabel="MAE"),
        r"results_split\['model'\]\['mae'\]: 2 values for 3 horizons"),
    "mae_missing": (lambda p: plots.mae_by_horizon(
        {"model": {"accuracy": 0.5}}, HORIZONS, p, ylabel="MAE"), "expected a dict with an 'mae'"),
    "mae_no_methods": (lambda p: plots.mae_by_horizon({}, HORIZONS, p, ylabel="MAE"),
                       "at least one method"),
    "ratio_shape": (lambda p: plots.ratio_grid({"val": RATIOS}, ["a", "b"], HORIZONS, p),
                    r"tables\['val'\]: expected shape \[2, 3\]"),
    "ratio_negative": (lambda p: plots.ratio_grid({"val": -RATIOS}, ["a", "b", "c"], HORIZONS, p),
                       "expected positive ratios"),
    "ratio_no_tables": (lambda p: plots.ratio_grid({}, ["a"], HORIZONS, p), "at least one table"),
    "ratio_no_rows": (lambda p: plots.ratio_grid({"val": np.ones((0, 3))}, [], HORIZONS, p),
                      "at least one series"),
    "norms_3d": (lambda p: plots.grad_norms(np.ones((2, 3, 4)), p), r"\[T\] or \[n, T\]"),
    "norms_empty": (lambda p: plots.grad_norms(np.ones((2, 0)), p), r"\[T\] or \[n, T\]"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_mismatched_inputs_raise_before_writing(tmp_path, name):
  call, words = BAD[name]
  with pytest.raises(ValueError, match=words):
    call(tmp_path / "plot.png")
  assert list(tmp_path.iterdir()) == []


def test_unwritable_target_leaves_nothing(tmp_path):
  with pytest.raises(OSError):
    plots.grad_norms(np.ones(5), tmp_path / "missing-dir" / "plot.png")
  assert list(tmp_path.iterdir()) == []


def test_helpers_break_lines_at_gaps_and_mark_the_best_epoch():
  """The pieces the pictures rely on: NaN breaks at data gaps and the best-epoch choice."""
  t = _times(6)
  t = np.concatenate([t[:3], t[3:] + np.timedelta64(60, "m")])         # one hour gap after 3
  x, (y,) = plots._with_breaks(t, [np.arange(6.0)])
  assert len(x) == 7 and np.isnan(y[3]) and np.array_equal(y[~np.isnan(y)], np.arange(6.0))
  assert plots._with_breaks(_times(6), [np.arange(6.0)])[1][0].tolist() == list(np.arange(6.0))
  epochs = plots._epochs(history(5))
  assert plots._best(epochs, plots._series(history(5), "val_loss"), "min")[0] == 5
  assert plots._best(epochs, np.array([0.3, 0.9, np.nan, 0.8, 0.1]), "max")[0] == 2
  assert plots._metric_keys(history(3)) == ["train_loss", "val_loss", "val_mae"]


def _legend_labels(fig):
  return [h.get_label() for h in fig.legends[0].legend_handles]


def test_learning_curves_leave_out_identifiers():
  """fit_many's rows carry ``model`` and ``seed``: identifiers, not metrics to draw."""
  rows = [{**row, "model": 0, "seed": 0} for row in history(6)]
  assert plots._metric_keys(rows) == ["train_loss", "val_loss", "val_mae"]


def test_learning_curves_of_several_models_draw_every_model_and_say_so(tmp_path):
  # five models that stopped at different epochs, as fit_many's histories
  runs = [[{**row, "model": m, "seed": 10 + m} for row in history(8 - m)] for m in range(5)]
  fig = plots.learning_curves(runs, tmp_path / "curves.png", title="loss")
  ax, right = fig.axes
  assert right.get_ylabel() == "val_mae"
  labels = _legend_labels(fig)
  assert not {"model", "seed"} & set(labels)
  assert {"train_loss (mean)", "val_loss (mean)", "val_mae (mean)"} <= set(labels)
  assert "5 models" in ax.get_title() and "each model faint" in ax.get_title()
  # every model's own curve (train and val loss: 2 x 5) and the two means, plus the best epoch
  assert len(ax.get_lines()) == 2 * 5 + 2 + 1 and len(right.get_lines()) == 5 + 1
  mean_val = [ln for ln in ax.get_lines() if ln.get_label() == "val_loss (mean)"][0]
  epoch3 = [run[2]["val_loss"] for run in runs]
  np.testing.assert_allclose(mean_val.get_ydata()[2], np.mean(epoch3))
  # epoch 8 was reached by model 0 alone: the mean there is its value
  np.testing.assert_allclose(mean_val.get_ydata()[7], runs[0][7]["val_loss"])
  one = plots.learning_curves(runs[0], tmp_path / "one.png", title="loss")
  assert one.axes[0].get_title() == "loss" and "train_loss" in _legend_labels(one)

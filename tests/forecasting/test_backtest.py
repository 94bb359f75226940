"""Backtests (rnn_jax.forecasting.backtest, train_occupancy.py --folds): the folds, no leakage
from a fold's test block into its training, cross_validation.csv and backtest.json."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from rnn_jax import data
from rnn_jax.common.errors import InputError
from rnn_jax.data import WindowSpec
from rnn_jax.forecasting import backtest
from conftest import load_script

FOLDS = 3
DAYS = 14
TINY = ("--preset", "notes", "--hidden-size", "8", "--epochs", "1", "--batch-size", "64",
        "--no-progress")
COLUMNS = ["unique_id", "ds", "cutoff", "horizon", "y", "model", "model-lo-80", "model-hi-80",
           "persistence", "seasonal_naive_day", "seasonal_naive_week", "ridge", "gbm",
           "gbm_median", "mstl", "gbm_quantile-lo-80", "gbm_quantile-hi-80"]


def readings_csv(days: int = DAYS, drop: tuple[int, int] | None = None, seed: int = 0) -> str:
  """A reading every 10 minutes on the grid (so each bin's value is its reading), a daily
  rhythm with noise, capacity 60; ``drop``: the readings ``[a, b)`` left out (an outage)."""
  n = days * 144
  rng = np.random.default_rng(seed)
  i = np.arange(n)
  v = np.clip(np.round(24 + 21 * np.sin(2 * np.pi * ((i % 144) / 6 - 9) / 24)
                       + rng.normal(0, 3, n)), 0, 60)
  t0 = np.datetime64("2024-03-04T00:00", "m")
  keep = [k for k in range(n) if drop is None or not drop[0] <= k < drop[1]]
  return "time,people\n" + "".join(f"{t0 + np.timedelta64(10 * k, 'm')},{v[k]:g}\n"
                                   for k in keep)


def argv(csv_path, out, *extra):
  return ["--csv", str(csv_path), "--time-column", "time", "--value-column", "people",
          "--capacity", "60", *TINY, "--out", str(out), *extra]


@pytest.fixture(scope="module")
def cv(tmp_path_factory):
  """One backtest of FOLDS folds on DAYS days: (csv path, out, backtest.json, csv rows)."""
  directory = tmp_path_factory.mktemp("backtest")
  path = directory / "series.csv"
  path.write_text(readings_csv())
  out = directory / "cv"
  assert load_script("train_occupancy.py").main(argv(path, out, "--folds", str(FOLDS))) == 0
  report = json.loads((out / backtest.REPORT).read_text())
  with open(out / backtest.CSV, newline="") as f:
    rows = list(csv.DictReader(f))
  return path, out, report, rows


def utc(text: str) -> np.datetime64:
  return np.datetime64(text.rstrip("Z").replace("+00:00", ""), "ns")


def fold_rows(report, rows):
  """The csv rows of each fold: those whose cutoff lies in the fold's test block."""
  out = []
  for f in report["folds"]:
    lo, hi = utc(f["blocks"]["test"]["start_utc"]), utc(f["blocks"]["test"]["end_utc"])
    out.append([r for r in rows if lo <= utc(r["cutoff"]) < hi])
  return out


def test_folds_and_files(cv):
  _, out, report, rows = cv
  assert report["n_folds"] == FOLDS and [f["fold"] for f in report["folds"]] == [1, 2, 3]
  assert report["unique_id"] == "series" and report["horizon_minutes"] == [10, 30, 60]
  for k in range(1, FOLDS + 1):
    assert (backtest.fold_dir(out, k) / "results.json").is_file()
    assert (backtest.fold_dir(out, k) / "config.json").is_file()
  assert list(rows[0]) == COLUMNS
  assert {r["unique_id"] for r in rows} == {"series"}
  per_fold = fold_rows(report, rows)   # the folds' rows partition the file
  assert [len(p) for p in per_fold] == [3 * f["n_windows"] for f in report["folds"]]
  assert sum(len(p) for p in per_fold) == len(rows)


def test_cutoffs_increase_across_folds_and_blocks_follow_each_other(cv):
  _, _, report, rows = cv
  per_fold = fold_rows(report, rows)
  for a, b in zip(per_fold, per_fold[1:]):
    assert max(utc(r["cutoff"]) for r in a) < min(utc(r["cutoff"]) for r in b)
  folds = report["folds"]
  for a, b in zip(folds, folds[1:]):   # consecutive test blocks of one length
    assert a["blocks"]["test"]["end_utc"] == b["blocks"]["test"]["start_utc"]
    assert (utc(a["blocks"]["test"]["end_utc"]) - utc(a["blocks"]["test"]["start_utc"])
            == utc(b["blocks"]["test"]["end_utc"]) - utc(b["blocks"]["test"]["start_utc"]))
  for f, part in zip(folds, per_fold):
    assert f["cutoff_first"] == min(r["cutoff"] for r in part)
    assert f["cutoff_last"] == max(r["cutoff"] for r in part)


def test_no_leakage_from_a_folds_test_block(cv):
  """Every forecast's origin and target lie after the fold's training and validation data, and
  the fold's run read no reading after its test block."""
  _, out, report, rows = cv
  for f, part in zip(report["folds"], fold_rows(report, rows)):
    blocks = f["blocks"]
    assert utc(blocks["train"]["end_utc"]) <= utc(blocks["val"]["start_utc"])
    assert utc(blocks["val"]["end_utc"]) <= utc(blocks["test"]["start_utc"])
    for r in part:
      assert utc(blocks["val"]["end_utc"]) <= utc(r["cutoff"]) < utc(r["ds"])
      assert utc(r["ds"]) < utc(blocks["test"]["end_utc"])
    results = json.loads((backtest.fold_dir(out, f["fold"]) / "results.json").read_text())
    assert results["data"]["grid_end_utc"] == blocks["test"]["end_utc"]
    assert results["data"]["splits"] == blocks


def test_blocks_follow_the_documented_rule(cv):
  """14 days = 2016 bins; splits 0.7/0.15/0.15 bound the ordinary run at bins 1411 and 1714, so
  val holds 303 bins, test 302; fold k tests on bins [2016 - (4 - k) 302, 2016 - (3 - k) 302)
  and validates on the 303 before. Each fold's run read no reading after its test block, where
  the next fold's test block begins."""
  _, out, report, _ = cv
  start, step = np.datetime64("2024-03-04T00:00", "ns"), np.timedelta64(10, "m")
  for f in report["folds"]:
    test_end = 2016 - (FOLDS - f["fold"]) * 302
    blocks = f["blocks"]
    assert utc(blocks["test"]["end_utc"]) == start + test_end * step
    assert utc(blocks["test"]["start_utc"]) == start + (test_end - 302) * step
    assert utc(blocks["val"]["start_utc"]) == start + (test_end - 302 - 303) * step
    assert utc(blocks["train"]["start_utc"]) == start
  for a, b in zip(report["folds"], report["folds"][1:]):
    results = json.loads((backtest.fold_dir(out, a["fold"]) / "results.json").read_text())
    assert results["data"]["grid_end_utc"] == b["blocks"]["test"]["start_utc"]


def test_expanding_training_window(cv):
  _, _, report, _ = cv
  folds = report["folds"]
  assert len({f["blocks"]["train"]["start_utc"] for f in folds}) == 1
  sizes = [f["blocks"]["train"]["n_windows"] for f in folds]
  assert sizes == sorted(sizes) and len(set(sizes)) == FOLDS


def test_last_fold_is_the_ordinary_runs_split(cv):
  path, _, report, _ = cv
  dataset = data.make_dataset(data.read_csv(path, time_column="time", value_column="people",
                                            capacity=60), WindowSpec())
  assert report["folds"][-1]["blocks"] == dataset.summary()["splits"]


def test_csv_values(cv):
  """``y`` is the reading at ``ds``, ``horizon`` is ds - cutoff in minutes, the interval holds
  the forecast, and the csv's errors give backtest.json's MAE."""
  path, _, report, rows = cv
  truth = {}
  for line in path.read_text().splitlines()[1:]:
    t, v = line.split(",")
    truth[np.datetime64(t, "ns")] = float(v)
  for r in rows:
    assert float(r["y"]) == truth[utc(r["ds"])]
    assert int(r["horizon"]) * 60 == (utc(r["ds"]) - utc(r["cutoff"])) / np.timedelta64(1, "s")
    assert float(r["model-lo-80"]) <= float(r["model"]) <= float(r["model-hi-80"])
  for f, part in zip(report["folds"], fold_rows(report, rows)):
    for j, minutes in enumerate(report["horizon_minutes"]):
      sub = [r for r in part if int(r["horizon"]) == minutes]
      for method in ("model", "persistence", "gbm"):
        mae = np.mean([abs(float(r[method]) - float(r["y"])) for r in sub])
        np.testing.assert_allclose(mae, f["mae"][method][j], rtol=1e-8)


def test_fold_scores_are_the_fold_runs_own(cv):
  _, out, report, _ = cv
  for f in report["folds"]:
    results = json.loads((backtest.fold_dir(out, f["fold"]) / "results.json").read_text())
    test = results["splits"]["test"]
    np.testing.assert_allclose(f["mae"]["model"], test["model"]["mae"], rtol=1e-9)
    np.testing.assert_allclose(f["mae"]["gbm"], test["gbm"]["mae"], rtol=1e-9)
    assert f["interval"]["method"] == "split_conformal"
    for key in ("coverage", "mean_width", "interval_score"):
      np.testing.assert_allclose(f["interval"][key], test["model"]["interval"][key], rtol=1e-9)


def test_mean_is_the_mean_of_the_folds(cv):
  _, _, report, _ = cv
  folds, mean = report["folds"], report["mean"]
  for method, values in mean["mae"].items():
    np.testing.assert_allclose(values, np.mean([f["mae"][method] for f in folds], axis=0),
                               rtol=1e-12)
  for key in ("coverage", "mean_width", "interval_score"):
    np.testing.assert_allclose(mean["interval"][key],
                               np.mean([f["interval"][key] for f in folds], axis=0), rtol=1e-12)
  for entry in folds + [mean]:
    baselines = {k: v for k, v in entry["mae"].items() if k != "model"}
    for j, best in enumerate(entry["best_baseline_mae"]):
      assert best == min(v[j] for v in baselines.values() if v[j] is not None)
      np.testing.assert_allclose(entry["ratio"][j], entry["mae"]["model"][j] / best)


def test_plan_blocks():
  spec = WindowSpec()
  m = 1000   # val 150 bins, test 150
  folds = backtest.plan(m, spec, 3)
  assert [f.k for f in folds] == [1, 2, 3]
  assert folds[-1] == backtest.Fold(3, 700, 850, 1000)
  for a, b in zip(folds, folds[1:]):
    assert a.test_end == b.test_start and a.val_start < b.val_start
  for f in folds:
    assert f.test_start - f.val_start == 150 and f.test_end - f.test_start == 150
  assert backtest.plan(m, spec, 4)[0].val_start == 250   # 1000 - 4 * 150 - 150 bins of training
  with pytest.raises(InputError, match=r"--folds 5: fold 1 would train on 100 of the grid's 1000 "
                     r"bins, fewer than a test block's 150 .* --folds 4 or fewer"):
    backtest.plan(m, spec, 5)
  with pytest.raises(InputError, match=r"--folds 7: fold 1 would train on 0 "):
    backtest.plan(m, spec, 7)


def test_before_cuts_every_reading_array():
  readings = data.synthetic_readings(days=3)
  end = readings.time_utc[100]
  cut = data.before(readings, end)
  assert len(cut) == 100 and (cut.time_utc < end).all()
  for name in ("time_utc", "value", "local_offset_minutes", "line"):
    np.testing.assert_array_equal(getattr(cut, name), getattr(readings, name)[:100])


def test_a_fold_without_a_usable_window_is_named(tmp_path):
  """An outage over most of fold 1's test block (14 days, 2 folds: bins 1412..1714)."""
  path = tmp_path / "gap.csv"
  path.write_text(readings_csv(drop=(1420, 1714)))
  with pytest.raises(InputError, match=r"--folds 2: fold 1 \(test block 2024-03-13T19:20:00Z to "
                     r"2024-03-15T21:40:00Z\): .*split 'test'.*no usable window"):
    backtest.prepare(data.read_csv(path, time_column="time", value_column="people", capacity=60),
                     WindowSpec(), 2)
  assert not (tmp_path / "cv").exists()
  path.write_text(readings_csv(drop=(1412, 1714)))   # none in the block: the grid ends at its start
  with pytest.raises(InputError, match=r"--folds 2: fold 1 \(test block 2024-03-13T19:20:00Z to "
                     r"2024-03-15T21:40:00Z\): no reading in the test block; expected fewer"):
    backtest.prepare(data.read_csv(path, time_column="time", value_column="people", capacity=60),
                     WindowSpec(), 2)


def test_pinball_folds_give_the_cqr_interval(tmp_path):
  """With --loss pinball the model column is the median and its bounds the CQR interval adapted
  online over the fold's test block, whose scores the fold's results.json reports."""
  path = tmp_path / "series.csv"
  path.write_text(readings_csv(days=10))
  out = tmp_path / "cv"
  assert load_script("train_occupancy.py").main(
      argv(path, out, "--folds", "2", "--loss", "pinball", "--interval", "0.9")) == 0
  report = json.loads((out / backtest.REPORT).read_text())
  with open(out / backtest.CSV, newline="") as f:
    rows = list(csv.DictReader(f))
  assert {"model-lo-90", "model-hi-90", "gbm_quantile-lo-90"} <= set(rows[0])
  for f, part in zip(report["folds"], fold_rows(report, rows)):
    results = json.loads((backtest.fold_dir(out, f["fold"]) / "results.json").read_text())
    cqr = results["splits"]["test"]["model"]["cqr_online"]
    assert f["interval"]["method"] == "cqr_online" and f["interval"]["level"] == 0.9
    for j, minutes in enumerate(report["horizon_minutes"]):
      sub = [r for r in part if int(r["horizon"]) == minutes]
      inside = [float(r["model-lo-90"]) <= float(r["y"]) <= float(r["model-hi-90"]) for r in sub]
      np.testing.assert_allclose(np.mean(inside), cqr["coverage"][j], rtol=1e-12)
      width = np.mean([float(r["model-hi-90"]) - float(r["model-lo-90"]) for r in sub])
      np.testing.assert_allclose(width, cqr["mean_width"][j], rtol=1e-8)
      np.testing.assert_allclose(f["interval"]["coverage"][j], cqr["coverage"][j])


def test_a_panel_backtest_writes_every_series_into_one_file(tmp_path):
  """--csv of two files with --folds 2: each series' folds in --out/<name>/fold_<k>, one csv
  whose unique_id names the series, backtest.json per series."""
  paths = []
  for seed, name in ((1, "north"), (2, "south")):
    paths.append(tmp_path / f"{name}.csv")
    paths[-1].write_text(readings_csv(days=10, seed=seed))
  out = tmp_path / "cv"
  args = argv(paths[0], out, "--folds", "2")
  args.insert(2, str(paths[1]))
  assert load_script("train_occupancy.py").main(args) == 0
  report = json.loads((out / backtest.REPORT).read_text())
  assert [r["unique_id"] for r in report["series"]] == ["north", "south"]
  assert report["n_folds"] == 2
  with open(out / backtest.CSV, newline="") as f:
    rows = list(csv.DictReader(f))
  for r, path in zip(report["series"], paths):
    own = [row for row in rows if row["unique_id"] == r["unique_id"]]
    assert len(own) == 3 * sum(f["n_windows"] for f in r["folds"])
    truth = {np.datetime64(t, "ns"): float(v) for t, v in
             (line.split(",") for line in path.read_text().splitlines()[1:])}
    assert all(float(row["y"]) == truth[utc(row["ds"])] for row in own)
    for k in (1, 2):
      assert (backtest.fold_dir(out / r["unique_id"], k) / "results.json").is_file()
  assert len(rows) == sum(3 * f["n_windows"] for r in report["series"] for f in r["folds"])

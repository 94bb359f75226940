"""The occupancy experiment end to end (rnn_jax.tasks.occupancy): scripts, run directory,
results.json, forecasting."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from rnn_jax import data
from rnn_jax.tasks import occupancy
from rnn_jax.data import WindowSpec
from rnn_jax.common.errors import InputError
from rnn_jax.train import TrainConfig
from conftest import REPO

TINY = TrainConfig(hidden_size=8, epochs=2, patience=0, batch_size=256)
METHODS = ("model", "persistence", "seasonal_naive_day", "seasonal_naive_week", "ridge", "gbm")


def script(name, *args, cwd=REPO):
  return subprocess.run([sys.executable, str(REPO / "experiments" / name), *map(str, args)],
                        capture_output=True, text=True, cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory):
  out = tmp_path_factory.mktemp("runs") / "synthetic"
  result = occupancy.run(occupancy.DataSource(), WindowSpec(), TINY, out, progress=False,
                          log=lambda *a: None)
  return out, result


def test_run_writes_documented_results(synthetic_run):
  out, result = synthetic_run
  assert result["status"] == "done"
  for name in occupancy.RUN_FILES:
    assert (out / name).is_file(), name
  results = json.loads((out / "results.json").read_text())
  for split in ("val", "test"):
    entries = results["splits"][split]
    assert set(METHODS) <= set(entries)
    for method in METHODS:
      e = entries[method]
      assert len(e["mae"]) == len(e["mae_pct"]) == 3
      assert e["n_windows"] > 0
      np.testing.assert_allclose(np.array(e["mae_pct"]),
                                 100 * np.array(e["mae"]) / results["capacity"])
  config = json.loads((out / "config.json").read_text())
  assert config["train"]["hidden_size"] == 8 and config["windows"]["window"] == 24
  assert len((out / "metrics.jsonl").read_text().splitlines()) == 2


def test_results_match_model_predictions(synthetic_run):
  out, result = synthetic_run
  dataset = result["dataset"]
  preds = occupancy.predictions(dataset, result["fit"].params)
  mae = np.abs(preds["test"] - dataset.test.target_people).mean(axis=0)
  reported = json.loads((out / "results.json").read_text())["splits"]["test"]["model"]["mae"]
  np.testing.assert_allclose(mae, reported, rtol=1e-6)


def test_refuses_to_overwrite_and_leaves_run_alone(synthetic_run):
  out, _ = synthetic_run
  before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
  with pytest.raises(InputError, match="already exists.*--overwrite"):
    occupancy.run(occupancy.DataSource(), WindowSpec(), TINY, out, progress=False)
  assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_forecast_uses_newest_window(synthetic_run):
  out, result = synthetic_run
  fc = occupancy.forecast(out, occupancy.DataSource())
  readings = data.synthetic_readings()
  window = data.newest_window(readings, WindowSpec(), result["dataset"].capacity)
  assert fc["window_end_utc"] == str(window.end_time)
  assert [f["horizon_minutes"] for f in fc["forecasts"]] == [10, 30, 60]
  for f in fc["forecasts"]:
    assert 0 <= f["people"] <= fc["capacity"]


def test_forecast_script_prints_people(synthetic_run):
  out, _ = synthetic_run
  proc = script("forecast.py", "--run", out)
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout.count("people") >= 3


def test_forecast_rejects_incompatible_run(synthetic_run, tmp_path):
  out, _ = synthetic_run
  bad = tmp_path / "bad"
  bad.mkdir()
  config = json.loads((out / "config.json").read_text())
  config["windows"]["features"] = ["occupancy", "calendar"]
  (bad / "config.json").write_text(json.dumps(config))
  (bad / "checkpoint.msgpack").write_bytes((out / "checkpoint.msgpack").read_bytes())
  with pytest.raises(InputError, match="incompatible run"):
    occupancy.load_run(bad)


def test_seeds_report_mean_and_spread(tmp_path):
  cfg = TrainConfig(hidden_size=8, epochs=1, patience=0, batch_size=512, seeds=3)
  result = occupancy.run(occupancy.DataSource(), WindowSpec(), cfg, tmp_path / "s",
                          progress=False, make_plots=False, log=lambda *a: None)
  results = result["results"]
  assert [m["seed"] for m in results["models"]] == [0, 1, 2]
  per_seed = np.array([m["splits"]["test"]["mae"] for m in results["models"]])
  np.testing.assert_allclose(results["splits"]["test"]["model"]["mae"], per_seed.mean(axis=0))
  np.testing.assert_allclose(results["splits"]["test"]["model"]["mae_std"],
                             per_seed.std(axis=0, ddof=1))
  assert per_seed[0].tolist() != per_seed[1].tolist()


def test_levels_task(tmp_path):
  result = occupancy.run(occupancy.DataSource(), WindowSpec(task="levels"), TINY,
                          tmp_path / "lv", progress=False, make_plots=False, log=lambda *a: None)
  for split in ("val", "test"):
    entries = result["results"]["splits"][split]
    assert {"model", "persistence", "ridge_threshold"} <= set(entries)
    assert 0 <= entries["model"]["accuracy"] <= 1


def test_train_script_bad_argument_one_line(tmp_path):
  out = tmp_path / "never"
  proc = script("train_occupancy.py", "--lr", "fast", "--out", out)
  assert proc.returncode == 2
  assert proc.stderr.strip().count("\n") == 0 and "--lr" in proc.stderr
  assert "Traceback" not in proc.stderr
  assert not out.exists()


@pytest.mark.slow
def test_short_real_training_on_gym(gym_csv, tmp_path):
  """A short real run on the campus gym file with calendar features, via the script."""
  out = tmp_path / "gym"
  proc = script("train_occupancy.py", "--csv", gym_csv, "--features", "occupancy,calendar",
                "--hidden-size", 16, "--epochs", 2, "--batch-size", 256, "--no-progress",
                "--no-plots", "--out", out)
  assert proc.returncode == 0, proc.stderr
  results = json.loads((out / "results.json").read_text())
  assert results["capacity"] == 145
  test = results["splits"]["test"]
  assert test["model"]["n_windows"] > 1000
  # Trained for two epochs, the model is already far better than forecasting an empty gym,
  # whose MAE is the mean test reading.
  dataset = data.make_dataset(data.read_csv(gym_csv), WindowSpec(features=("occupancy",
                                                                           "calendar")))
  empty_gym = dataset.test.target_people.mean(axis=0)
  assert np.all(np.array(test["model"]["mae"]) < 0.5 * empty_gym)
  fc = script("forecast.py", "--run", out, "--csv", gym_csv)
  assert fc.returncode == 0, fc.stderr
  assert "ends 2017-03-19T02:20" in fc.stdout  # the file's last reading: 2017-03-18 19:22 -07:00


def test_a_refusal_from_training_setup_leaves_nothing_behind(tmp_path, monkeypatch):
  """A batch that does not divide over the devices is refused by training's setup; the run
  directory (config.json included) must not exist afterwards."""
  from rnn_jax.train import parallel
  monkeypatch.setattr(parallel, "device_count", lambda devices=None: 3)   # 3 devices, B=256
  out = tmp_path / "run"
  with pytest.raises(InputError, match="--batch-size: 256 is not a multiple of the 3 devices"):
    occupancy.run(occupancy.DataSource(), WindowSpec(), TINY, out, progress=False,
                  make_plots=False, log=lambda *a: None)
  assert not out.exists() and list(tmp_path.iterdir()) == []

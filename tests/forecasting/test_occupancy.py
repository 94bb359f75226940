"""The occupancy experiment end to end (rnn_jax.forecasting.occupancy): scripts, run directory,
results.json, forecasting."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import jax
import numpy as np
import pytest

from rnn_jax import data, evaluation
from rnn_jax.core import model
from rnn_jax.evaluation import conformal
from rnn_jax.forecasting import forecast, occupancy
from rnn_jax.data import WindowSpec
from rnn_jax.common.errors import InputError
from rnn_jax.train import TrainConfig
from common.lock_holder import hold_lock, snapshot
from conftest import REPO, load_script, unfinished_copy

TINY = TrainConfig(hidden_size=8, epochs=2, patience=0, batch_size=256)
METHODS = ("model", "persistence", "seasonal_naive_day", "seasonal_naive_week", "ridge", "gbm",
           "gbm_median", "mstl")


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
  for split in ("val", "test"):
    interval = results["baseline_intervals"][split]["gbm_quantile"]
    assert interval["level"] == 0.8 and len(interval["interval_score"]) == 3
  config = json.loads((out / "config.json").read_text())
  assert config["train"]["hidden_size"] == 8 and config["windows"]["window"] == 24
  assert len((out / "metrics.jsonl").read_text().splitlines()) == 2


def test_the_runs_interval_level_reaches_the_baselines(synthetic_run, monkeypatch):
  _, result = synthetic_run
  dataset, fit, levels = result["dataset"], evaluation.fit_baselines, []

  def recording(ds, **kwargs):
    levels.append(kwargs["level"])
    return fit(ds, gbm_max_iter=5, mstl=False, level=kwargs["level"])

  monkeypatch.setattr(evaluation, "fit_baselines", recording)
  preds = occupancy.predictions(dataset, result["fit"].params, members=True)
  results = occupancy.evaluate(dataset, preds, [0], interval=0.5)
  assert levels == [0.5]
  for split in ("val", "test"):
    assert results["baseline_intervals"][split]["gbm_quantile"]["level"] == 0.5
    assert results["splits"][split]["model"]["interval"]["level"] == 0.5


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


def test_forecast_uses_newest_window_and_the_runs_interval(synthetic_run):
  out, result = synthetic_run
  fc = forecast.forecast(out, occupancy.DataSource())
  readings = data.synthetic_readings()
  window = data.newest_window(readings, WindowSpec(), result["dataset"].capacity)
  assert fc["window_end_utc"] == str(window.end_time.astype("datetime64[s]")) + "Z"
  assert fc["timezone"] == "UTC" and fc["unit"] == "people" and fc["models"] == 1
  assert [f["horizon_minutes"] for f in fc["forecasts"]] == [10, 30, 60]
  z = np.asarray(model.predict(result["fit"].params, window.xs))[0]
  q = json.loads((out / "results.json").read_text())["splits"]["val"]["model"]["interval"]["q"]
  for i, f in enumerate(fc["forecasts"]):
    assert f["value"] == pytest.approx(z[i] * fc["capacity"], rel=1e-6)
    lo, hi = np.clip([f["value"] - q[i], f["value"] + q[i]], 0, fc["capacity"])
    assert f["interval"] == {"level": 0.8, "low": pytest.approx(lo), "high": pytest.approx(hi)}


FORECAST_LINE = (r"  \+(10|30|60) min \(\d\d:\d\d UTC\): \d+ people \(80%: \d+-\d+\), "
                 r"\d+% of capacity")


def test_forecast_script_prints_point_interval_and_json(synthetic_run):
  out, _ = synthetic_run
  proc = script("forecast.py", "--run", out)
  assert proc.returncode == 0, proc.stderr
  lines = proc.stdout.splitlines()
  assert lines[0].startswith("newest complete window ends 2024-04-29 23:50 UTC (capacity 120 ")
  assert len(lines) == 4 and all(re.fullmatch(FORECAST_LINE, line) for line in lines[1:]), lines
  as_json = script("forecast.py", "--run", out, "--json")
  assert json.loads(as_json.stdout) == forecast.forecast(out, occupancy.DataSource())


def test_forecast_of_an_unfinished_run_says_it_has_no_interval(synthetic_run, tmp_path):
  out, _ = synthetic_run
  partial = unfinished_copy(out, tmp_path)
  text = forecast.forecast_text(partial)
  assert "(80%:" not in text and "no interval: the run has no readable results.json" in text
  assert all("interval" not in f for f in forecast.forecast(
      partial, occupancy.DataSource())["forecasts"])


def test_forecast_rejects_incompatible_run(synthetic_run, tmp_path):
  out, _ = synthetic_run
  bad = tmp_path / "bad"
  bad.mkdir()
  config = json.loads((out / "config.json").read_text())
  config["windows"]["features"] = ["occupancy", "calendar"]
  (bad / "config.json").write_text(json.dumps(config))
  (bad / "checkpoint.msgpack").write_bytes((out / "checkpoint.msgpack").read_bytes())
  with pytest.raises(InputError, match="incompatible run"):
    forecast.load_run(bad)


def write_gym_csv(path, readings):
  """``readings`` as a campus-gym-format CSV (UTC offsets +00:00)."""
  times = np.datetime_as_string(readings.time_utc, unit="s")
  rows = [f"{v:g},{t.replace('T', ' ')}+00:00" for v, t in zip(readings.value, times)]
  path.write_text("number_people,date\n" + "\n".join(rows) + "\n")


def test_forecast_finds_the_runs_csv_from_another_directory(tmp_path, monkeypatch):
  """config.json records the data file's absolute path; runs that recorded a relative one are
  read relative to the directory they were trained in (or, without one recorded, as given);
  a data file that is gone is named, with where it came from."""
  trained_in, elsewhere = tmp_path / "trained_in", tmp_path / "elsewhere"
  trained_in.mkdir(), elsewhere.mkdir()
  write_gym_csv(trained_in / "gym.csv", data.synthetic_readings())
  monkeypatch.chdir(trained_in)
  occupancy.run(occupancy.DataSource(csv="gym.csv"), WindowSpec(), TINY, "run", progress=False,
                make_plots=False, log=lambda *a: None)
  run = trained_in / "run"
  config = json.loads((run / "config.json").read_text())
  assert config["source"]["csv"] == str(trained_in / "gym.csv")
  assert config["cwd"] == str(trained_in)
  monkeypatch.chdir(elsewhere)
  expected = forecast.forecast_text(run, str(trained_in / "gym.csv"))
  forecast_script = load_script("forecast.py")
  assert forecast_script.main(["--run", str(run)]) == 0
  assert forecast.forecast_text(run) == expected
  # a run written before absolute paths: relative to its recorded cwd, else to the current one
  config["source"]["csv"] = "gym.csv"
  (run / "config.json").write_text(json.dumps(config))
  assert forecast.forecast_text(run) == expected
  del config["cwd"]
  (run / "config.json").write_text(json.dumps(config))
  with pytest.raises(InputError) as err:
    forecast.forecast_text(run)
  assert str(err.value) == (f"--run {run}: the run's data file {elsewhere / 'gym.csv'} "
                            "(recorded when it was trained) is not found; pass --csv")
  monkeypatch.chdir(trained_in)
  assert forecast.forecast_text(run) == expected
  (trained_in / "gym.csv").unlink()
  with pytest.raises(InputError, match="the run's data file .*gym.csv .recorded when it was "
                     "trained. is not found; pass --csv"):
    forecast.forecast_text(run)


@pytest.fixture(scope="module")
def ensemble_run(tmp_path_factory):
  out = tmp_path_factory.mktemp("runs") / "ensemble"
  cfg = TrainConfig(hidden_size=8, epochs=1, patience=0, batch_size=512, seeds=3)
  source = occupancy.DataSource(unit="cars")
  plotted = []   # the arguments the run gives its plots (drawn for real elsewhere)
  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(occupancy, "_plots", lambda *args, **kwargs: plotted.append(args))
    result = occupancy.run(source, WindowSpec(), cfg, out, progress=False,
                           log=lambda *a: None)
  return out, {**result, "plotted": plotted}


def test_seeds_report_the_mean_forecast_and_each_model(ensemble_run):
  _, result = ensemble_run
  results, dataset = result["results"], result["dataset"]
  assert [m["seed"] for m in results["models"]] == [0, 1, 2]
  members = occupancy.predictions(dataset, result["fit"].params, members=True)
  assert members["test"].shape == (3, len(dataset.test), 3)
  target = dataset.test.target_people
  entry = results["splits"]["test"]["model"]
  # the run's forecast is the mean of the 3 models; its MAE is not the mean of their MAEs
  np.testing.assert_allclose(entry["mae"], np.abs(members["test"].mean(0) - target).mean(0),
                             rtol=1e-6)
  per_seed = np.array([m["splits"]["test"]["mae"] for m in results["models"]])
  np.testing.assert_allclose(per_seed, np.abs(members["test"] - target).mean(1), rtol=1e-6)
  np.testing.assert_allclose(entry["members"]["mae"], per_seed.mean(axis=0))
  np.testing.assert_allclose(entry["members"]["mae_std"], per_seed.std(axis=0, ddof=1))
  np.testing.assert_allclose(entry["spread"], members["test"].std(0, ddof=1).mean(0), rtol=1e-6)
  assert per_seed[0].tolist() != per_seed[1].tolist()
  # seasonal baselines compare on their own windows with the same (mean) forecast
  rows = ~np.isnan(evaluation.baselines(dataset, "test")["seasonal_naive_day"]).any(1)
  np.testing.assert_allclose(results["splits"]["test"]["seasonal_naive_day"]
                             ["model_mae_same_windows"],
                             np.abs(members["test"].mean(0)[rows] - target[rows]).mean(0),
                             rtol=1e-6)


def test_learning_curves_of_an_ensemble_draw_every_model(ensemble_run, tmp_path, monkeypatch):
  """learning_curves.png of a --seeds N run gets every model's history, not model 0's."""
  _, result = ensemble_run
  (plotted,) = result["plotted"]
  assert plotted[3] == result["fit"].histories and len(plotted[3]) == 3
  calls = {}
  for name in ("learning_curves", "grad_norms", "forecast_vs_actual", "mae_by_horizon"):
    monkeypatch.setattr(occupancy.plots, name,
                        lambda *a, _name=name, **k: calls.setdefault(_name, a))
  dataset, fitted = result["dataset"], result["fit"]
  preds = {k: v.mean(0) for k, v in occupancy.predictions(dataset, fitted.params,
                                                          members=True).items()}
  base = {"test": {"persistence": np.zeros_like(preds["test"])}}
  first = jax.tree.map(lambda a: a[0], fitted.params)
  occupancy._plots(tmp_path, dataset, result["results"], fitted.histories, first, preds, base)
  assert calls["learning_curves"][0] == fitted.histories and len(fitted.histories) == 3


def test_interval_is_calibrated_on_val_and_measured_on_test(ensemble_run):
  _, result = ensemble_run
  results, dataset = result["results"], result["dataset"]
  mean = {k: v.mean(0) for k, v in occupancy.predictions(
      dataset, result["fit"].params, members=True).items()}
  q = conformal.quantiles(np.abs(mean["val"] - dataset.val.target_people), 0.8)
  for split in ("val", "test"):
    iv = results["splits"][split]["model"]["interval"]
    np.testing.assert_allclose(iv["q"], q)
    lo, hi = np.clip(mean[split] - q, 0, dataset.capacity), np.clip(mean[split] + q, 0,
                                                                     dataset.capacity)
    target = dataset[split].target_people
    np.testing.assert_allclose(iv["coverage"], ((target >= lo) & (target <= hi)).mean(0))
    np.testing.assert_allclose(iv["mean_width"], (hi - lo).mean(0))
  # calibrated on val: there at least the ceil(0.8 (n+1))-th smallest residual is covered (more
  # with ties, as at night when forecast and target are both 0)
  n = len(dataset.val)
  assert all(c >= np.ceil(0.8 * (n + 1)) / n - 1e-12 for c in
             results["splits"]["val"]["model"]["interval"]["coverage"])


def test_ensemble_forecast_is_the_mean_in_the_runs_unit(ensemble_run):
  out, result = ensemble_run
  fc = forecast.forecast(out, occupancy.DataSource(unit="cars"))
  window = data.newest_window(data.synthetic_readings(), WindowSpec(), result["dataset"].capacity)
  z = np.asarray(jax.vmap(model.predict, in_axes=(0, None))(
      result["fit"].params, window.xs))[:, 0]
  assert fc["models"] == 3 and fc["unit"] == "cars"
  np.testing.assert_allclose([f["value"] for f in fc["forecasts"]],
                             z.mean(0) * fc["capacity"], rtol=1e-6)
  text = forecast.forecast_text(out)
  assert "the mean of 3 models" in text and text.count(" cars (80%: ") == 3
  assert "MAE in cars" in evaluation.format_table(result["results"])


def test_unit_must_be_a_name(tmp_path):
  with pytest.raises(InputError, match="--unit"):
    occupancy.run(occupancy.DataSource(unit=" "), WindowSpec(), TINY, tmp_path / "u",
                  progress=False, log=lambda *a: None)
  with pytest.raises(InputError, match="--interval: expected a level strictly between 0 and 1"):
    occupancy.run(occupancy.DataSource(), WindowSpec(), TINY, tmp_path / "u", interval=1.0,
                  progress=False, log=lambda *a: None)
  assert not (tmp_path / "u").exists()


def test_presets_set_defaults_and_flags_win():
  train_occupancy = load_script("train_occupancy.py")
  _, source, spec, cfg = train_occupancy.parse([])
  forecast = occupancy.PRESETS["forecast"]
  assert spec.features == ("occupancy", "calendar") and spec.window == forecast["window"]
  assert (cfg.hidden_size, cfg.init, cfg.optimizer, cfg.seeds) == (64, "irnn", "adam", 5)
  args, _, spec, cfg = train_occupancy.parse(["--preset", "notes", "--epochs", "3"])
  assert args.preset == "notes" and spec.features == ("occupancy",) and spec.window == 24
  assert (cfg.hidden_size, cfg.init, cfg.optimizer, cfg.clip, cfg.seeds, cfg.epochs) == (
      200, "normal", "sgd", 0.0, 1, 3)
  _, _, spec, cfg = train_occupancy.parse(["--features", "occupancy", "--seeds", "2"])
  assert spec.features == ("occupancy",) and cfg.seeds == 2 and cfg.hidden_size == 64


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


@pytest.mark.parametrize("flags, message", [
    (["--value-column", "date"], "--value-column date: is also the time column (--time-column "
     "defaults to 'date'); name two different columns"),
    (["--time-column", "number_people"], "--time-column number_people: is also the value column "
     "(--value-column defaults to 'number_people'); name two different columns"),
    (["--time-column", "when", "--value-column", " when"], "--time-column when and "
     "--value-column when: the same column; name two different columns"),
])
def test_one_column_for_time_and_value_is_named_by_its_flags(tmp_path, capsys, flags, message):
  csv = tmp_path / "gym.csv"
  csv.write_text("number_people,date,when\n3,2017-08-01 06:00:00-07:00,1\n")
  out = tmp_path / "never"
  code = load_script("train_occupancy.py").main(["--csv", str(csv), *flags, "--out", str(out)])
  assert code == 2 and capsys.readouterr().err == f"error: {message}\n"
  assert not out.exists()


@pytest.mark.slow
def test_short_real_training_on_gym(gym_csv, tmp_path):
  """A short real run on the campus gym file with the default preset (calendar features, two
  members here), via the script."""
  out = tmp_path / "gym"
  proc = script("train_occupancy.py", "--csv", gym_csv, "--hidden-size", 16, "--epochs", 3,
                "--seeds", 2, "--batch-size", 256, "--no-progress", "--no-plots", "--out", out)
  assert proc.returncode == 0, proc.stderr
  results = json.loads((out / "results.json").read_text())
  assert results["capacity"] == 145
  test = results["splits"]["test"]
  assert test["model"]["n_windows"] > 1000
  # Trained for three epochs, the model is already far better than forecasting an empty gym,
  # whose MAE is the mean test reading.
  preset = occupancy.PRESETS["forecast"]
  dataset = data.make_dataset(data.read_csv(gym_csv), WindowSpec(features=preset["features"],
                                                                 window=preset["window"]))
  empty_gym = dataset.test.target_people.mean(axis=0)
  assert np.all(np.array(test["model"]["mae"]) < 0.5 * empty_gym)
  fc = script("forecast.py", "--run", out, "--csv", gym_csv)
  assert fc.returncode == 0, fc.stderr
  # the file's last reading: 2017-03-18 19:22 -07:00, in local time
  assert "ends 2017-03-18 19:20 UTC-07:00 (capacity 145 people" in fc.stdout, fc.stdout
  assert "+10 min (19:30 UTC-07:00): " in fc.stdout


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


def test_a_run_directory_in_use_is_refused_to_every_other_run(tmp_path, capsys):
  """While a live run holds --out, a second run there is refused (--overwrite and --resume
  included) with one line and exit 2, and nothing of the first changes; once the first is
  killed, its directory is free again."""
  train_occupancy = load_script("train_occupancy.py")
  out = tmp_path / "run"
  tiny = ["--epochs", "1", "--seeds", "1", "--window", "4", "--hidden-size", "4", "--no-plots",
          "--no-progress", "--out", str(out)]
  assert train_occupancy.main(tiny) == 0
  holder = hold_lock(out)
  before = snapshot(out)
  try:
    for flags, says in (([], "a run already exists there"),
                        (["--overwrite"], "another run is writing there now"),
                        (["--resume", "--epochs", "2"], "another run is writing there now")):
      capsys.readouterr()
      assert train_occupancy.main(tiny + flags) == 2
      err = capsys.readouterr().err
      assert err.startswith(f"error: --out {out}: {says}")
      assert err.count("\n") == 1 and "run saved" not in err
      assert snapshot(out) == before
  finally:
    holder.kill()
    holder.wait()
  assert train_occupancy.main(tiny + ["--overwrite"]) == 0
  assert "run saved" in capsys.readouterr().out and not (out / ".lock").exists()

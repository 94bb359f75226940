"""rnn_jax.forecasting.panel: several series trained and evaluated one by one, their ratios of
model MAE to the best baseline's and the geometric mean over the series."""
from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest

from conftest import REPO, load_script
from rnn_jax.common.errors import InputError
from rnn_jax.data import WindowSpec
from rnn_jax.forecasting import panel
from rnn_jax.settings import DataSource, TrainConfig

TINY = TrainConfig(hidden_size=8, epochs=1, patience=0, batch_size=256)
SPEC = WindowSpec(window=6, horizons=(1, 3))


def rhythm_csv(path, capacity: int, days: int = 8, seed: int = 0):
  """10-minute readings of a noisy daily rhythm in 0..capacity."""
  i = np.arange(days * 144)
  rng = np.random.default_rng(seed)
  v = 0.4 * capacity + 0.35 * capacity * np.sin(2 * np.pi * ((i % 144) / 6 - 9) / 24)
  v = np.clip(np.round(v + rng.normal(0, 0.05 * capacity, len(i))), 0, capacity)
  t0 = np.datetime64("2024-03-04T00:00", "m")
  path.write_text("time,people\n" + "".join(
      f"{t0 + np.timedelta64(10 * k, 'm')},{x:g}\n" for k, x in enumerate(v)))
  return path


def test_aggregate_is_the_geometric_mean_over_series():
  per_series = [{"val": {"ratio": [0.5, 1.0]}, "test": {"ratio": [2.0, 3.0]}},
                {"val": {"ratio": [2.0, 4.0]}, "test": {"ratio": [0.5, 3.0]}}]
  agg = panel.aggregate(per_series)
  np.testing.assert_allclose(agg["val"]["geomean_ratio"], [1.0, 2.0])
  np.testing.assert_allclose(agg["test"]["geomean_ratio"], [1.0, 3.0])
  assert agg["val"]["n_series"] == 2


def test_ratio_is_taken_on_each_baselines_own_windows():
  split = {"model": {"mae": [10.0, 20.0]},
           "persistence": {"mae": [12.0, 15.0]},
           "seasonal_naive_day": {"mae": [8.0, 30.0], "model_mae_same_windows": [9.0, 25.0]}}
  r = panel.series_ratios({"splits": {"val": split, "test": split}})["val"]
  assert r["best_baseline"] == ["seasonal_naive_day", "persistence"]
  np.testing.assert_allclose(r["ratio"], [9 / 8, 20 / 15])
  np.testing.assert_allclose(r["best_baseline_mae"], [8.0, 15.0])
  assert r["model_mae"] == [10.0, 20.0]


def test_panel_of_two_csvs_from_the_script(tmp_path, capsys):
  a, b = rhythm_csv(tmp_path / "small.csv", 40), rhythm_csv(tmp_path / "big.csv", 500, seed=1)
  argv = ["--csv", str(a), str(b), "--time-column", "time", "--value-column", "people",
          "--preset", "notes", "--hidden-size", "8", "--epochs", "1", "--window", "6",
          "--horizons", "1,3", "--no-progress", "--out", str(tmp_path / "p")]
  assert load_script("train_occupancy.py").main(argv) == 0
  assert (tmp_path / "p" / panel.PLOT).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  printed = capsys.readouterr().out
  result = json.loads((tmp_path / "p" / panel.PANEL).read_text())
  assert [s["name"] for s in result["series"]] == ["small", "big"]
  assert result["horizon_minutes"] == [10, 30]
  logs = []
  for s in result["series"]:
    run = json.loads((tmp_path / "p" / s["name"] / "results.json").read_text())
    assert s["splits"] == panel.series_ratios(run)
    logs.append(np.log(s["splits"]["test"]["ratio"]))
  np.testing.assert_allclose(result["aggregate"]["test"]["geomean_ratio"],
                             np.exp(np.mean(logs, axis=0)))
  assert "geometric mean" in printed and "small" in printed and "big" in printed
  small, big = result["series"]                         # each series its own fitted capacity
  assert small["capacity_fitted"] and big["capacity_fitted"]
  assert 30 < small["capacity"] <= 40 < 350 < big["capacity"] <= 500


def test_panel_spec_sets_each_series_and_keeps_nothing_on_a_bad_file(tmp_path):
  rhythm_csv(tmp_path / "a.csv", 40)
  spec = {"defaults": {"time_column": "time", "value_column": "people", "unit": "cars"},
          "series": [{"name": "a", "csv": str(tmp_path / "a.csv"), "capacity": 40},
                     {"name": "b", "csv": str(tmp_path / "missing.csv")}]}
  (tmp_path / "spec.json").write_text(json.dumps(spec))
  series = panel.load_spec(tmp_path / "spec.json")
  assert [(s.name, s.source.capacity, s.source.unit) for s in series] == [
      ("a", 40.0, "cars"), ("b", None, "cars")]
  with pytest.raises(InputError, match=r"series 'b': .*missing\.csv: no such file"):
    panel.run(series, SPEC, TINY, tmp_path / "out", progress=False, log=lambda *a: None)
  assert not (tmp_path / "out").exists()


def test_command_line_data_flags_reach_every_series_of_a_spec(tmp_path):
  spec = {"series": [{"name": "a", "csv": "a.csv", "time_column": "t", "value_column": "v"},
                     {"name": "b", "csv": "b.csv", "time_column": "t", "value_column": "v",
                      "max_flat_hours": 4}]}
  (tmp_path / "spec.json").write_text(json.dumps(spec))
  series = panel.load_spec(tmp_path / "spec.json", DataSource(strict=True, max_flat_hours=8))
  assert [(s.source.strict, s.source.max_flat_hours) for s in series] == [(True, 8), (True, 4)]


def test_the_panel_spec_names_the_gym_and_the_five_car_parks():
  gym, *parks = panel.load_spec(REPO / "experiments" / "panel.json")
  assert gym.name == "campus_gym" and gym.source == DataSource(csv="../shared/data/campus_gym.csv")
  assert {s.name: s.source.capacity for s in parks} == {
      "bielefeld_hauptbahnhof": 900, "duesseldorf_schadow_arkaden": 693,
      "dresden_semperoper": 400, "nuernberg_erler_klinik": 200, "dresden_budapester_strasse": 127}
  assert all(s.source.csv == f"../shared/data/parking/{s.name}.csv" and
             s.source.timezone == "Europe/Berlin" and s.source.unit == "cars" for s in parks)


BAD_SPECS = [
    ("not-json", "{", "not JSON"),
    ("no-series", {"runs": []}, "expected an object with a list \"series\""),
    ("unknown-field", {"series": [{"name": "a", "csv": "a.csv", "colour": 1},
                                  {"name": "b", "csv": "b.csv"}]}, "unknown fields ['colour']"),
    ("duplicate-name", {"series": [{"name": "a", "csv": "a.csv"}, {"name": "a", "csv": "b.csv"}]},
     "series 1 and 2 are both named 'a'"),
    ("one-series", {"series": [{"name": "a", "csv": "a.csv"}]}, "at least two series, got 1"),
    ("bad-name", {"series": [{"name": "../x", "csv": "a.csv"}, {"name": "b", "csv": "b.csv"}]},
     "name '../x': expected letters"),
    ("no-csv", {"series": [{"name": "a"}, {"name": "b", "csv": "b.csv"}]}, "expected \"csv\""),
    ("bad-field-value", {"series": [{"name": "a", "csv": "a.csv", "max_flat_hours": -2},
                                    {"name": "b", "csv": "b.csv"}]},
     "series 1 (a): --max-flat-hours: expected a finite number >= 0"),
]


@pytest.mark.parametrize("content,fragment", [c[1:] for c in BAD_SPECS],
                         ids=[c[0] for c in BAD_SPECS])
def test_bad_panel_spec_gives_one_line(tmp_path, content, fragment):
  path = tmp_path / "spec.json"
  path.write_text(content if isinstance(content, str) else json.dumps(content))
  with pytest.raises(InputError) as info:
    panel.load_spec(path)
  assert fragment in str(info.value) and str(path) in str(info.value)
  assert "\n" not in str(info.value)


def test_panel_refuses_levels_and_both_csv_and_panel(tmp_path, capsys):
  series = [panel.Series("a", DataSource()), panel.Series("b", DataSource(synthetic_seed=1))]
  with pytest.raises(InputError, match="--task levels: a panel compares MAE"):
    panel.run(series, WindowSpec(task="levels"), TINY, tmp_path / "o", log=lambda *a: None)
  main = load_script("train_occupancy.py").main
  assert main(["--panel", "x.json", "--csv", "a.csv", "--out", str(tmp_path / "o")]) == 2
  assert main(["--csv", "a.csv", "b.csv", "--coordinator", "h:1", "--out",
               str(tmp_path / "o")]) == 2
  err = capsys.readouterr().err
  assert "--panel and --csv: give one of them" in err and "--coordinator: not available" in err
  assert not (tmp_path / "o").exists()


def test_a_baseline_without_windows_is_left_out():
  split = {"model": {"mae": [10.0]}, "persistence": {"mae": [12.0]},
           "seasonal_naive_week": {"mae": [float("nan")], "model_mae_same_windows": [float("nan")]}}
  r = panel.series_ratios({"splits": {"val": split, "test": split}})["test"]
  assert r["best_baseline"] == ["persistence"] and r["ratio"] == [10 / 12]


@pytest.fixture(scope="module")
def global_panel(tmp_path_factory):
  """``(series, out, result, logs)`` of a two-series panel with the global model, one epoch."""
  tmp = tmp_path_factory.mktemp("global")
  a, b = rhythm_csv(tmp / "a.csv", 40), rhythm_csv(tmp / "b.csv", 500, seed=1)
  series = panel.from_csvs([str(a), str(b)], DataSource(time_column="time", value_column="people"))
  logs = []
  result = panel.run(series, SPEC, TINY, tmp / "p", progress=False, make_plots=False,
                     global_model=True, log=logs.append)["panel"]
  return series, tmp / "p", result, logs


def test_global_model_is_trained_on_every_series_and_evaluated_on_each(global_panel, tmp_path,
                                                                        capsys):
  _, out, result, logs = global_panel
  train_windows = []
  for s in ("a", "b"):
    run = json.loads((out / s / "results.json").read_text())
    glob = json.loads((out / panel.GLOBAL / f"results_{s}.json").read_text())
    assert glob["data"] == run["data"]                         # the same windows and capacity
    for split in panel.SPLITS:                                  # ... and the same baselines
      assert glob["splits"][split]["persistence"] == run["splits"][split]["persistence"]
    train_windows.append(run["data"]["splits"]["train"]["n_windows"])
  assert f"global model: {sum(train_windows)} training" in "\n".join(logs)
  metrics = [json.loads(line) for line in (out / panel.GLOBAL / "metrics.jsonl").open()]
  assert len(metrics) == TINY.epochs
  ratios = [s["splits"] for s in result["global"]["series"]]
  assert ratios == [panel.series_ratios(json.loads(
      (out / panel.GLOBAL / f"results_{s}.json").read_text())) for s in ("a", "b")]
  assert result["global"]["aggregate"] == panel.aggregate(ratios)
  assert "one model trained on every series" in panel.format_table(result)
  assert 0 < result["global"]["seconds"] < result["seconds"]
  assert sum(s["seconds"] for s in result["series"]) + result["global"]["seconds"] <= (
      result["seconds"] + 0.2)                                   # each rounded to 0.1 s
  assert f"2 series in {result['seconds']:.0f} s (a " in "\n".join(logs)
  rows, tables = panel.ratio_tables(result)                    # what panel_ratios.png draws
  assert rows == ["a", "b", "geometric mean"]
  assert list(tables) == ["val", "test", "global val", "global test"]
  for split in panel.SPLITS:
    np.testing.assert_array_equal(tables["global " + split][1],
                                  result["global"]["series"][1]["splits"][split]["ratio"])
    np.testing.assert_array_equal(tables[split][-1], result["aggregate"][split]["geomean_ratio"])
  capsys.readouterr()
  main = load_script("train_occupancy.py").main
  assert main(["--global-model", "--out", str(tmp_path / "g")]) == 2
  assert "--global-model: expected several series" in capsys.readouterr().err
  assert not (tmp_path / "g").exists()


def test_resume_continues_each_started_run_and_starts_the_others(global_panel, tmp_path):
  series, done, _, _ = global_panel
  out = tmp_path / "p"
  shutil.copytree(done, out)
  shutil.rmtree(out / "b")                                       # b never started
  (out / panel.PANEL).unlink()                                   # the panel did not finish
  before = {d: (out / d / "metrics.jsonl").read_text().splitlines() for d in ("a", panel.GLOBAL)}
  longer = dataclasses.replace(TINY, epochs=2)
  with pytest.raises(InputError, match="a run already exists"):  # without --resume: refused
    panel.run(series, SPEC, longer, out, progress=False, make_plots=False, global_model=True,
              log=lambda *a: None)
  result = panel.run(series, SPEC, longer, out, resume=True, progress=False, make_plots=False,
                     global_model=True, log=lambda *a: None)["panel"]
  for d, lines in before.items():               # epoch 1 kept as it was (elapsed_s too) ...
    now = (out / d / "metrics.jsonl").read_text().splitlines()
    assert now[:len(lines)] == lines and len(now) == 2 * len(lines), d   # ... and epoch 2 added
  b = [json.loads(line) for line in (out / "b" / "metrics.jsonl").read_text().splitlines()]
  assert [row["epoch"] for row in b] == [1, 2]
  assert [s["name"] for s in result["series"]] == ["a", "b"] and "global" in result
  assert json.loads((out / panel.PANEL).read_text())["train"]["epochs"] == 2
  with pytest.raises(InputError, match="--resume and --overwrite"):
    panel.run(series, SPEC, longer, out, resume=True, overwrite=True, log=lambda *a: None)

"""The letters run (rnn_jax.letters) through experiments/train_letters.py: the run
directory, bad input, --overwrite."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from rnn_jax.common import cli
from rnn_jax.core import mlp
from rnn_jax import letters

from common.lock_holder import hold_lock, snapshot
from conftest import REPO, load_script
from letters_helpers import HEADER, row, write

SCRIPT = REPO / "experiments" / "train_letters.py"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------------------------
# The script


def _env():
  env = dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu")
  return env


def test_script_end_to_end(tmp_path):
  out = tmp_path / "runs" / "letters"
  proc = subprocess.run([sys.executable, str(SCRIPT), "--epochs", "2", "--hidden-size", "16",
                         "--out", str(out)], cwd=tmp_path, env=_env(), capture_output=True,
                        text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout.startswith("test accuracy ") and str(out) in proc.stdout
  assert sorted(p.name for p in out.iterdir()) == [
      "accuracy.png", "config.json", "learning_curve.png", "metrics.jsonl", "params.npz",
      "results.json"]
  assert sorted(p.name for p in out.parent.iterdir()) == ["letters"]   # no staging dir left
  config = json.loads((out / "config.json").read_text())
  assert config["data"]["name"] == "sklearn.datasets.load_digits"
  assert config["train"] == {"hidden_size": 16, "lr": 0.01, "epochs": 2, "batch_size": 1,
                             "grad": "hand", "seed": 0}
  metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
  assert [m["epoch"] for m in metrics] == [1, 2]
  results = json.loads((out / "results.json").read_text())
  assert f"{results['test_accuracy']:.4f}" in proc.stdout
  assert results["test_accuracy"] > 0.5                       # 10 digits: chance 0.1
  for png in ("accuracy.png", "learning_curve.png"):
    assert (out / png).read_bytes()[:8] == PNG_SIGNATURE
  with np.load(out / "params.npz") as saved:
    assert saved["V"].shape == (16, 65) and saved["W"].shape == (10, 17)


def test_script_bad_argument_subprocess(tmp_path):
  out = tmp_path / "run"
  proc = subprocess.run([sys.executable, str(SCRIPT), "--lr", "fast", "--out", str(out)],
                        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=60)
  assert proc.returncode == 2
  assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: ")
  assert "--lr" in proc.stderr and "Traceback" not in proc.stderr
  assert proc.stdout == "" and not out.exists()


@pytest.fixture(scope="module")
def script():
  return load_script("train_letters.py")


BAD_ARGS = {
    "lr_not_a_number": (["--lr", "abc"], "--lr: expected a number, got 'abc'"),
    "lr_zero": (["--lr", "0"], "--lr: expected a finite positive number"),
    "lr_nan": (["--lr", "nan"], "--lr: expected a finite number"),
    "batch_size_zero": (["--batch-size", "0"], "--batch-size: expected a positive integer"),
    "hidden_zero": (["--hidden-size", "0"], "--hidden-size: expected a positive integer"),
    "epochs_zero": (["--epochs", "0"], "--epochs: expected a positive integer"),
    "epochs_fraction": (["--epochs", "1.5"], "--epochs: expected an integer, got '1.5'"),
    "seed_negative": (["--seed", "-1"], "--seed: expected an integer from 0 to 4294967295"),
    "grad_unknown": (["--grad", "numeric"], "--grad: expected one of autodiff, hand"),
    "unknown_flag": (["--learning-rate", "1"], "unrecognized arguments"),
    "csv_missing": (["--csv", "{tmp}/nope.csv"], "nope.csv: no such file"),
    "csv_directory": (["--csv", "{tmp}"], "is a directory"),
    "csv_bad_row": (["--csv", "{tmp}/bad.csv"], "bad.csv: line 4: 3 fields"),
    "csv_too_small": (["--csv", "{tmp}/tiny.csv"], "tiny.csv: 2 rows give an empty split"),
    "batch_larger_than_train": (["--batch-size", "5000"], "--batch-size 5000: larger than"),
    "out_exists": (["--out", "{tmp}/existing"], "already exists; pass --overwrite"),
    "out_not_a_run": (["--out", "{tmp}/existing", "--overwrite"], "not a run directory"),
    "out_is_file": (["--out", "{tmp}/file.txt"], "exists and is not a directory"),
    "out_under_file": (["--out", "{tmp}/file.txt/run"], "is not a directory"),
}


@pytest.mark.parametrize("case", sorted(BAD_ARGS))
def test_script_bad_input_one_line_exit_2_nothing_written(script, tmp_path, capsys, case):
  argv, words = BAD_ARGS[case]
  write(tmp_path, HEADER + row("A") + row("B") + "C,1,2\n", "bad.csv")
  write(tmp_path, HEADER + row("A") + row("B"), "tiny.csv")
  (tmp_path / "existing").mkdir()
  (tmp_path / "existing" / "notes.txt").write_text("mine")
  (tmp_path / "file.txt").write_text("a file")
  argv = [a.format(tmp=tmp_path) for a in argv]
  if "--out" not in argv:
    argv += ["--out", str(tmp_path / "runs" / "letters")]
  before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
  assert script.main(argv + ["--no-progress"]) == 2
  captured = capsys.readouterr()
  assert captured.out == ""
  assert captured.err.count("\n") == 1 and captured.err.startswith("error: ")
  assert words in captured.err, captured.err
  assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
  assert (tmp_path / "existing" / "notes.txt").read_text() == "mine"


def test_script_overwrite_replaces_a_previous_run(script, tmp_path, capsys, monkeypatch):
  """--overwrite swaps in the new run only when it is complete. Training is stubbed (the real
  thing runs in test_script_end_to_end); what is tested is the directory handling."""
  def fake_train(X, y, *, hidden_size, epochs, seed, num_classes, on_epoch, **kwargs):
    history = [{"epoch": e, "sgd_loss": 1.0 / e, "train_loss": 1.0 / e, "train_accuracy": 0.5,
                "val_loss": 1.0 / e, "val_accuracy": 0.5} for e in range(1, epochs + 1)]
    for row in history:
      on_epoch(row)
    params = mlp.MLPParams(V=np.full((hidden_size, X.shape[1] + 1), float(seed)),
                           W=np.zeros((num_classes, hidden_size + 1)))
    return letters.TrainResult(params=params, history=history, test_loss=1.0,
                               test_accuracy=0.25, mean=np.zeros(X.shape[1]),
                               std=np.ones(X.shape[1]), sizes={"train": 8, "val": 4, "test": 4})

  monkeypatch.setattr(letters, "train", fake_train)
  out = tmp_path / "run"
  argv = ["--epochs", "2", "--hidden-size", "3", "--out", str(out), "--no-progress"]
  assert script.main(argv) == 0
  assert "test accuracy 0.2500 (1/4)" in capsys.readouterr().out
  assert script.main(argv + ["--seed", "1"]) == 2          # refuses without --overwrite
  assert "already exists" in capsys.readouterr().err
  assert json.loads((out / "config.json").read_text())["train"]["seed"] == 0

  def failing_plot(*args, **kwargs):
    raise OSError("disk full")
  from rnn_jax.common import plots
  monkeypatch.setattr(plots, "accuracy_curve", failing_plot)
  with pytest.raises(OSError, match="disk full"):                   # fails at the last file
    script.main(argv + ["--seed", "2", "--overwrite"])
  # the old run is intact
  assert json.loads((out / "config.json").read_text())["train"]["seed"] == 0
  assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]      # no staging dir left
  monkeypatch.undo()
  monkeypatch.setattr(letters, "train", fake_train)

  assert script.main(argv + ["--seed", "1", "--overwrite"]) == 0
  assert json.loads((out / "config.json").read_text())["train"]["seed"] == 1
  with np.load(out / "params.npz") as saved:
    assert saved["V"][0, 0] == 1.0
  assert [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()] \
      == [1, 2]                                                     # not appended to the old log
  assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_run_directory_in_use_is_refused_to_every_other_run(tmp_path, capsys):
  """A letters run assembles itself beside --out and swaps it in when complete; while it lives
  it holds --out's lock, so a second run there is refused (--overwrite included) with one
  line and exit 2 instead of swapping its run in over, or under, the first."""
  train_letters = load_script("train_letters.py")
  out = tmp_path / "letters"
  tiny = ["--epochs", "1", "--hidden-size", "4", "--no-progress", "--out", str(out)]
  assert train_letters.main(tiny) == 0
  holder = hold_lock(out, staged=True)
  before = snapshot(tmp_path)
  try:
    capsys.readouterr()
    assert train_letters.main(tiny + ["--overwrite"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --out {out}: another run is writing there now")
    assert err.count("\n") == 1 and snapshot(tmp_path) == before
  finally:
    holder.kill()
    holder.wait()
  assert train_letters.main(tiny + ["--overwrite"]) == 0
  assert sorted(p.name for p in tmp_path.iterdir()) == ["letters"]

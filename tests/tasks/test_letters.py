"""The letters experiment: reader, preprocessing, SGD training (hand vs autodiff), the script."""
from __future__ import annotations

import collections
import importlib.util
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnn_jax.common import cli
from rnn_jax.core import mlp
from rnn_jax.tasks import letters
from rnn_jax.common.errors import InputError

from conftest import REPO

SCRIPT = REPO / "experiments" / "train_letters.py"
HEADER = "Letter," + ",".join(str(i) for i in range(1, 17)) + "\n"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def row(letter="A", values=range(16)):
  return letter + "," + ",".join(str(v) for v in values) + "\n"


def write(tmp_path, content, name="letters.csv"):
  path = tmp_path / name
  path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
  return path


# --------------------------------------------------------------------------------------------
# Reading


UCI_NAMES = ("lettr,x-box,y-box,width,high,onpix,x-bar,y-bar,x2bar,y2bar,xybar,x2ybr,xy2br,"
             "x-ege,xegvy,y-ege,yegvx\n")   # attribute names of letter-recognition.names


@pytest.mark.parametrize("variant", ["header", "uci_names_header", "no_header", "crlf", "bom",
                                     "blank_lines"])
def test_read_letters_formats(tmp_path, variant):
  body = row("T", range(16)) + row("A", [15] * 16) + row("Z", [0.5] * 16)
  content = {"header": HEADER + body, "uci_names_header": UCI_NAMES + body, "no_header": body,
             "crlf": (HEADER + body).replace("\n", "\r\n"),
             "bom": "\ufeff" + HEADER + body,
             "blank_lines": "\n" + HEADER + "\n" + body + "\n\n"}[variant]
  X, y = letters.read_letters(write(tmp_path, content))
  assert X.dtype == np.float32 and X.shape == (3, 16)
  assert y.dtype == np.int32 and y.tolist() == [19, 0, 25]
  np.testing.assert_array_equal(X[0], np.arange(16))
  np.testing.assert_array_equal(X[2], np.full(16, 0.5))


BAD_FILES = {
    # name: (content, or None for "missing", or "dir"; expected words; line number or None)
    "missing": (None, "no such file", None),
    "directory": ("dir", "is a directory", None),
    "empty": ("", "empty file", None),
    "blank_only": ("\n \n\n", "empty file", None),
    "header_only": (HEADER, "header only", None),
    "not_utf8": ((HEADER + row("B")).encode() + b"\xff\xfe,1\n", "not UTF-8", 3),
    "binary": (bytes(range(256)) * 3, "not UTF-8", 2),   # byte 10 is a newline
    "too_few_fields": (HEADER + row("A") + "B,1,2,3\n", "4 fields, expected 17", 3),
    "too_many_fields": (row("A") + row("B", range(17)), "18 fields, expected 17", 2),
    "header_wrong_width": ("Letter,1,2\n" + row("A"), "header has 3 fields", 1),
    "lowercase_letter": (HEADER + row("a"), "not a capital letter", 2),
    "digit_label": (row("A") + row("7"), "not a capital letter", 2),
    "word_label_first_line": (row("AB") + row("A"), "label 'AB' is not a capital letter", 1),
    "empty_label": (row("A") + row(""), "not a capital letter", 2),
    "non_numeric": (HEADER + row("A", [1] * 15 + ["x"]), "column 17: feature 'x'", 2),
    "empty_feature": (HEADER + row("A", [1] * 5 + [""] + [1] * 10), "column 7", 2),
    "nan_feature": (HEADER + row("A", ["nan"] + [1] * 15), "not a finite number", 2),
    "inf_feature": (row("A", [1] * 3 + ["inf"] + [1] * 12), "not a finite number", 1),
    "nul_byte": (HEADER + "A,1\x00,2\n", None, 2),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_read_letters_bad_input(tmp_path, case):
  content, words, line = BAD_FILES[case]
  path = tmp_path / "bad.csv"
  if content == "dir":
    path.mkdir()
  elif content is not None:
    write(tmp_path, content, "bad.csv")
  with pytest.raises(InputError) as info:
    letters.read_letters(path)
  message = str(info.value)
  assert "\n" not in message
  assert message.startswith(str(path))
  if words is not None:
    assert words in message
  if line is not None:
    assert f"line {line}" in message


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_read_letters_damaged_files(tmp_path, data):
  """Truncated, shuffled or noisy copies of a good file load or fail with the one-line error."""
  good = [HEADER] + [row(chr(65 + i % 26), [(i * 7 + j) % 16 for j in range(16)]) for i in range(8)]
  lines = list(good)
  for _ in range(data.draw(st.integers(0, 3))):
    i = data.draw(st.integers(0, len(lines) - 1))
    action = data.draw(st.sampled_from(["truncate", "drop", "swap", "quote", "junk"]))
    if action == "truncate":
      lines[i] = lines[i][:data.draw(st.integers(0, len(lines[i])))]
    elif action == "drop":
      lines.pop(i) if len(lines) > 1 else None
    elif action == "swap":
      fields = lines[i].rstrip("\n").split(",")
      lines[i] = ",".join(data.draw(st.permutations(fields))) + "\n"
    elif action == "quote":
      pos = data.draw(st.integers(0, len(lines[i])))
      lines[i] = lines[i][:pos] + '"' + lines[i][pos:]
    else:
      lines[i] = data.draw(st.binary(max_size=40)).decode("latin-1")
  raw = "".join(lines).encode("latin-1")
  if data.draw(st.booleans()):
    raw += data.draw(st.binary(max_size=20))
  path = write(tmp_path, raw, "damaged.csv")
  try:
    X, y = letters.read_letters(path)
  except InputError as err:
    assert "\n" not in str(err) and str(path) in str(err)
  else:
    assert X.shape == (len(y), 16) and X.dtype == np.float32
    assert np.isfinite(X).all() and ((0 <= y) & (y < 26)).all()


# Class distribution from the UCI repository's letter-recognition.names ("Class Distribution").
UCI_COUNTS = dict(A=789, B=766, C=736, D=805, E=768, F=775, G=773, H=734, I=755, J=747, K=739,
                  L=761, M=792, N=783, O=753, P=803, Q=783, R=758, S=748, T=796, U=813, V=764,
                  W=752, X=787, Y=786, Z=734)


def test_read_letters_real_file(letters_csv):
  X, y = letters.read_letters(letters_csv)
  assert X.shape == (20000, 16) and y.shape == (20000,)
  counts = collections.Counter(letters.LETTERS[i] for i in y)
  assert counts == UCI_COUNTS
  # The 16 attributes are integers scaled to 0..15 (letter-recognition.names).
  assert X.min() == 0 and X.max() == 15 and np.array_equal(X, np.round(X))
  assert letters.LETTERS[y[0]] == "T"
  np.testing.assert_array_equal(X[0], [2, 8, 3, 5, 1, 8, 13, 0, 6, 6, 10, 8, 0, 8, 0, 8])


def test_default_dataset_is_sklearn_digits():
  X, y = letters.default_dataset()
  assert X.shape == (1797, 64) and X.dtype == np.float32
  assert sorted(set(y.tolist())) == list(range(10))
  assert X.min() == 0 and X.max() == 16


# --------------------------------------------------------------------------------------------
# Preprocessing


def test_split_sizes():
  assert letters.split_sizes(20000) == (16000, 2000, 2000)
  assert sum(letters.split_sizes(1797)) == 1797
  with pytest.raises(InputError, match="empty split"):
    letters.split_sizes(4)


def test_prepare_uses_training_statistics_only():
  rng = np.random.default_rng(0)
  X = rng.normal(3.0, 2.0, size=(200, 5)).astype(np.float32)
  X[:, 4] = 7.0                          # a constant feature: std 1, no NaN
  y = rng.integers(0, 4, size=200)
  s = letters.prepare(X, y, seed=1)
  assert [len(a) for a in (s.x_train, s.x_val, s.x_test)] == [160, 20, 20]
  np.testing.assert_allclose(s.x_train[:, :4].mean(0), 0, atol=1e-12)
  np.testing.assert_allclose(s.x_train[:, :4].std(0), 1, atol=1e-12)
  assert s.std[4] == 1 and np.all(s.x_train[:, 4] == 0)
  assert s.y_train.shape == (160, 4) and np.all(s.y_train.sum(1) == 1)
  # Rows come back whole: the split is a permutation of the rows.
  back = np.concatenate([s.x_train, s.x_val, s.x_test]) * s.std + s.mean
  np.testing.assert_allclose(np.sort(back[:, 0]), np.sort(X[:, 0]), rtol=1e-6)
  # Changing the validation and test rows does not move the statistics.
  order = np.random.default_rng(1).permutation(200)
  X2 = X.copy()
  X2[order[160:]] += 100.0
  s2 = letters.prepare(X2, y, seed=1)
  np.testing.assert_array_equal(s2.mean, s.mean)
  np.testing.assert_array_equal(s2.x_train, s.x_train)
  # Seeded: same seed, same split; another seed, another split.
  np.testing.assert_array_equal(letters.prepare(X, y, seed=1).x_val, s.x_val)
  assert not np.array_equal(letters.prepare(X, y, seed=2).x_val, s.x_val)


# --------------------------------------------------------------------------------------------
# Training


def _blobs(n=300, d=5, k=3, seed=0, spread=0.3):
  rng = np.random.default_rng(seed)
  centers = rng.normal(0, 3, size=(k, d))
  y = rng.integers(0, k, size=n)
  return (centers[y] + spread * rng.normal(size=(n, d))).astype(np.float32), y


@pytest.mark.parametrize("grad, batch_size", [("hand", 1), ("autodiff", 1), ("hand", 4)])
def test_epoch_matches_python_loop_of_notes_sgd_steps(x64, grad, batch_size):
  """One scan epoch == a Python loop of mlp.sgd_step over the same shuffled minibatches."""
  X, y = _blobs(n=14, d=4, k=3)
  xs, ys = jnp.asarray(X, jnp.float64), jnp.asarray(letters.one_hot(y, 3), jnp.float64)
  params = mlp.init_params(jax.random.PRNGKey(3), 4, 6, 3, dtype=jnp.float64)
  key = jax.random.PRNGKey(7)
  got, losses = letters.make_epoch(grad, batch_size)(params, key, xs, ys, 0.1)
  order = np.asarray(jax.random.permutation(key, 14))
  steps = 14 // batch_size                   # the last 14 % batch_size samples sit this epoch out
  assert losses.shape == (steps,)
  expected = params
  sgd_step = jax.jit(mlp.sgd_step)
  for t in range(steps):
    i = order[t * batch_size:(t + 1) * batch_size]
    expected, value = sgd_step(expected, xs[i], ys[i], 0.1)
    np.testing.assert_allclose(losses[t], value, rtol=1e-13)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14),
               got, expected)


def test_hand_and_autodiff_train_identically(x64):
  """grad="hand" (the notes' equations) and grad="autodiff" give the same run, in float64."""
  X, y = _blobs(n=60, d=4, k=3, seed=2)
  kwargs = dict(hidden=6, lr=0.1, epochs=2, seed=3, progress=False, dtype=jnp.float64)
  hand = letters.train(X, y, grad="hand", **kwargs)
  auto = letters.train(X, y, grad="autodiff", **kwargs)
  assert hand.params.V.dtype == jnp.float64
  assert not np.allclose(hand.params.V, mlp.init_params(jax.random.fold_in(
      jax.random.PRNGKey(3), 0), 4, 6, 3, dtype=jnp.float64).V)        # training moved them
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14),
               hand.params, auto.params)
  for h, a in zip(hand.history, auto.history):
    assert h.keys() == a.keys()
    for key in h:
      np.testing.assert_allclose(h[key], a[key], rtol=1e-12)


def test_training_separates_blobs_and_is_deterministic():
  X, y = _blobs(n=300, d=5, k=3, seed=4)
  seen = []
  result = letters.train(X, y, hidden=16, lr=0.05, epochs=15, seed=0, progress=False,
                         on_epoch=seen.append)
  assert seen == result.history and [r["epoch"] for r in seen] == list(range(1, 16))
  assert result.sizes == {"train": 240, "val": 30, "test": 30}
  assert result.test_accuracy >= 0.95 and result.history[-1]["val_accuracy"] >= 0.95
  assert result.history[-1]["train_loss"] < 0.5 * result.history[0]["train_loss"]
  again = letters.train(X, y, hidden=16, lr=0.05, epochs=15, seed=0, progress=False)
  assert again.history == result.history
  jax.tree.map(np.testing.assert_array_equal, again.params, result.params)
  other = letters.train(X, y, hidden=16, lr=0.05, epochs=1, seed=1, progress=False)
  assert not np.array_equal(other.params.V, result.params.V)


@pytest.mark.parametrize("kwargs, words", [
    (dict(hidden=0), "--hidden: expected a positive integer"),
    (dict(epochs=0), "--epochs: expected a positive integer"),
    (dict(batch_size=0), "--batch-size: expected a positive integer"),
    (dict(batch_size=2.5), "--batch-size: expected a positive integer"),
    (dict(seed=-1), "--seed: expected an integer >= 0"),
    (dict(lr=float("nan")), "--lr: expected a finite positive number"),
    (dict(lr=-0.1), "--lr: expected a finite positive number"),
    (dict(lr="0.1"), "--lr: expected a finite positive number"),
    (dict(grad="numeric"), "--grad: expected one of hand, autodiff"),
    (dict(batch_size=1000), "--batch-size: 1000 is larger than the 240 training rows"),
    (dict(lr=1e38), r"--lr 1e\+38: training diverged at epoch 1, step \d+ \(non-finite loss\)"),
])
def test_train_rejects_bad_arguments(kwargs, words):
  X, y = _blobs(n=300, d=5, k=3)          # the shapes of the test above: no new compilation
  with pytest.raises(InputError, match=words):
    letters.train(X, y, **{"hidden": 16, "epochs": 1, "progress": False, **kwargs})


def test_short_real_training_beats_chance(letters_csv):
  """One epoch of the notes' one-sample SGD on 16,000 UCI letters: far above 1/26 chance."""
  X, y = letters.read_letters(letters_csv)
  result = letters.train(X, y, epochs=1, progress=False)
  assert result.sizes == {"train": 16000, "val": 2000, "test": 2000}
  assert result.test_accuracy > 0.6, result.test_accuracy   # chance: 1/26 = 0.038


# --------------------------------------------------------------------------------------------
# The script


def _load_script():
  spec = importlib.util.spec_from_file_location("train_letters_script", SCRIPT)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _env():
  env = dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu")
  return env


def test_script_end_to_end(tmp_path):
  out = tmp_path / "runs" / "letters"
  proc = subprocess.run([sys.executable, str(SCRIPT), "--epochs", "2", "--hidden", "16",
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
  assert config["train"] == {"hidden": 16, "lr": 0.01, "epochs": 2, "batch_size": 1,
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
  return _load_script()


BAD_ARGS = {
    "lr_not_a_number": (["--lr", "abc"], "--lr: expected a number, got 'abc'"),
    "lr_zero": (["--lr", "0"], "--lr: expected a finite positive number"),
    "lr_nan": (["--lr", "nan"], "--lr: expected a finite number"),
    "batch_size_zero": (["--batch-size", "0"], "--batch-size: expected a positive integer"),
    "hidden_zero": (["--hidden", "0"], "--hidden: expected a positive integer"),
    "epochs_zero": (["--epochs", "0"], "--epochs: expected a positive integer"),
    "epochs_fraction": (["--epochs", "1.5"], "--epochs: expected an integer, got '1.5'"),
    "seed_negative": (["--seed", "-1"], "--seed: expected an integer >= 0"),
    "grad_unknown": (["--grad", "numeric"], "--grad: expected one of hand, autodiff"),
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
  assert cli.main(script.run, argv + ["--no-progress"]) == 2
  captured = capsys.readouterr()
  assert captured.out == ""
  assert captured.err.count("\n") == 1 and captured.err.startswith("error: ")
  assert words in captured.err, captured.err
  assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
  assert (tmp_path / "existing" / "notes.txt").read_text() == "mine"


def test_script_overwrite_replaces_a_previous_run(script, tmp_path, capsys, monkeypatch):
  """--overwrite swaps in the new run only when it is complete. Training is stubbed (the real
  thing runs in test_script_end_to_end); what is tested is the directory handling."""
  def fake_train(X, y, *, hidden, epochs, seed, num_classes, on_epoch, **kwargs):
    history = [{"epoch": e, "sgd_loss": 1.0 / e, "train_loss": 1.0 / e, "train_accuracy": 0.5,
                "val_loss": 1.0 / e, "val_accuracy": 0.5} for e in range(1, epochs + 1)]
    for row in history:
      on_epoch(row)
    params = mlp.MLPParams(V=np.full((hidden, X.shape[1] + 1), float(seed)),
                           W=np.zeros((num_classes, hidden + 1)))
    return letters.TrainResult(params=params, history=history, test_loss=1.0,
                               test_accuracy=0.25, mean=np.zeros(X.shape[1]),
                               std=np.ones(X.shape[1]), sizes={"train": 8, "val": 4, "test": 4})

  monkeypatch.setattr(script.letters, "train", fake_train)
  out = tmp_path / "run"
  argv = ["--epochs", "2", "--hidden", "3", "--out", str(out), "--no-progress"]
  assert cli.main(script.run, argv) == 0
  assert "test accuracy 0.2500 (1/4)" in capsys.readouterr().out
  assert cli.main(script.run, argv + ["--seed", "1"]) == 2          # refuses without --overwrite
  assert "already exists" in capsys.readouterr().err
  assert json.loads((out / "config.json").read_text())["train"]["seed"] == 0

  def failing_plot(*args, **kwargs):
    raise OSError("disk full")
  from rnn_jax.common import plots
  monkeypatch.setattr(plots, "accuracy_curve", failing_plot)
  with pytest.raises(OSError, match="disk full"):                   # fails at the last file
    script.run(argv + ["--seed", "2", "--overwrite"])
  # the old run is intact
  assert json.loads((out / "config.json").read_text())["train"]["seed"] == 0
  assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]      # no staging dir left
  monkeypatch.undo()
  monkeypatch.setattr(script.letters, "train", fake_train)

  assert cli.main(script.run, argv + ["--seed", "1", "--overwrite"]) == 0
  assert json.loads((out / "config.json").read_text())["train"]["seed"] == 1
  with np.load(out / "params.npz") as saved:
    assert saved["V"][0, 0] == 1.0
  assert [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()] \
      == [1, 2]                                                     # not appended to the old log
  assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]

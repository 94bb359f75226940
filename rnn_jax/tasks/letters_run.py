"""The letters run end to end: data in, the notes' network trained, a run directory out.

Library code under experiments/train_letters.py. ``run`` checks everything the user gave
(InputError) before anything is created, trains with rnn_jax.tasks.letters and writes, to
``out``:

    config.json         the data (source, SHA-256 of a CSV, rows, classes), the split, the
                        training settings, the model, the library versions
    metrics.jsonl       one JSON line per epoch
    results.json        test accuracy and loss, the final and the best validation epoch
    params.npz          V, W, the standardisation's mean and std, the class names
    learning_curve.png  and accuracy.png: the losses and accuracies per epoch

The run is assembled in a hidden directory beside ``out`` and renamed into place when
complete (rnn_jax.tasks.rundir.staging), so ``out`` is never half-written and a refused,
failed or interrupted run leaves nothing behind; an existing run is replaced only with
``overwrite``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from rnn_jax.common import fileio
from rnn_jax.common.errors import InputError
from rnn_jax.tasks import letters, rundir

RESULTS = "results.json"
METRICS = "metrics.jsonl"
PARAMS = "params.npz"


@dataclasses.dataclass(frozen=True)
class LettersData:
  """The rows to train on and what config.json says about them."""
  X: np.ndarray          # [N, d] float32 features as read
  y: np.ndarray          # [N] int32 class indices
  classes: list[str]     # K class names, index = label
  source: dict           # name, and the version of scikit-learn or the CSV's path and SHA-256


def load_data(csv: Path | None) -> LettersData:
  """The UCI letters CSV ``csv``, or scikit-learn's bundled digits when ``csv`` is None."""
  if csv is None:
    import sklearn
    X, y = letters.default_dataset()
    source = {"name": "sklearn.datasets.load_digits", "version": sklearn.__version__}
    return LettersData(X, y, [str(i) for i in range(10)], source)
  X, y = letters.read_letters(csv)
  digest = hashlib.sha256(csv.read_bytes()).hexdigest()
  source = {"name": "UCI letter recognition", "path": str(csv), "sha256": digest}
  return LettersData(X, y, list(letters.LETTERS), source)


def check_sizes(loaded: LettersData, cfg: letters.LettersConfig,
                csv: Path | None) -> tuple[int, int, int]:
  """Rows per split (train, val, test); InputError when a split would be empty or the
  batch is larger than the training split."""
  try:
    sizes = letters.split_sizes(len(loaded.X))
  except InputError as err:
    raise InputError(f"{csv}: {err}") from None
  if cfg.batch_size > sizes[0]:
    raise InputError(f"--batch-size {cfg.batch_size}: larger than the {sizes[0]} training rows")
  return sizes


def make_config(loaded: LettersData, cfg: letters.LettersConfig,
                sizes: tuple[int, int, int]) -> dict[str, Any]:
  """config.json of the run (rundir.write_config adds the versions)."""
  X = loaded.X
  return {
      "script": "experiments/train_letters.py",
      "data": {**loaded.source, "rows": int(len(X)), "features": int(X.shape[1]),
               "classes": loaded.classes},
      "split": dict(zip(("train", "val", "test"), sizes)),
      "split_fractions": list(letters.DEFAULT_FRACTIONS),
      "preprocessing": "standardised by training-split mean and std; one-hot targets",
      "train": dataclasses.asdict(cfg),
      "model": {"hidden": cfg.hidden_size, "activation": "tanh", "output": "sigmoid",
                "loss": "binary cross-entropy summed over classes, mean over the batch",
                "init": "N(0, 1/fan_in) (rnn_jax.mlp.init_params)"},
  }


def summarize(result: letters.TrainResult, seconds: float) -> dict[str, Any]:
  """results.json: the test numbers, the last epoch's metrics, the best validation epoch."""
  best = max(result.history, key=lambda row: row["val_accuracy"])
  return {
      "test_accuracy": result.test_accuracy, "test_loss": result.test_loss,
      "n_test": result.sizes["test"], "final_epoch": result.history[-1],
      "best_val_epoch": best["epoch"], "best_val_accuracy": best["val_accuracy"],
      "train_seconds": round(seconds, 2),
  }


def _save_params(path: Path, result: letters.TrainResult, classes) -> None:
  buffer = io.BytesIO()
  np.savez(buffer, V=np.asarray(result.params.V), W=np.asarray(result.params.W),
           mean=result.mean, std=result.std, classes=np.asarray(classes))
  fileio.write_bytes(path, buffer.getvalue())


def _plots(directory: Path, result: letters.TrainResult, cfg: letters.LettersConfig,
           loaded: LettersData) -> None:
  from rnn_jax.common import plots   # here: bad input answers without importing matplotlib
  title = (f"{loaded.source['name']}: H={cfg.hidden_size}, lr={cfg.lr:g}, batch {cfg.batch_size}, "
           f"{cfg.grad} gradients")
  plots.learning_curves(result.history, directory / "learning_curve.png", title=title)
  plots.accuracy_curve(result.history, directory / "accuracy.png", title=title,
                       chance=1 / len(loaded.classes))


def _metrics_writer(path: Path, start: float) -> Callable[[dict], None]:
  """``on_epoch`` for letters.train: appends the epoch's metrics and the elapsed time."""
  def on_epoch(row):
    line = {**row, "elapsed_s": round(time.perf_counter() - start, 3)}
    fileio.append_line(path, json.dumps(line))
  return on_epoch


def run(cfg: letters.LettersConfig, out: str | Path, *, csv: Path | None = None,
        overwrite: bool = False, progress: bool = True, log=print) -> dict[str, Any]:
  """Trains the notes' network on ``csv`` (None: sklearn's digits) and writes the run to ``out``.

  Returns ``{"result": letters.TrainResult, "results": results.json's dict, "out": Path}``.
  Everything the user gave is checked (InputError) before anything is created.
  """
  out = Path(out)
  cfg = cfg.validate()
  rundir.check_new_out(out, overwrite)
  loaded = load_data(csv)
  sizes = check_sizes(loaded, cfg, csv)
  with rundir.staging(out) as tmp:
    try:
      rundir.write_config(tmp, make_config(loaded, cfg, sizes))
    except OSError as err:   # a full disk, a quota: say so before training
      raise InputError(f"--out {out}: cannot write to it ({err.strerror or err})") from None
    start = time.perf_counter()
    result = letters.train(loaded.X, loaded.y, **dataclasses.asdict(cfg),
                           num_classes=len(loaded.classes), progress=progress,
                           on_epoch=_metrics_writer(tmp / METRICS, start))
    seconds = time.perf_counter() - start
    results = summarize(result, seconds)
    fileio.write_json(tmp / RESULTS, results)
    _save_params(tmp / PARAMS, result, loaded.classes)
    _plots(tmp, result, cfg, loaded)
  correct = round(result.test_accuracy * result.sizes["test"])
  log(f"test accuracy {result.test_accuracy:.4f} ({correct}/{result.sizes['test']}) after "
      f"{cfg.epochs} epochs in {seconds:.1f} s; run written to {out}")
  return {"result": result, "results": results, "out": out}

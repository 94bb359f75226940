"""The derivation notes' base case: a 200-unit tanh network learns letters by plain SGD.

    python experiments/train_letters.py --csv ../shared/data/letter_recognition.csv
    python experiments/train_letters.py                  # built-in default: sklearn's digits
    python experiments/train_letters.py --grad autodiff  # jax.value_and_grad, not the notes

Writes config.json, metrics.jsonl (one line per epoch), results.json, params.npz,
learning_curve.png and accuracy.png to --out (default runs/letters) and prints the test
accuracy. The run is assembled in a hidden directory beside --out and renamed into place when
complete, so --out is never half-written; an existing run is replaced only with --overwrite.
Bad input: one line on stderr, exit status 2, nothing written. The work is done by
rnn_jax.letters (data, training) and rnn_jax.plots.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import io
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rnn_jax.common import cli, fileio
from rnn_jax.tasks import letters
from rnn_jax.common.errors import InputError

DEFAULT_OUT = Path("runs") / "letters"


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, letters.LettersConfig]:
  """Flags: --csv, the fields of rnn_jax.letters.LettersConfig, --out, --overwrite."""
  parser = cli.ArgumentParser(
      prog="train_letters.py",
      description="Train the derivation notes' one-hidden-layer tanh network (sigmoid outputs, "
                  "binary cross-entropy) by plain SGD with the notes' hand gradients, and report "
                  "its test accuracy.")
  parser.add_argument("--csv", type=Path, default=None, metavar="FILE",
                      help="UCI letter-recognition CSV (a capital letter and 16 numbers per "
                           "line, header optional), e.g. ../shared/data/letter_recognition.csv "
                           "(default: scikit-learn's bundled handwritten digits, 1797 8x8 "
                           "images in 10 classes: real data that needs no download)")
  cli.add_config_flags(parser.add_argument_group("training (rnn_jax.letters.LettersConfig)"),
                       letters.LettersConfig)
  parser.add_argument("--out", type=Path, default=DEFAULT_OUT, metavar="DIR",
                      help="run directory to create (default: %(default)s)")
  parser.add_argument("--overwrite", action="store_true",
                      help="replace an existing run directory (one holding config.json)")
  parser.add_argument("--no-progress", action="store_true", help="no progress bar")
  args = parser.parse_args(argv)
  return args, cli.config_from_args(letters.LettersConfig, args).validate()


def _check_out(out: Path, overwrite: bool) -> None:
  if out.exists() or out.is_symlink():
    if not out.is_dir():
      raise InputError(f"--out {out}: exists and is not a directory")
    if not overwrite:
      raise InputError(f"--out {out}: already exists; pass --overwrite to replace that run or "
                       "choose another directory")
    if any(out.iterdir()) and not (out / "config.json").is_file():
      raise InputError(f"--out {out}: exists and is not a run directory (no config.json); "
                       "refusing to replace it")
  for parent in out.absolute().parents:
    if parent.exists():
      if not parent.is_dir():
        raise InputError(f"--out {out}: {parent} is not a directory")
      if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"--out {out}: cannot create it, {parent} is not writable")
      break


def _load(csv: Path | None):
  """(X, y, K, class names, description of the data for config.json)."""
  if csv is None:
    import sklearn
    X, y = letters.default_dataset()
    source = {"name": "sklearn.datasets.load_digits", "version": sklearn.__version__}
    return X, y, 10, [str(i) for i in range(10)], source
  X, y = letters.read_letters(csv)
  digest = hashlib.sha256(csv.read_bytes()).hexdigest()
  source = {"name": "UCI letter recognition", "path": str(csv), "sha256": digest}
  return X, y, len(letters.LETTERS), list(letters.LETTERS), source


@contextlib.contextmanager
def _staging(out: Path):
  """A hidden directory beside ``out``; renamed onto it on success, removed on any failure."""
  created = []
  for parent in reversed(out.absolute().parents):
    if not parent.exists():
      created.append(parent)
  try:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)   # mkdtemp's 0700 would hide the run from the group
  except OSError as err:
    for parent in reversed(created):
      with contextlib.suppress(OSError):
        parent.rmdir()
    raise InputError(f"--out {out}: cannot create it ({err.strerror or err})") from None
  try:
    yield tmp
    if out.exists():
      old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
      os.replace(out, old / out.name)
      os.replace(tmp, out)
      shutil.rmtree(old)
    else:
      os.replace(tmp, out)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    for parent in reversed(created):
      with contextlib.suppress(OSError):
        parent.rmdir()
    raise


def _save_params(path: Path, result: letters.TrainResult, classes) -> None:
  buffer = io.BytesIO()
  np.savez(buffer, V=np.asarray(result.params.V), W=np.asarray(result.params.W),
           mean=result.mean, std=result.std, classes=np.asarray(classes))
  fileio.write_bytes(path, buffer.getvalue())


def run(argv: list[str] | None = None) -> int:
  args, cfg = parse(argv)
  _check_out(args.out, args.overwrite)
  X, y, K, classes, source = _load(args.csv)
  try:
    sizes = letters.split_sizes(len(X))
  except InputError as err:
    raise InputError(f"{args.csv}: {err}") from None
  if cfg.batch_size > sizes[0]:
    raise InputError(f"--batch-size {cfg.batch_size}: larger than the {sizes[0]} training rows")

  import jax   # after validation: bad input answers without starting JAX
  from rnn_jax.common import plots

  config = {
      "script": "experiments/train_letters.py",
      "data": {**source, "rows": int(len(X)), "features": int(X.shape[1]), "classes": classes},
      "split": dict(zip(("train", "val", "test"), sizes)),
      "split_fractions": list(letters.DEFAULT_FRACTIONS),
      "preprocessing": "standardised by training-split mean and std; one-hot targets",
      "train": dataclasses.asdict(cfg),
      "model": {"hidden": cfg.hidden, "activation": "tanh", "output": "sigmoid",
                "loss": "binary cross-entropy summed over classes, mean over the batch",
                "init": "N(0, 1/fan_in) (rnn_jax.mlp.init_params)"},
      "versions": {"python": platform.python_version(), "jax": jax.__version__,
                   "numpy": np.__version__},
  }
  with _staging(args.out) as tmp:
    try:
      fileio.write_json(tmp / "config.json", config)
    except OSError as err:   # a full disk, a quota: say so before training
      raise InputError(f"--out {args.out}: cannot write to it ({err.strerror or err})") from None
    start = time.perf_counter()

    def on_epoch(row):
      line = {**row, "elapsed_s": round(time.perf_counter() - start, 3)}
      fileio.append_line(tmp / "metrics.jsonl", json.dumps(line))

    result = letters.train(X, y, **dataclasses.asdict(cfg),
                           num_classes=K, progress=not args.no_progress, on_epoch=on_epoch)
    seconds = time.perf_counter() - start
    best = max(result.history, key=lambda row: row["val_accuracy"])
    results = {
        "test_accuracy": result.test_accuracy, "test_loss": result.test_loss,
        "n_test": result.sizes["test"], "final_epoch": result.history[-1],
        "best_val_epoch": best["epoch"], "best_val_accuracy": best["val_accuracy"],
        "train_seconds": round(seconds, 2),
    }
    fileio.write_json(tmp / "results.json", results)
    _save_params(tmp / "params.npz", result, classes)
    title = (f"{source['name']}: H={cfg.hidden}, lr={cfg.lr:g}, batch {cfg.batch_size}, "
             f"{cfg.grad} gradients")
    plots.learning_curves(result.history, tmp / "learning_curve.png", title=title)
    plots.accuracy_curve(result.history, tmp / "accuracy.png", title=title, chance=1 / K)
  correct = round(result.test_accuracy * result.sizes["test"])
  print(f"test accuracy {result.test_accuracy:.4f} ({correct}/{result.sizes['test']}) after "
        f"{cfg.epochs} epochs in {seconds:.1f} s; run written to {args.out}")
  return 0


def _main(argv: list[str] | None = None) -> int:
  try:
    return cli.main(run, argv)
  except KeyboardInterrupt:
    print("interrupted: nothing written (the run directory is created only when complete)",
          file=sys.stderr)
    return 130


if __name__ == "__main__":
  sys.exit(_main())

"""The notes' letters experiment: the tanh network of ``rnn_jax.core.mlp`` trained by plain SGD
(``train``) and its run directory (``run``, experiments/train_letters.py).
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import math
import time
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from rnn_jax.common import fileio, rundir
from rnn_jax.common.errors import InputError
from rnn_jax.core import mlp
from rnn_jax.core.model import bce_from_logits
from rnn_jax.settings import GRADS, LettersConfig
from rnn_jax.data.letter_recognition import (  # noqa: F401  some only for letters.X
    DEFAULT_FRACTIONS, LETTERS, NUM_FEATURES, Splits, default_dataset, one_hot, prepare,
    read_letters, split_sizes, standardize)


@functools.lru_cache(maxsize=None)
def make_epoch(grad: str, batch_size: int) -> Callable:
  """A jitted epoch ``(params, key, xs [n, d], ys [n, K], lr) -> (params, losses [n // B])``:
  one ``lax.scan`` over the minibatches of ``jax.random.permutation(key, n)`` (the remainder
  waits, a different one every epoch), each step ``params - lr * grad`` with ``grad="hand"``
  (``mlp.loss_and_grads``) or ``"autodiff"`` (``jax.value_and_grad(mlp.loss)``)."""
  if grad not in GRADS:
    raise ValueError(f"grad: expected one of {GRADS}, got {grad!r}")
  loss_and_grads = mlp.loss_and_grads if grad == "hand" else jax.value_and_grad(mlp.loss)

  @jax.jit
  def epoch(params, key, xs, ys, lr):
    n = xs.shape[0]
    steps = n // batch_size
    order = jax.random.permutation(key, n)[:steps * batch_size].reshape(steps, batch_size)
    lr = jnp.asarray(lr, xs.dtype)

    def step(params, batch_idx):
      value, grads = loss_and_grads(params, xs[batch_idx], ys[batch_idx])
      return jax.tree.map(lambda p, g: p - lr * g, params, grads), value

    return jax.lax.scan(step, params, order)

  return epoch


@jax.jit
def _loss_and_correct(params: mlp.MLPParams, xs, ys):
  logits = mlp.forward(params, xs)
  correct = jnp.argmax(logits, axis=-1) == jnp.argmax(ys, axis=-1)
  return bce_from_logits(logits, ys), jnp.sum(correct)


def evaluate(params: mlp.MLPParams, xs, ys) -> tuple[float, float]:
  """``(training loss, accuracy)`` on ``xs [n, d]``, one-hot ``ys [n, K]``; class = argmax."""
  value, correct = _loss_and_correct(params, xs, ys)
  return float(value), int(correct) / xs.shape[0]


@functools.lru_cache(maxsize=None)
def _epoch_and_metrics(grad: str, batch_size: int) -> Callable:
  """``make_epoch`` and the loss / correct count on train and validation, in one compilation."""
  epoch = make_epoch(grad, batch_size)

  @jax.jit
  def run(params, key, xs, ys, lr, x_val, y_val):
    params, losses = epoch(params, key, xs, ys, lr)
    return params, losses, _loss_and_correct(params, xs, ys), _loss_and_correct(params, x_val,
                                                                                 y_val)
  return run


@dataclasses.dataclass(frozen=True)
class TrainResult:
  """What ``train`` returns."""
  params: mlp.MLPParams        # V [H, d+1], W [K, H+1], for standardised inputs
  history: list[dict]          # [i]: epoch i + 1's metrics
  test_loss: float
  test_accuracy: float
  mean: np.ndarray             # [d] training-split mean used to standardise
  std: np.ndarray              # [d]
  sizes: dict                  # {"train": n, "val": n, "test": n}


def train(X, y, *, hidden_size: int = LettersConfig.hidden_size, lr: float = LettersConfig.lr,
          epochs: int = LettersConfig.epochs, batch_size: int = LettersConfig.batch_size,
          grad: str = LettersConfig.grad, seed: int = LettersConfig.seed,
          num_classes: int | None = None, fractions=DEFAULT_FRACTIONS, dtype=jnp.float32,
          progress: bool = True, on_epoch: Callable[[dict], None] | None = None) -> TrainResult:
  """Trains the notes' tanh network on ``X [N, d]``, integer labels ``y [N]``, by plain SGD.
  ``prepare`` splits and standardises; parameters come from ``fold_in(PRNGKey(seed), 0)``,
  epoch ``e`` (1-based) shuffles with ``fold_in(PRNGKey(seed), e)``; ``batch_size=1`` is the
  notes' update. ``dtype``: float64 needs ``jax_enable_x64``. Returns the last epoch's
  parameters (not the best on validation).
  """
  cfg = LettersConfig(hidden_size=hidden_size, lr=lr, epochs=epochs, batch_size=batch_size,
                      grad=grad, seed=seed).validate()
  hidden_size, epochs, batch_size, seed = cfg.hidden_size, cfg.epochs, cfg.batch_size, cfg.seed
  splits = prepare(X, y, num_classes=num_classes, seed=seed, fractions=fractions)
  n_train = len(splits.x_train)
  if batch_size > n_train:
    raise InputError(f"--batch-size: {batch_size} is larger than the {n_train} training rows")
  x_tr, y_tr, x_va, y_va, x_te, y_te = (jnp.asarray(a, dtype) for a in splits[:6])
  key = jax.random.PRNGKey(seed)
  params = mlp.init_params(jax.random.fold_in(key, 0), x_tr.shape[1], hidden_size,
                           y_tr.shape[1], dtype=dtype)
  epoch_fn = _epoch_and_metrics(grad, batch_size)
  history: list[dict] = []
  bar = tqdm(range(1, epochs + 1), desc=f"letters ({grad})", unit="epoch", disable=not progress,
             leave=False)
  for e in bar:
    params, losses, (train_loss, train_ok), (val_loss, val_ok) = epoch_fn(
        params, jax.random.fold_in(key, e), x_tr, y_tr, lr, x_va, y_va)
    losses = np.asarray(losses)
    row = {"epoch": e, "sgd_loss": float(losses.mean()),   # mean minibatch loss of the epoch
           "train_loss": float(train_loss), "train_accuracy": int(train_ok) / n_train,
           "val_loss": float(val_loss), "val_accuracy": int(val_ok) / len(x_va)}
    if not all(math.isfinite(v) for v in row.values()):
      bad = np.flatnonzero(~np.isfinite(losses))
      where = f", step {int(bad[0]) + 1}" if bad.size else ""
      raise InputError(f"--lr {lr:g}: training diverged at epoch {e}{where} (non-finite loss); "
                       "try a lower learning rate")
    history.append(row)
    bar.set_postfix(loss=f"{row['train_loss']:.4f}", val_acc=f"{row['val_accuracy']:.3f}")
    if on_epoch is not None:
      on_epoch(row)
  bar.close()
  return TrainResult(params, history, *evaluate(params, x_te, y_te), splits.mean, splits.std,
                     {"train": n_train, "val": len(x_va), "test": len(x_te)})


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
    X, y = default_dataset()
    source = {"name": "sklearn.datasets.load_digits", "version": sklearn.__version__}
    return LettersData(X, y, [str(i) for i in range(10)], source)
  X, y = read_letters(csv)
  source = {"name": "UCI letter recognition", "path": str(csv),
            "sha256": hashlib.sha256(csv.read_bytes()).hexdigest()}
  return LettersData(X, y, list(LETTERS), source)


def make_config(loaded: LettersData, cfg: LettersConfig, sizes) -> dict[str, Any]:
  """config.json of the run (rundir.write_config adds the versions)."""
  return {"script": "experiments/train_letters.py",
          "data": {**loaded.source, "rows": int(len(loaded.X)), "features": int(loaded.X.shape[1]),
                   "classes": loaded.classes},
          "split": dict(zip(("train", "val", "test"), sizes)),
          "split_fractions": list(DEFAULT_FRACTIONS),
          "preprocessing": "standardised by training-split mean and std; one-hot targets",
          "train": dataclasses.asdict(cfg),
          "model": {"hidden": cfg.hidden_size, "activation": "tanh", "output": "sigmoid",
                    "loss": "binary cross-entropy summed over classes, mean over the batch",
                    "init": "N(0, 1/fan_in) (rnn_jax.mlp.init_params)"}}


def run(cfg: LettersConfig, out: str | Path, *, csv: Path | None = None,
        overwrite: bool = False, progress: bool = True, log=print) -> dict[str, Any]:
  """Trains the notes' network on ``csv`` (None: sklearn's digits) and writes the run to ``out``;
  returns ``{"result": TrainResult, "results": results.json's dict, "out": Path}``. Everything
  the user gave is checked (InputError) before anything is created."""
  out = Path(out)
  cfg = cfg.validate()
  rundir.check_new_out(out, overwrite)
  loaded = load_data(csv)
  try:
    sizes = split_sizes(len(loaded.X))   # (train, val, test) rows
  except InputError as err:
    raise InputError(f"{csv}: {err}") from None
  if cfg.batch_size > sizes[0]:
    raise InputError(f"--batch-size {cfg.batch_size}: larger than the {sizes[0]} training rows")
  with rundir.lock(out, staged=True):
    rundir.check_new_out(out, overwrite)   # again under the lock
    with rundir.staging(out) as tmp:
      try:
        rundir.write_config(tmp, make_config(loaded, cfg, sizes))
      except OSError as err:   # a full disk, a quota: say so before training
        raise InputError(f"--out {out}: cannot write to it ({err.strerror or err})") from None
      start = time.perf_counter()
      result = train(loaded.X, loaded.y, **dataclasses.asdict(cfg),
                     num_classes=len(loaded.classes), progress=progress,
                     on_epoch=lambda row: fileio.append_line(tmp / METRICS, json.dumps(
                         {**row, "elapsed_s": round(time.perf_counter() - start, 3)})))
      seconds = time.perf_counter() - start
      best = max(result.history, key=lambda row: row["val_accuracy"])
      results = {"test_accuracy": result.test_accuracy, "test_loss": result.test_loss,
                 "n_test": result.sizes["test"], "final_epoch": result.history[-1],
                 "best_val_epoch": best["epoch"], "best_val_accuracy": best["val_accuracy"],
                 "train_seconds": round(seconds, 2)}
      fileio.write_json(tmp / RESULTS, results)
      buffer = io.BytesIO()
      np.savez(buffer, V=np.asarray(result.params.V), W=np.asarray(result.params.W),
               mean=result.mean, std=result.std, classes=np.asarray(loaded.classes))
      fileio.write_bytes(tmp / PARAMS, buffer.getvalue())
      from rnn_jax.common import plots   # here: bad input answers without loading matplotlib
      title = (f"{loaded.source['name']}: H={cfg.hidden_size}, lr={cfg.lr:g}, batch "
               f"{cfg.batch_size}, {cfg.grad} gradients")
      plots.learning_curves(result.history, tmp / "learning_curve.png", title=title)
      plots.accuracy_curve(result.history, tmp / "accuracy.png", title=title,
                           chance=1 / len(loaded.classes))
  correct = round(result.test_accuracy * result.sizes["test"])
  log(f"test accuracy {result.test_accuracy:.4f} ({correct}/{result.sizes['test']}) after "
      f"{cfg.epochs} epochs in {seconds:.1f} s; run written to {out}")
  return {"result": result, "results": results, "out": out}

"""The notes' letters experiment: the one-hidden-layer tanh network trained by plain SGD.

Data, preprocessing and the training loop around ``rnn_jax.mlp`` (the network, its loss and
the notes' hand gradients); nothing here knows about command lines or output directories.

Data
  * ``read_letters(path)``: the UCI Letter Recognition file (Frey and Slate 1991,
    https://archive.ics.uci.edu/dataset/59/letter+recognition): 20,000 rows of a capital letter
    and 16 integer features 0..15. The original file has no header; a copy with a header line
    (``Letter,1,...,16``, as ``../shared/data/letter_recognition.csv``) is read as well.
  * ``default_dataset()``: what runs when no file is given. scikit-learn ships the UCI optical
    digits test set (``sklearn.datasets.load_digits``: 1,797 handwritten digits, 8x8 pixels of
    counts 0..16, 10 classes) inside the package, so it is real data with no download. The
    network is the same; only d (64 instead of 16) and K (10 instead of 26) follow the data.

Preprocessing (``prepare``): a seeded random split into train / validation / test (80/10/10,
which is 16,000 / 2,000 / 2,000 on the UCI file), features standardised with the training
split's mean and standard deviation only, targets one-hot (the notes' K sigmoid outputs).

Training (``train``): the notes' loop, "V <- V - eps grad_V, W <- W - eps grad_W", one sample at
a time by default (``batch_size=1``). One epoch is one jitted ``lax.scan`` over the minibatches
of a fresh seeded permutation, so there is no Python loop per sample and the same seed gives
the same numbers. ``grad="hand"`` uses ``mlp.loss_and_grads`` (the notes' equations (1)-(3));
``grad="autodiff"`` uses ``jax.value_and_grad(mlp.loss)``; the update is otherwise identical.
"""
from __future__ import annotations

import csv
import dataclasses
import functools
import io
import math
import os
from pathlib import Path
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from rnn_jax.core import mlp
from rnn_jax.common.errors import InputError
from rnn_jax.core.model import bce_from_logits

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
NUM_FEATURES = 16          # UCI letter-recognition: 16 integer attributes per row
GRADS = ("hand", "autodiff")
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)   # train / val / test: 16000 / 2000 / 2000 on UCI letters


# --------------------------------------------------------------------------------------------
# Reading


def _check_file(path: Path) -> bytes:
  if not path.exists():
    raise InputError(f"{path}: no such file (expected a letter-recognition CSV)")
  if path.is_dir():
    raise InputError(f"{path}: is a directory, expected a letter-recognition CSV file")
  try:
    return path.read_bytes()
  except OSError as err:
    raise InputError(f"{path}: cannot be read ({err.strerror or err})") from None


def _decode(path: Path, data: bytes) -> str:
  try:
    return data.decode("utf-8-sig")
  except UnicodeDecodeError as err:
    start = err.start - (3 if data.startswith(b"\xef\xbb\xbf") else 0)
    line = data[:err.start].count(b"\n") + 1
    raise InputError(f"{path}: line {line}: not UTF-8 text (byte {max(start, 0) + 1} of the "
                     "file); expected a CSV of a letter and 16 numbers per line") from None


_LABEL_NAMES = ("letter", "lettr", "label", "class", "target", "y")


def _is_number(text: str) -> bool:
  try:
    float(text)
  except ValueError:
    return False
  return True


def _is_header(row: list[str]) -> bool:
  """A header names the label column (``Letter``; UCI's names file calls it ``lettr``) or has
  a non-numeric feature name (``x-box``); a data row has one letter and numbers. Anything else
  on the first line is read as data, so a damaged first row is reported, not skipped."""
  first = row[0].strip()
  if first.lower() in _LABEL_NAMES:
    return True
  return (len(first) > 1 and first.replace("_", "").isalpha()
          and not all(_is_number(field) for field in row[1:]))


def read_letters(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
  """Reads a UCI letter-recognition CSV.

  Returns ``X`` float32 ``[N, 16]`` (the 16 features as given) and ``y`` int32 ``[N]`` with
  ``A -> 0 ... Z -> 25``. A header on the first non-blank line (``Letter,1,...,16`` or UCI's
  attribute names ``lettr,x-box,...``) is skipped; blank lines are skipped. Every problem
  raises ``InputError`` with one line naming the file and the line: a missing file, a
  directory, an empty file, a header only, bytes that are not UTF-8, a row without exactly 17
  fields, a label that is not one capital letter A-Z, a feature that is not a finite number.
  """
  path = Path(path)
  text = _decode(path, _check_file(path))
  reader = csv.reader(io.StringIO(text, newline=""))
  labels: list[int] = []
  rows: list[list[float]] = []
  header_seen = False
  expected = NUM_FEATURES + 1
  try:
    for row in reader:
      line = reader.line_num
      if not row or all(not field.strip() for field in row):
        continue
      if not rows and not header_seen and _is_header(row):
        header_seen = True
        if len(row) != expected:
          raise InputError(f"{path}: line {line}: header has {len(row)} fields, expected "
                           f"{expected} (a letter column and {NUM_FEATURES} features)")
        continue
      if len(row) != expected:
        raise InputError(f"{path}: line {line}: {len(row)} fields, expected {expected} "
                         f"(a letter A-Z and {NUM_FEATURES} numbers)")
      letter = row[0].strip()
      if len(letter) != 1 or letter not in LETTERS:
        raise InputError(f"{path}: line {line}, column 1: label {letter[:20]!r} is not a capital "
                         "letter A-Z")
      values = []
      for column, field in enumerate(row[1:], start=2):
        try:
          value = float(field)
        except ValueError:
          value = math.nan
          bad = True
        else:
          bad = not math.isfinite(value)
        if bad:
          raise InputError(f"{path}: line {line}, column {column}: feature {field.strip()[:20]!r} "
                           "is not a finite number")
        values.append(value)
      labels.append(LETTERS.index(letter))
      rows.append(values)
  except csv.Error as err:
    raise InputError(f"{path}: line {reader.line_num}: not a readable CSV ({err})") from None
  if not rows:
    if header_seen:
      raise InputError(f"{path}: header only, no data rows (expected lines of a letter A-Z and "
                       f"{NUM_FEATURES} numbers)")
    raise InputError(f"{path}: empty file (expected lines of a letter A-Z and {NUM_FEATURES} "
                     "numbers)")
  return np.asarray(rows, np.float32), np.asarray(labels, np.int32)


def default_dataset() -> tuple[np.ndarray, np.ndarray]:
  """The built-in default: scikit-learn's bundled digits, ``X`` float32 ``[1797, 64]``, ``y`` int32.

  ``sklearn.datasets.load_digits``: the test part of the UCI "Optical Recognition of
  Handwritten Digits" data, 8x8 images of pixel counts 0..16, classes 0..9. It ships inside
  scikit-learn, so a fresh machine trains the notes' network on real data without a download.
  """
  from sklearn.datasets import load_digits   # imported here: only the default run needs it
  digits = load_digits()
  return digits.data.astype(np.float32), digits.target.astype(np.int32)


# --------------------------------------------------------------------------------------------
# Preprocessing


class Splits(NamedTuple):
  """Standardised features and one-hot targets per split; statistics from the training split."""
  x_train: np.ndarray   # [n_train, d]
  y_train: np.ndarray   # [n_train, K] one-hot
  x_val: np.ndarray     # [n_val, d]
  y_val: np.ndarray     # [n_val, K]
  x_test: np.ndarray    # [n_test, d]
  y_test: np.ndarray    # [n_test, K]
  mean: np.ndarray      # [d] training-split mean
  std: np.ndarray       # [d] training-split standard deviation (1 where a feature is constant)


def split_sizes(n: int, fractions=DEFAULT_FRACTIONS) -> tuple[int, int, int]:
  """Rows in train / val / test for ``n`` rows: val and test rounded, train takes the rest.

  Raises InputError when a split would be empty.
  """
  if len(fractions) != 3 or any(not (f > 0) for f in fractions) or abs(sum(fractions) - 1) > 1e-9:
    raise ValueError(f"fractions: expected three positive numbers summing to 1, got {fractions}")
  n_val = int(round(n * fractions[1]))
  n_test = int(round(n * fractions[2]))
  n_train = n - n_val - n_test
  if min(n_train, n_val, n_test) < 1:
    need = math.ceil(1 / min(fractions))
    raise InputError(f"{n} rows give an empty split (train/val/test {n_train}/{n_val}/{n_test} "
                     f"at fractions {'/'.join(f'{f:g}' for f in fractions)}); need at least "
                     f"about {need} rows")
  return n_train, n_val, n_test


def standardize(x_train, *others):
  """``(x - mean) / std`` with the training rows' mean and std; returns (scaled..., mean, std)."""
  x_train = np.asarray(x_train, np.float64)
  mean = x_train.mean(axis=0)
  std = x_train.std(axis=0)
  std = np.where(std > 0, std, 1.0)
  scaled = [(np.asarray(x, np.float64) - mean) / std for x in (x_train, *others)]
  return (*scaled, mean, std)


def one_hot(y, num_classes: int) -> np.ndarray:
  """Integer labels ``[N]`` to one-hot rows ``[N, K]`` (float32)."""
  y = np.asarray(y)
  if y.size and (y.min() < 0 or y.max() >= num_classes):
    raise ValueError(f"labels: expected integers in 0..{num_classes - 1}, got {y.min()}..{y.max()}")
  return np.eye(num_classes, dtype=np.float32)[y]


def prepare(X, y, *, num_classes: int | None = None, seed: int = 0,
            fractions=DEFAULT_FRACTIONS) -> Splits:
  """Seeded split, standardisation by training statistics, one-hot targets.

  ``X [N, d]``, ``y [N]`` integers. The split is ``numpy.random.default_rng(seed)``'s
  permutation; ``num_classes`` defaults to ``max(y) + 1``.
  """
  X = np.asarray(X)
  y = np.asarray(y)
  if X.ndim != 2 or y.shape != (X.shape[0],):
    raise ValueError(f"X, y: expected shapes [N, d] and [N], got {list(X.shape)} and "
                     f"{list(y.shape)}")
  n_train, n_val, _ = split_sizes(len(X), fractions)
  K = int(y.max()) + 1 if num_classes is None else int(num_classes)
  order = np.random.default_rng(seed).permutation(len(X))
  tr, va, te = order[:n_train], order[n_train:n_train + n_val], order[n_train + n_val:]
  x_tr, x_va, x_te, mean, std = standardize(X[tr], X[va], X[te])
  return Splits(x_tr, one_hot(y[tr], K), x_va, one_hot(y[va], K), x_te, one_hot(y[te], K),
                mean, std)


# --------------------------------------------------------------------------------------------
# Training


def _loss_and_grads(grad: str):
  if grad == "hand":
    return mlp.loss_and_grads
  return jax.value_and_grad(mlp.loss)


@functools.lru_cache(maxsize=None)
def make_epoch(grad: str, batch_size: int) -> Callable:
  """A jitted epoch ``(params, key, xs [n, d], ys [n, K], lr) -> (params, losses [n // B])``.

  Draws ``jax.random.permutation(key, n)``, cuts it into ``n // batch_size`` minibatches (the
  remainder of the permutation is left out this epoch, a different one every epoch) and runs
  ``lax.scan`` over them, each step ``params - lr * grad`` as in the notes. Cached per
  ``(grad, batch_size)``, so later runs with the same shapes reuse the compiled epoch.
  """
  if grad not in GRADS:
    raise ValueError(f"grad: expected one of {GRADS}, got {grad!r}")
  loss_and_grads = _loss_and_grads(grad)

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


def _loss_and_correct(params: mlp.MLPParams, xs, ys):
  logits = mlp.forward(params, xs)
  correct = jnp.argmax(logits, axis=-1) == jnp.argmax(ys, axis=-1)
  return bce_from_logits(logits, ys), jnp.sum(correct)


_loss_and_correct_jit = jax.jit(_loss_and_correct)


def evaluate(params: mlp.MLPParams, xs, ys) -> tuple[float, float]:
  """``(loss, accuracy)`` on ``xs [n, d]`` with one-hot ``ys [n, K]``; class = argmax logit.

  The loss is the training loss (BCE summed over K, mean over n); accuracy is correct / n.
  """
  value, correct = _loss_and_correct_jit(params, xs, ys)
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
  """What ``train`` returns. ``history[i]`` is epoch ``i + 1``'s metrics."""
  params: mlp.MLPParams        # V [H, d+1], W [K, H+1], for standardised inputs
  history: list[dict]          # epoch, train_loss, train_accuracy, val_loss, val_accuracy
  test_loss: float
  test_accuracy: float
  mean: np.ndarray             # [d] training-split mean used to standardise
  std: np.ndarray              # [d]
  sizes: dict                  # {"train": n, "val": n, "test": n}


@dataclasses.dataclass(frozen=True)
class LettersConfig:
  """The training settings of ``train``; field ``name`` is the script flag ``--name``.

  Defaults: 40 epochs of one-sample SGD at lr 0.01 reach about 96-97% test accuracy on the UCI
  letters (16,000 training rows) in well under a minute on a 2-core CPU.
  """
  hidden: int = 200         # H, tanh hidden units (the notes use 200)
  lr: float = 0.01          # SGD step size epsilon (a finite positive number)
  epochs: int = 40          # passes over the training split
  batch_size: int = 1       # samples per SGD step; 1 = the notes' one sample at a time
  grad: str = "hand"        # "hand" (the notes' equations, mlp.loss_and_grads) | "autodiff"
  seed: int = 0             # seeds the split, the initial weights and the shuffling

  def validate(self) -> "LettersConfig":
    """Raises InputError naming the flag of the first nonsensical value; returns self."""
    for name, lo in (("hidden", 1), ("epochs", 1), ("batch_size", 1), ("seed", 0)):
      v = getattr(self, name)
      if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        what = "a positive integer" if lo == 1 else f"an integer >= {lo}"
        raise InputError(f"--{name.replace('_', '-')}: expected {what}, got {v!r}")
    if self.seed >= 2**32:
      raise InputError(f"--seed: expected an integer below 2**32, got {self.seed!r}")
    lr = self.lr
    if (isinstance(lr, bool) or not isinstance(lr, (int, float, np.integer, np.floating))
        or not math.isfinite(lr) or lr <= 0):
      raise InputError(f"--lr: expected a finite positive number, got {lr!r}")
    if self.grad not in GRADS:
      raise InputError(f"--grad: expected one of {', '.join(GRADS)}, got {self.grad!r}")
    return self


def train(X, y, *, hidden: int = LettersConfig.hidden, lr: float = LettersConfig.lr,
          epochs: int = LettersConfig.epochs, batch_size: int = LettersConfig.batch_size,
          grad: str = LettersConfig.grad, seed: int = LettersConfig.seed,
          num_classes: int | None = None, fractions=DEFAULT_FRACTIONS, dtype=jnp.float32,
          progress: bool = True, on_epoch: Callable[[dict], None] | None = None) -> TrainResult:
  """Trains the notes' tanh network on ``X [N, d]``, integer labels ``y [N]``, by plain SGD.

  ``prepare`` splits and standardises (seed ``seed``); parameters come from
  ``mlp.init_params(fold_in(PRNGKey(seed), 0))``; epoch ``e`` (1-based) shuffles with
  ``fold_in(PRNGKey(seed), e)``. Minibatches are drawn without replacement; with
  ``batch_size > 1`` the last ``n_train % batch_size`` of each epoch's permutation wait.
  ``batch_size=1`` is the notes' one-sample-at-a-time update.
  ``dtype`` is the compute dtype (float64 needs ``jax_enable_x64``). After each epoch the
  metrics dict is appended to the history, shown on the tqdm bar and passed to ``on_epoch``.
  The returned parameters are the last epoch's.
  """
  LettersConfig(hidden=hidden, lr=lr, epochs=epochs, batch_size=batch_size, grad=grad,
                seed=seed).validate()
  splits = prepare(X, y, num_classes=num_classes, seed=seed, fractions=fractions)
  n_train = len(splits.x_train)
  if batch_size > n_train:
    raise InputError(f"--batch-size: {batch_size} is larger than the {n_train} training rows")
  to = lambda a: jnp.asarray(a, dtype)
  x_tr, y_tr, x_va, y_va, x_te, y_te = map(to, splits[:6])
  d, K = x_tr.shape[1], y_tr.shape[1]

  key = jax.random.PRNGKey(seed)
  params = mlp.init_params(jax.random.fold_in(key, 0), d, hidden, K, dtype=dtype)
  epoch_fn = _epoch_and_metrics(grad, batch_size)
  history: list[dict] = []
  bar = tqdm(range(1, epochs + 1), desc=f"letters ({grad})", unit="epoch", disable=not progress,
             leave=False)
  for e in bar:
    params, losses, (train_loss, train_ok), (val_loss, val_ok) = epoch_fn(
        params, jax.random.fold_in(key, e), x_tr, y_tr, lr, x_va, y_va)
    losses = np.asarray(losses)
    row = {"epoch": e,
           "sgd_loss": float(losses.mean()),       # mean minibatch loss during the epoch
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
  test_loss, test_acc = evaluate(params, x_te, y_te)
  return TrainResult(params=params, history=history, test_loss=test_loss,
                     test_accuracy=test_acc, mean=splits.mean, std=splits.std,
                     sizes={"train": n_train, "val": len(splits.x_val),
                            "test": len(splits.x_test)})

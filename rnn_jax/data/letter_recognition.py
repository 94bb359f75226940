"""Data for the notes' letters network (rnn_jax.core.mlp, trained by rnn_jax.letters): the UCI
Letter Recognition file (Frey and Slate 1991, 20,000 rows of a capital letter and 16 integer
features 0..15; https://archive.ics.uci.edu/dataset/59/letter+recognition) or the built-in default.
``prepare``: a seeded 80/10/10 split, standardised by the training split, one-hot targets."""
from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from rnn_jax.common.errors import InputError

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
NUM_FEATURES = 16          # UCI letter-recognition: 16 integer attributes per row
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)   # train / val / test: 16000 / 2000 / 2000 on UCI letters
_LABEL_NAMES = ("letter", "lettr", "label", "class", "target", "y")


def _text(path: Path) -> str:
  """The file's UTF-8 text; InputError for a missing, unreadable or non-UTF-8 file."""
  if not path.exists():
    raise InputError(f"{path}: no such file (expected a letter-recognition CSV)")
  if path.is_dir():
    raise InputError(f"{path}: is a directory, expected a letter-recognition CSV file")
  try:
    data = path.read_bytes()
  except OSError as err:
    raise InputError(f"{path}: cannot be read ({err.strerror or err})") from None
  try:
    return data.decode("utf-8-sig")
  except UnicodeDecodeError as err:
    start = err.start - (3 if data.startswith(b"\xef\xbb\xbf") else 0)
    line = data[:err.start].count(b"\n") + 1
    raise InputError(f"{path}: line {line}: not UTF-8 text (byte {max(start, 0) + 1} of the "
                     "file); expected a CSV of a letter and 16 numbers per line") from None


def _float(text: str) -> float | None:
  try:
    return float(text)
  except ValueError:
    return None


def _is_header(row: list[str]) -> bool:
  """A header names the label column (``Letter``, UCI's ``lettr``) or a non-numeric feature
  (``x-box``); anything else is read as data, so a damaged first row is reported, not skipped."""
  first = row[0].strip()
  return first.lower() in _LABEL_NAMES or (len(first) > 1 and first.replace("_", "").isalpha()
                                           and any(_float(f) is None for f in row[1:]))


def read_letters(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
  """``X`` float32 ``[N, 16]`` (as given) and ``y`` int32 ``[N]`` (``A -> 0 ... Z -> 25``) of a
  UCI letter-recognition CSV. Blank lines and a header on the first non-blank line (``Letter,1,...``
  or UCI's ``lettr,x-box,...``, as in ``../shared/data/letter_recognition.csv``) are skipped.
  Every problem raises ``InputError`` naming the file and the line."""
  path = Path(path)
  text = _text(path)
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
      values = [_float(field) for field in row[1:]]
      for column, (field, value) in enumerate(zip(row[1:], values), start=2):
        if value is None or not math.isfinite(value):
          raise InputError(f"{path}: line {line}, column {column}: feature {field.strip()[:20]!r} "
                           "is not a finite number")
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
  """``sklearn.datasets.load_digits``: ``X`` float32 ``[1797, 64]``, ``y`` int32 0..9 (the test part
  of UCI "Optical Recognition of Handwritten Digits", 8x8 images of pixel counts 0..16). It ships
  with scikit-learn, so the notes' network trains on real data without a download (d 64, K 10)."""
  from sklearn.datasets import load_digits   # imported here: only the default run needs it
  digits = load_digits()
  return digits.data.astype(np.float32), digits.target.astype(np.int32)


class Splits(NamedTuple):
  x_train: np.ndarray   # [n_train, d]
  y_train: np.ndarray   # [n_train, K] one-hot
  x_val: np.ndarray     # [n_val, d]
  y_val: np.ndarray     # [n_val, K]
  x_test: np.ndarray    # [n_test, d]
  y_test: np.ndarray    # [n_test, K]
  mean: np.ndarray      # [d] training-split mean
  std: np.ndarray       # [d] training-split standard deviation (1 where a feature is constant)


def split_sizes(n: int, fractions=DEFAULT_FRACTIONS) -> tuple[int, int, int]:
  """Rows in train / val / test for ``n`` rows (16,000 / 2,000 / 2,000 on the UCI file): val and
  test rounded, train takes the rest; InputError when a split would be empty."""
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
  """Splits ``X [N, d]``, ``y [N]`` integers by ``numpy.random.default_rng(seed)``'s
  permutation; ``num_classes`` defaults to ``max(y) + 1``."""
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

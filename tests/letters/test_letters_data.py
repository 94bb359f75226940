"""The letters data (rnn_jax.data.letter_recognition): the reader, the built-in default, preprocessing.

Kept beside the letters experiment's tests (tests/letters); the mirror of rnn_jax/data/letter_recognition.py.
"""
from __future__ import annotations

import collections

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnn_jax.common.errors import InputError
from rnn_jax.data import letter_recognition as letters_data

from letters_helpers import HEADER, row, write


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
  X, y = letters_data.read_letters(write(tmp_path, content))
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
    letters_data.read_letters(path)
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
    X, y = letters_data.read_letters(path)
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
  X, y = letters_data.read_letters(letters_csv)
  assert X.shape == (20000, 16) and y.shape == (20000,)
  counts = collections.Counter(letters_data.LETTERS[i] for i in y)
  assert counts == UCI_COUNTS
  # The 16 attributes are integers scaled to 0..15 (letter-recognition.names).
  assert X.min() == 0 and X.max() == 15 and np.array_equal(X, np.round(X))
  assert letters_data.LETTERS[y[0]] == "T"
  np.testing.assert_array_equal(X[0], [2, 8, 3, 5, 1, 8, 13, 0, 6, 6, 10, 8, 0, 8, 0, 8])


def test_default_dataset_is_sklearn_digits():
  X, y = letters_data.default_dataset()
  assert X.shape == (1797, 64) and X.dtype == np.float32
  assert sorted(set(y.tolist())) == list(range(10))
  assert X.min() == 0 and X.max() == 16


# --------------------------------------------------------------------------------------------
# Preprocessing


def test_split_sizes():
  assert letters_data.split_sizes(20000) == (16000, 2000, 2000)
  assert sum(letters_data.split_sizes(1797)) == 1797
  with pytest.raises(InputError, match="empty split"):
    letters_data.split_sizes(4)


def test_prepare_uses_training_statistics_only():
  rng = np.random.default_rng(0)
  X = rng.normal(3.0, 2.0, size=(200, 5)).astype(np.float32)
  X[:, 4] = 7.0                          # a constant feature: std 1, no NaN
  y = rng.integers(0, 4, size=200)
  s = letters_data.prepare(X, y, seed=1)
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
  s2 = letters_data.prepare(X2, y, seed=1)
  np.testing.assert_array_equal(s2.mean, s.mean)
  np.testing.assert_array_equal(s2.x_train, s.x_train)
  # Seeded: same seed, same split; another seed, another split.
  np.testing.assert_array_equal(letters_data.prepare(X, y, seed=1).x_val, s.x_val)
  assert not np.array_equal(letters_data.prepare(X, y, seed=2).x_val, s.x_val)

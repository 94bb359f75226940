"""rnn_jax.common.checks: what each check accepts and returns, what it refuses, and its one line."""
from __future__ import annotations

import re

import numpy as np
import pytest

from rnn_jax.common import checks
from rnn_jax.common.errors import InputError

NAN, INF = float("nan"), float("inf")


def refused(call, *args, **kwargs) -> str:
  """The message of the InputError that ``call(*args, **kwargs)`` raises (one line)."""
  with pytest.raises(InputError) as err:
    call(*args, **kwargs)
  message = str(err.value)
  assert "\n" not in message
  return message


@pytest.mark.parametrize("value,low,high,out", [
    (3, 1, None, 3), (1, 1, None, 1), (0, 0, None, 0), (np.int64(7), 1, None, 7),
    (12.0, 1, None, 12), (np.float32(5.0), 1, None, 5), (1440, 1, 1440, 1440), (-2, -5, None, -2),
])
def test_integer_accepts_integers_and_whole_floats_as_int(value, low, high, out):
  got = checks.integer("window", value, low, high)
  assert got == out and type(got) is int


@pytest.mark.parametrize("value,low,high,message", [
    (0, 1, None, "--window: expected a positive integer, got 0"),
    (-1, 0, None, "--window: expected an integer >= 0, got -1"),
    (1, 2, None, "--window: expected an integer >= 2, got 1"),
    (1441, 1, 1440, "--window: expected an integer from 1 to 1440, got 1441"),
    (0, 1, 1440, "--window: expected an integer from 1 to 1440, got 0"),
    (2.5, 1, None, "--window: expected a positive integer, got 2.5"),
    (True, 1, None, "--window: expected a positive integer, got True"),
    (False, 0, None, "--window: expected an integer >= 0, got False"),
    (np.bool_(True), 1, None, "--window: expected a positive integer, got True"),
    (NAN, 1, None, "--window: expected a positive integer, got nan"),
    (INF, 1, None, "--window: expected a positive integer, got inf"),
    ("3", 1, None, "--window: expected a positive integer, got '3'"),
    (None, 1, None, "--window: expected a positive integer, got None"),
    (np.int64(0), 1, None, "--window: expected a positive integer, got 0"),
    (0.0, 1, None, "--window: expected a positive integer, got 0.0"),
])
def test_integer_refuses_with_one_line_naming_the_flag(value, low, high, message):
  assert refused(checks.integer, "window", value, low, high) == message


def test_the_flag_comes_from_the_field_name():
  assert refused(checks.integer, "step_minutes", 0, 1).startswith("--step-minutes: expected ")
  assert refused(checks.number, "lr", 0).startswith("--lr: expected ")


def test_integers_accepts_a_tuple_or_list_and_returns_a_tuple_of_ints():
  assert checks.integers("batch_sizes", (1, 32, np.int64(256))) == (1, 32, 256)
  got = checks.integers("windows", [24, 12.0])
  assert got == (24, 12) and all(type(v) is int for v in got)
  assert checks.integers("windows", (0, 3), 0) == (0, 3)


@pytest.mark.parametrize("values,message", [
    ((1, 0), "--batch-sizes: expected positive integers, got 0"),
    ((-3,), "--batch-sizes: expected positive integers, got -3"),
    ((1, True), "--batch-sizes: expected positive integers, got True"),
    ((1, 2.5), "--batch-sizes: expected positive integers, got 2.5"),
    ((NAN,), "--batch-sizes: expected positive integers, got nan"),
    ((), "--batch-sizes: expected a comma-separated list of positive integers, got ()"),
    (8, "--batch-sizes: expected a comma-separated list of positive integers, got 8"),
    ("1,2", "--batch-sizes: expected a comma-separated list of positive integers, got '1,2'"),
])
def test_integers_refuses(values, message):
  assert refused(checks.integers, "batch_sizes", values) == message


def test_integers_bounds_words():
  assert refused(checks.integers, "windows", (1,), 2) == "--windows: expected integers >= 2, got 1"
  assert refused(checks.integers, "windows", (9,), 1, 8) == (
      "--windows: expected integers from 1 to 8, got 9")


@pytest.mark.parametrize("value,out", [(1e-3, 1e-3), (2, 2.0), (np.float32(0.5), 0.5),
                                       (np.int64(3), 3.0), (1e300, 1e300)])
def test_number_accepts_finite_positive_numbers_as_float(value, out):
  got = checks.number("lr", value)
  assert got == out and type(got) is float


@pytest.mark.parametrize("value", [0, 0.0, -1e-3, NAN, INF, -INF, True, np.bool_(True), "0.1",
                                   None, 1j])
def test_number_refuses(value):
  assert refused(checks.number, "lr", value) == (
      f"--lr: expected a finite positive number, got {value!r}".replace("np.True_", "True"))


def test_number_zero_is_off():
  assert checks.number("clip", 0, zero_is_off=True) == 0.0
  assert checks.number("clip", 2.5, zero_is_off=True) == 2.5
  for value in (-1.0, NAN, INF, False):
    assert refused(checks.number, "clip", value, zero_is_off=True) == (
        f"--clip: expected a finite number >= 0 (0 = off), got {value!r}")


def test_choice():
  assert checks.choice("optimizer", "adam", ("sgd", "adam")) == "adam"
  assert checks.choice("grad", "hand", ["autodiff", "hand"]) == "hand"
  assert refused(checks.choice, "optimizer", "rmsprop", ("sgd", "adam")) == (
      "--optimizer: expected one of sgd, adam, got 'rmsprop'")
  assert refused(checks.choice, "optimizer", None, ("sgd", "adam")) == (
      "--optimizer: expected one of sgd, adam, got None")
  assert refused(checks.choice, "unroll", True, (1, 2)) == (
      "--unroll: expected one of 1, 2, got True")                 # True == 1, still refused
  assert "--init: expected one of " in refused(checks.choice, "init", np.zeros(2), ("normal",))
  assert "--init: expected one of " in refused(checks.choice, "init", ["normal"], ("normal",))


def test_boolean():
  assert checks.boolean("remat", True) is True and checks.boolean("remat", False) is False
  assert checks.boolean("remat", np.bool_(True)) is True
  for value in (1, 0, "yes", "true", None, 1.0):
    assert refused(checks.boolean, "remat", value) == (
        f"--remat: expected true or false, got {value!r}")


def test_refuse_shows_numpy_scalars_as_python():
  assert refused(checks.refuse, "seed", "an integer >= 0", np.int64(-1)) == (
      "--seed: expected an integer >= 0, got -1")


def test_every_message_has_the_one_shape():
  shape = re.compile(r"^--[a-z][a-z-]*: expected .+, got .+$")
  for call, args in ((checks.integer, ("hidden_size", 0, 1)), (checks.integers, ("windows", ())),
                     (checks.number, ("lr", NAN)), (checks.choice, ("grad", "x", ("hand",))),
                     (checks.boolean, ("remat", "on"))):
    assert shape.match(refused(call, *args))

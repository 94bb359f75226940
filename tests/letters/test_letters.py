"""The letters experiment's training (rnn_jax.letters): SGD epochs, hand vs autodiff."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_jax.core import mlp
from rnn_jax.data import letter_recognition as letters_data
from rnn_jax import letters
from rnn_jax.common.errors import InputError


def test_data_names_are_reexported():
  """letters.X for the data names that scripts and notebooks reach through the experiment."""
  for name in ("DEFAULT_FRACTIONS", "LETTERS", "NUM_FEATURES", "Splits", "default_dataset",
               "one_hot", "prepare", "read_letters", "split_sizes", "standardize"):
    assert getattr(letters, name) is getattr(letters_data, name), name


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
  kwargs = dict(hidden_size=6, lr=0.1, epochs=2, seed=3, progress=False, dtype=jnp.float64)
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
  result = letters.train(X, y, hidden_size=16, lr=0.05, epochs=15, seed=0, progress=False,
                         on_epoch=seen.append)
  assert seen == result.history and [r["epoch"] for r in seen] == list(range(1, 16))
  assert result.sizes == {"train": 240, "val": 30, "test": 30}
  assert result.test_accuracy >= 0.95 and result.history[-1]["val_accuracy"] >= 0.95
  assert result.history[-1]["train_loss"] < 0.5 * result.history[0]["train_loss"]
  again = letters.train(X, y, hidden_size=16, lr=0.05, epochs=15, seed=0, progress=False)
  assert again.history == result.history
  jax.tree.map(np.testing.assert_array_equal, again.params, result.params)
  other = letters.train(X, y, hidden_size=16, lr=0.05, epochs=1, seed=1, progress=False)
  assert not np.array_equal(other.params.V, result.params.V)


@pytest.mark.parametrize("kwargs, words", [
    (dict(hidden_size=0), "--hidden-size: expected a positive integer"),
    (dict(epochs=0), "--epochs: expected a positive integer"),
    (dict(batch_size=0), "--batch-size: expected a positive integer"),
    (dict(batch_size=2.5), "--batch-size: expected a positive integer"),
    (dict(seed=-1), "--seed: expected an integer from 0 to 4294967295, got -1"),
    (dict(seed=2**32), "--seed: expected an integer from 0 to 4294967295, got 4294967296"),
    (dict(epochs=True), "--epochs: expected a positive integer, got True"),
    (dict(lr=float("nan")), "--lr: expected a finite positive number"),
    (dict(lr=-0.1), "--lr: expected a finite positive number"),
    (dict(lr="0.1"), "--lr: expected a finite positive number"),
    (dict(grad="numeric"), "--grad: expected one of autodiff, hand"),
    (dict(batch_size=1000), "--batch-size: 1000 is larger than the 240 training rows"),
    (dict(lr=1e38), r"--lr 1e\+38: training diverged at epoch 1, step \d+ \(non-finite loss\)"),
])
def test_train_rejects_bad_arguments(kwargs, words):
  X, y = _blobs(n=300, d=5, k=3)          # the shapes of the test above: no new compilation
  with pytest.raises(InputError, match=words):
    letters.train(X, y, **{"hidden_size": 16, "epochs": 1, "progress": False, **kwargs})


def test_config_stores_whole_floats_as_int():
  """Integer settings read as 16.0 (JSON, CSV) are accepted and stored as int, as everywhere."""
  cfg = letters.LettersConfig(hidden_size=16.0, epochs=np.int64(2), batch_size=4.0).validate()
  assert (cfg.hidden_size, cfg.epochs, cfg.batch_size) == (16, 2, 4)
  assert all(type(v) is int for v in (cfg.hidden_size, cfg.epochs, cfg.batch_size))


def test_short_real_training_beats_chance(letters_csv):
  """One epoch of the notes' one-sample SGD on 16,000 UCI letters: far above 1/26 chance."""
  X, y = letters.read_letters(letters_csv)
  result = letters.train(X, y, epochs=1, progress=False)
  assert result.sizes == {"train": 16000, "val": 2000, "test": 2000}
  assert result.test_accuracy > 0.6, result.test_accuracy   # chance: 1/26 = 0.038

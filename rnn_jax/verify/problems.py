"""Random problems for the gradient checks: the notes' RNN and the letters MLP, drawn with NumPy.

Drawing on the host from a seed costs no compilation per shape; ``to_dtype`` casts a drawn
problem (float32 values are exact in float64, so a float32 point has an exact float64 twin).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from rnn_jax.core import mlp, model
from rnn_jax.core.model import RNNParams


def to_dtype(tree, dtype):
  """Casts every leaf of a pytree (float32 values are exact in float64), on the host."""
  return jax.tree.map(lambda a: jnp.asarray(np.asarray(a).astype(dtype)), tree)


def rnn_problem(seed, *, T: int = 24, H: int = 200, D: int = 1, K: int = 3, B: int = 32,
                scheme: str = "normal", targets: str = "soft", dtype=np.float64):
  """A random problem for the RNN: ``(params, xs [B,T,D] ~ N(0,1), ys [B,K])``.

  The parameters follow rnn_jax.core.model.init_params' distribution (weights N(0, 1/fan_in),
  biases 0, ``scheme="irnn"``: U = I) but are drawn with NumPy from ``seed`` (an int or a
  tuple of ints), which costs no compilation per shape. ``targets="soft"``: ys uniform in
  [0, 1] (occupancy fractions); ``"onehot"``: one class per example (with K = 1, all ones).
  """
  if scheme not in model.INIT_SCHEMES:
    raise ValueError(f"scheme: expected one of {model.INIT_SCHEMES}, got {scheme!r}")
  if targets not in ("soft", "onehot"):
    raise ValueError(f"targets: expected 'soft' or 'onehot', got {targets!r}")
  rng = np.random.default_rng(seed)
  normal = lambda *shape: rng.standard_normal(shape)
  U = np.eye(H) if scheme == "irnn" else normal(H, H) / np.sqrt(H)
  params = RNNParams(U=U, V=normal(H, D) / np.sqrt(D), b=np.zeros(H),
                     W=normal(K, H) / np.sqrt(H), c=np.zeros(K))
  xs = normal(B, T, D)
  ys = rng.uniform(size=(B, K)) if targets == "soft" else np.eye(K)[rng.integers(0, K, B)]
  return to_dtype((params, xs, ys), dtype)


def mlp_problem(seed, *, d: int = 16, H: int = 200, K: int = 26, B: int = 32, dtype=np.float64):
  """A random problem for the letters MLP: ``(params, xs [B,d] ~ N(0,1), one-hot ys [B,K])``,
  weights N(0, 1/fan_in) as rnn_jax.core.mlp.init_params draws them, with NumPy from ``seed``."""
  rng = np.random.default_rng(seed)
  params = mlp.MLPParams(V=rng.standard_normal((H, d + 1)) / np.sqrt(d + 1),
                         W=rng.standard_normal((K, H + 1)) / np.sqrt(H + 1))
  xs = rng.standard_normal((B, d))
  ys = np.eye(K)[rng.integers(0, K, B)]
  return to_dtype((params, xs, ys), dtype)

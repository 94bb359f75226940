"""The notes' base case: the one-hidden-layer letters network with its matrix-form gradients,
bias-augmented as in the notes (784+1 inputs, 200+1 hidden units there): the biases are the
last columns of V and W.

    x~ = [x; 1]   [d+1]        h = tanh(V x~)   [H]        h~ = [h; 1]   [H+1]
    z  = sigmoid(W h~)   [K]   L = sum_k BCE(z_k, y_k), averaged over the batch

Gradients (notes, equations (1)-(3)), with Q = z - y and S = sech^2(V x~) = 1 - h^2:

    grad_W = Q h~^T                      [K, H+1]
    grad_V = ((W^T Q)[:H] * S) x~^T      [H, d+1]

The notes write ``W^T Q`` as [201 x 1]; its last row belongs to the constant unit of h~, which
nothing feeds, so it is dropped before multiplying by S (200 rows). Batched, Q is [B, K] / B.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from rnn_jax.core.model import ShapeError, bce_from_logits, check_shape


class MLPParams(NamedTuple):
  """The notes' letters-network weights, biases folded in as last columns."""
  V: jax.Array  # [H, d+1] input (with constant 1) to hidden
  W: jax.Array  # [K, H+1] hidden (with constant 1) to output


def init_params(key, input_size: int = 16, hidden_size: int = 200, output_size: int = 26, *,
                dtype=jnp.float32) -> MLPParams:
  """Weights from N(0, 1/fan_in) (the notes' normal; fan_in counts the bias unit)."""
  for name, value in (("input_size", input_size), ("hidden_size", hidden_size),
                      ("output_size", output_size)):
    if int(value) != value or value < 1:
      raise ValueError(f"{name}: expected a positive integer, got {value!r}")
  kV, kW = jax.random.split(key)
  d, H, K = int(input_size), int(hidden_size), int(output_size)
  V = jax.random.normal(kV, (H, d + 1), dtype) / jnp.sqrt(jnp.asarray(d + 1, dtype))
  W = jax.random.normal(kW, (K, H + 1), dtype) / jnp.sqrt(jnp.asarray(H + 1, dtype))
  return MLPParams(V=V, W=W)


def _augment(a):
  """``[B, n] -> [B, n+1]``."""
  return jnp.concatenate([a, jnp.ones(a.shape[:-1] + (1,), a.dtype)], axis=-1)


def _check(params: MLPParams, xs, ys=None):
  H, d1 = params.V.shape
  K, h1 = params.W.shape
  if h1 != H + 1:
    raise ShapeError(f"params.W: expected shape [{K}, {H + 1}], got {list(params.W.shape)}")
  check_shape("xs", xs, (None, d1 - 1))
  if ys is not None:
    check_shape("ys", ys, (xs.shape[0], K))


def _forward(params: MLPParams, xs):
  x_aug = _augment(xs)
  h = jnp.tanh(x_aug @ params.V.T)
  h_aug = _augment(h)
  return x_aug, h, h_aug, h_aug @ params.W.T


def forward(params: MLPParams, xs):
  """Logits ``W h~`` ``[B, K]`` for ``xs [B, d]``."""
  _check(params, xs)
  return _forward(params, xs)[-1]


def predict(params: MLPParams, xs):
  """``z = sigmoid(W h~)``, ``[B, K]``."""
  return jax.nn.sigmoid(forward(params, xs))


def loss(params: MLPParams, xs, ys):
  """The notes' binary cross-entropy (rnn_jax.core.model.bce_from_logits)."""
  _check(params, xs, ys)
  return bce_from_logits(_forward(params, xs)[-1], ys)


def loss_and_grads(params: MLPParams, xs, ys) -> tuple[jax.Array, MLPParams]:
  """``(loss, grads)`` from the notes' matrix-form equations; no autodiff."""
  _check(params, xs, ys)
  x_aug, h, h_aug, logits = _forward(params, xs)
  # Q = z - y without the cancellation of a confidently right z (as in rnn_jax.bptt)
  Q = ((1 - ys) * jax.nn.sigmoid(logits) - ys * jax.nn.sigmoid(-logits)) / xs.shape[0]
  S = 1.0 - h * h                                           # sech^2(V x~), [B, H]
  grad_W = Q.T @ h_aug                                      # Q h~^T
  back = (Q @ params.W)[:, :-1]                             # (W^T Q) without the bias unit
  grad_V = (back * S).T @ x_aug                             # ((W^T Q) * S) x~^T
  return bce_from_logits(logits, ys), MLPParams(V=grad_V, W=grad_W)


def sgd_step(params: MLPParams, xs, ys, lr: float):
  """The notes' update ``V <- V - eps grad_V``, ``W <- W - eps grad_W``; returns (params, loss)."""
  value, grads = loss_and_grads(params, xs, ys)
  return jax.tree.map(lambda p, g: p - lr * g, params, grads), value

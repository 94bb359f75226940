"""The notes' BPTT written once more, in plain NumPy float64, keeping every step.

No JAX anywhere in this module: it is the independent per-step witness of tests/core/
test_bptt_per_step.py. With the batch on the leading axis (rnn_jax.core.bptt's docstring):

    A_t = h_{t-1} U^T + x_t V^T + b        h_t = relu(A_t)        l = h_T W^T + c (+ anchor)
    L   = mean_b sum_k y softplus(-l) + (1 - y) softplus(l)      Q = ((1-y) sigmoid(l) - y sigmoid(-l)) / B
    g_T = Q W       delta_t = g_t * [A_t > 0]       g_{t-1} = delta_t U
    dU_t = delta_t^T h_{t-1}   dV_t = delta_t^T x_t   db_t = sum_b delta_t   dx_t = delta_t V

With the pinball loss (``taus``, rnn_jax.core.model.pinball_from_logits) on the logit scale
``y~ = logit(clip(y, eps, 1 - eps))``:

    L   = mean_b sum_k max(tau (y~ - l), (tau - 1) (y~ - l))      Q = ([y~ < l] - tau) / B

``backward`` returns each of them for every t (``g[:, t-1]`` is dL/dh_t), so a test can hold
every step to its own scale: at T = 100 with the normal init the early steps are ~1e-15 of the
late ones, far below any per-parameter relative error.

BLAS runs single-threaded here (threadpoolctl, a dependency of scikit-learn): the products are
small, and on a 2-core runner two BLAS threads beside XLA's spend ~100x longer waiting for each
other than computing (measured: 3.4 s against 0.02 s for the [100, 200, 64] products).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from threadpoolctl import threadpool_limits

from rnn_jax.core.model import ANCHOR_EPS, RNNParams


class Steps(NamedTuple):
  """The per-step quantities of the reference BPTT, batch first (``[B, T, ...]``)."""
  loss: float
  logits: np.ndarray   # [B, K]
  hs: np.ndarray       # [B, T, H]  h_t
  g: np.ndarray        # [B, T, H]  dL/dh_t (total derivative)
  delta: np.ndarray    # [B, T, H]  dL/dA_t
  dU: np.ndarray       # [T, H, H]  delta_t^T h_{t-1}
  dV: np.ndarray       # [T, H, D]  delta_t^T x_t
  db: np.ndarray       # [T, H]     sum_b delta_t
  grads: RNNParams     # the sums over t, and the head's W, c
  dxs: np.ndarray      # [B, T, D]  dL/dx_t (with the anchor's term at T, feature 0)
  dh0: np.ndarray      # [B, H]     dL/dh_0


def _f64(a):
  return np.asarray(a, np.float64)


def anchor_logit(xs) -> np.ndarray:
  """``logit(clip(x_T[0], eps, 1 - eps))``, ``[B, 1]``."""
  p = np.clip(_f64(xs)[:, -1, 0], ANCHOR_EPS, 1 - ANCHOR_EPS)
  return (np.log(p) - np.log1p(-p))[:, None]


def sigmoid(logits) -> np.ndarray:
  """``1 / (1 + e^-l)`` as ``exp(-softplus(-l))``: no overflow, full relative accuracy where it
  saturates (a ``Q`` of 1e-18 against a target of 0 keeps its digits)."""
  return np.exp(-np.logaddexp(0.0, -_f64(logits)))


def bce(logits, ys) -> float:
  """``mean_b sum_k -[y log z + (1-y) log(1-z)]``, z = sigmoid(l), written as
  ``y softplus(-l) + (1-y) softplus(l)``: two non-negative terms, so a loss of 1e-6 from a
  confident right answer keeps its digits (``softplus(l) - y l``, the same number, loses them
  to cancellation: 5e-10 relative at l = 13.5)."""
  logits, ys = _f64(logits), _f64(ys)
  terms = ys * np.logaddexp(0.0, -logits) + (1 - ys) * np.logaddexp(0.0, logits)
  return float(np.mean(np.sum(terms, axis=-1)))


def clipped_logit(ys) -> np.ndarray:
  """``logit(clip(y, eps, 1 - eps))``, elementwise."""
  p = np.clip(_f64(ys), ANCHOR_EPS, 1 - ANCHOR_EPS)
  return np.log(p) - np.log1p(-p)


def pinball(logits, ys, taus) -> float:
  """``mean_b sum_k rho_tau(y~ - l)``, ``rho_tau(u) = max(tau u, (tau - 1) u)``."""
  u = clipped_logit(ys) - _f64(logits)
  tau = np.asarray(taus, np.float64)
  return float(np.mean(np.sum(np.maximum(tau * u, (tau - 1) * u), axis=-1)))


def head(logits, ys, taus=None) -> tuple[float, np.ndarray]:
  """``(L, Q)`` of the cross-entropy (``taus`` None) or the pinball loss."""
  logits, ys = _f64(logits), _f64(ys)
  B = logits.shape[0]
  if taus is None:
    return bce(logits, ys), ((1 - ys) * sigmoid(logits) - ys * sigmoid(-logits)) / B
  below = (clipped_logit(ys) < logits).astype(np.float64)
  return pinball(logits, ys, taus), (below - np.asarray(taus, np.float64)) / B


@threadpool_limits.wrap(limits=1, user_api="blas")
def forward(params: RNNParams, xs, h0=None, anchor: bool = False):
  """``(hs [B,T,H], logits [B,K])`` of the notes' network, step by step."""
  U, V, b, W, c = (_f64(a) for a in params)
  xs = _f64(xs)
  h = np.zeros((xs.shape[0], U.shape[0])) if h0 is None else _f64(h0)
  hs = []
  for t in range(xs.shape[1]):
    h = np.maximum(h @ U.T + xs[:, t] @ V.T + b, 0.0)
    hs.append(h)
  logits = h @ W.T + c
  if anchor:
    logits = logits + anchor_logit(xs)
  return np.stack(hs, axis=1), logits


def loss(params: RNNParams, xs, ys, h0=None, anchor: bool = False, taus=None) -> float:
  """The notes' loss (or the pinball loss of ``taus``) in float64."""
  return head(forward(params, xs, h0, anchor)[1], ys, taus)[0]


def outer_per_step(a, b) -> np.ndarray:
  """``a_t^T b_t`` for every t: ``[B, T, I], [B, T, J] -> [T, I, J]``."""
  return np.swapaxes(a, 0, 1).transpose(0, 2, 1) @ np.swapaxes(b, 0, 1)


@threadpool_limits.wrap(limits=1, user_api="blas")
def backward(params: RNNParams, xs, ys, h0=None, anchor: bool = False, taus=None) -> Steps:
  """Every per-step quantity of the notes' BPTT (see the module docstring); ``taus``: the
  pinball loss's quantile levels (None: the cross-entropy)."""
  U, V, _, W, _ = (_f64(a) for a in params)
  xs, ys = _f64(xs), _f64(ys)
  B, T, _ = xs.shape
  hs, logits = forward(params, xs, h0, anchor)
  h0 = np.zeros((B, U.shape[0])) if h0 is None else _f64(h0)
  h_prev = np.concatenate([h0[:, None], hs[:, :-1]], axis=1)          # h_{t-1}
  value, Q = head(logits, ys, taus)   # BCE: z - y written without cancellation
  g, delta = np.zeros_like(hs), np.zeros_like(hs)
  g_t = Q @ W
  for t in range(T - 1, -1, -1):
    g[:, t] = g_t
    delta[:, t] = g_t * (hs[:, t] > 0)
    g_t = delta[:, t] @ U
  dU = outer_per_step(delta, h_prev)
  dV = outer_per_step(delta, xs)
  db = delta.sum(axis=0)
  dxs = delta @ V
  if anchor:
    x = xs[:, -1, 0]
    inside = (x > ANCHOR_EPS) & (x < 1 - ANCHOR_EPS)
    safe = np.where(inside, x, 0.5)
    dxs[:, -1, 0] += np.where(inside, Q.sum(axis=1) / (safe * (1 - safe)), 0.0)
  grads = RNNParams(U=dU.sum(0), V=dV.sum(0), b=db.sum(0), W=Q.T @ hs[:, -1], c=Q.sum(0))
  return Steps(value, logits, hs, g, delta, dU, dV, db, grads, dxs, g_t)

"""Backpropagation through time written out from the derivation notes, no autodiff.

For the batch-mean loss ``L = (1/B) sum_b BCE(sigmoid(W h_T + c), y)`` (see rnn_jax.core.model),
with the batch on the leading axis, the notes' equations become:

    Q       = (z - y) / B                      [B, K]   the notes' Q, scaled for the batch mean
    grad_W  = Q^T h_T                          [K, H]   the notes' (z - y) h_f^T
    grad_c  = sum_b Q                          [K]
    g_T     = Q W                              [B, H]   the notes' W^T (z - y), per example
    delta_t = g_t * relu'(A_t)                 [B, H]   relu'(a) = 1 if a > 0 else 0
    g_{t-1} = delta_t U                        [B, H]   the notes' U^T delta_t
    grad_U  = sum_t delta_t^T h_{t-1}          [H, H]   the notes' sum of delta_t h_{t-1}^T
    grad_V  = sum_t delta_t^T x_t              [H, D]
    grad_b  = sum_t sum_b delta_t              [H]

With the anchor (``anchor=True``, rnn_jax.core.model.anchor_logit) Q is taken from the anchored
logits and the skip adds one term to the input gradient, at the last step on feature 0 only:

    dL/dx_T[0] += (sum_k Q_k) / (x (1 - x))    where eps < x < 1 - eps, else 0 (clipped)

With the pinball loss (``taus``, rnn_jax.core.model.pinball_from_logits) only Q and dL/dy
change; everything after Q above is the same:

    Q       = (1{y~ < l} - tau) / B            [B, K]   y~ = logit(clip(y, eps, 1 - eps))
    dL/dy   = -Q / (y (1 - y))                 [B, K]   where eps < y < 1 - eps, else 0

``g_t`` is dL/dh_t. No JAX differentiation here (grad, vjp, jvp, linearize); ``loss`` is a
``jax.custom_vjp`` whose backward rule is the hand BPTT, for rnn_jax/core/gradients.py.
"""
from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from rnn_jax.core import model
from rnn_jax.core.model import RNNParams


class BPTTResult(NamedTuple):
  """Everything the hand backward pass computes."""
  loss: jax.Array       # []        the notes' loss
  grads: RNNParams      # same shapes as params
  dh_norms: jax.Array   # [T]       ||dL/dh_t||_F over the batch, t = 1..T
  dxs: jax.Array        # [B, T, D] dL/dx_t = delta_t V (+ the anchor's term at T, feature 0)
  dh0: jax.Array        # [B, H]    dL/dh_0
  dys: jax.Array        # [B, K]    dL/dy: -logits / B (cross-entropy), -Q / (y (1 - y)) (pinball)


# Where the stacked deltas (``_reverse``: [T, B, H] written, read back with h_{t-1}) stop paying
# against the carry's two small GEMMs a step. Measured side by side, training step at T=24,
# H=200 (15 rounds, against autodiff): stacked 0.95x / carry 0.83x at B=1, 1.33x / 1.09x at
# B=32, 1.44x / 1.03x at 64, 1.28x / 1.02x at 128 (T B H = 614k), then 0.93-0.97x / 1.03-1.10x
# at B=256 (1.2M elements: the stacked pair is 9.8 MB) and 0.86x / 1.03x at 512. So stacked up
# to 2^20 elements (a pair of 8 MB), the carry beyond.
STACKED_MAX_ELEMENTS = 2 ** 20
SUMS = ("stacked", "carry")


def sums_for(T: int, B: int, H: int) -> str:
  """How ``_reverse`` forms grad_U, grad_V, grad_b at this shape: ``"stacked"`` when
  ``T B H <= STACKED_MAX_ELEMENTS``, else ``"carry"``."""
  return "stacked" if T * B * H <= STACKED_MAX_ELEMENTS else "carry"


def _check_sums(sums):
  if sums is not None and sums not in SUMS:
    raise ValueError(f"sums: expected one of {SUMS} or None, got {sums!r}")


def _reverse(params: RNNParams, xs_t, h_prev, active, hT, g_last, cotangent_hs=None,
             sums=None):
  """The one reverse ``lax.scan`` of BPTT, shared by the loss and the hidden-state VJP.

  Runs ``g_t <- g_t + cotangent_t``, ``delta_t = g_t * relu'(A_t)``, ``g_{t-1} = delta_t U``
  from t = T down to 1, from ``g_last`` (dL/dh_T through the head; zeros for a pure VJP), on
  ``model._run_for_bptt``'s ``h_prev [T,B,H]``, ``active [T,B,H]`` (A_t > 0) and ``hT [B,H]``;
  ``cotangent_hs [T,B,H]`` on every h_t, or None (the loss).

  Two ways to form grad_U, grad_V, grad_b (``sums``, default ``sums_for``; equal to rounding):

  * ``"stacked"``: the scan runs only the dependent chain and stacks the deltas; each sum is
    then one GEMM over all ``T*B`` rows (dL/dx = deltas V one more, dropped by XLA when unread).
  * ``"carry"``: accumulated in the scan's carry, as the notes write them, so nothing of size
    [T, B, H] is written in the backward pass. It reads ``relu'(A_t) = [h_t > 0]`` from the h_t
    it reads anyway for grad_U, so XLA drops ``active`` from the forward pass (training step
    1.01-1.04x faster at B=1024, 1.08x at B=4096; in the stacked way the one-byte mask stays
    cheaper to read).

  Returns ``(grad_U [H,H], grad_V [H,D], grad_b [H], dxs [T,B,D], dh0 [B,H], dh_norms [T])``,
  ``dh_norms[t] = ||dL/dh_t||`` over the batch (with step t's cotangent: the total derivative).
  """
  _check_sums(sums)
  T, B, H = h_prev.shape
  D = xs_t.shape[-1]
  U, V = params.U, params.V
  if (sums or sums_for(T, B, H)) == "stacked":
    def chain(g, inputs):
      on, ct = inputs
      if ct is not None:
        g = g + ct
      delta = jnp.where(on, g, 0)                            # relu'(A_t) = 1 if A_t > 0
      return delta @ U, (delta, jnp.sqrt(jnp.sum(g * g)))

    dh0, (deltas, dh_norms) = jax.lax.scan(chain, g_last, (active, cotangent_hs), reverse=True)
    rows = deltas.reshape(T * B, H)
    grad_U = rows.T @ h_prev.reshape(T * B, H)
    grad_V = (xs_t.reshape(T * B, D).T @ rows).T             # [D, TB] x [TB, H]: the fast way
    return grad_U, grad_V, jnp.sum(rows, axis=0), deltas @ V, dh0, dh_norms

  def step(carry, inputs):
    g, h, grad_U, grad_V, grad_b = carry                     # h = h_t
    hp, x, ct = inputs                                       # hp = h_{t-1}
    if ct is not None:
      g = g + ct
    delta = jnp.where(h > 0, g, 0)                           # relu'(A_t) = [h_t > 0]
    carry = (delta @ U, hp, grad_U + delta.T @ hp, grad_V + (x.T @ delta).T,
             grad_b + jnp.sum(delta, axis=0))
    return carry, (delta @ V, jnp.sqrt(jnp.sum(g * g)))

  zeros = lambda a: jnp.zeros(a.shape, g_last.dtype)
  init = (g_last, hT, zeros(U), zeros(V), zeros(params.b))
  (dh0, _, grad_U, grad_V, grad_b), (dxs_t, dh_norms) = jax.lax.scan(
      step, init, (h_prev, xs_t, cotangent_hs), reverse=True)
  return grad_U, grad_V, grad_b, dxs_t, dh0, dh_norms


def _anchor_dxs(xs, Q):
  """The anchor's term of dL/dxs ``[B,T,D]``: ``sum_k Q_k / (x (1 - x))`` at (T, feature 0),
  times the clip's derivative (``model.anchor_inside``)."""
  x = xs[:, -1, 0]
  inside = model.anchor_inside(x)
  safe = jnp.where(inside, x, 0.5)                           # no 1/0 in the branch not taken
  slope = jnp.where(inside, 1 / (safe * (1 - safe)), 0)
  return jnp.zeros(xs.shape, Q.dtype).at[:, -1, 0].set(jnp.sum(Q, axis=1) * slope)


def _bce_head(logits, ys):
  """``(Q, dL/dy)`` of the cross-entropy (``model.bce_from_logits``), ``[B, K]`` each.

  Q = z - y, written (1 - y) sigmoid(l) - y sigmoid(-l) (equal, as sigmoid(l) + sigmoid(-l)
  = 1) so that a confidently right prediction (l = 20, y = 1) keeps its digits instead of
  cancelling 1 - 2e-9 against 1; found by the property test in tests/core/test_bptt.py.
  ``softplus(l) - y l`` gives dL/dy = -l / B."""
  B = logits.shape[0]
  Q = ((1 - ys) * jax.nn.sigmoid(logits) - ys * jax.nn.sigmoid(-logits)) / B
  return Q, -logits / B


def _pinball_head(logits, ys, taus):
  """``(Q, dL/dy)`` of the pinball loss on the logit scale (``model.pinball_from_logits``).

  With ``u = y~ - l``, ``rho_tau(u)`` has slope ``tau - 1`` for ``u < 0`` and ``tau`` for
  ``u >= 0`` (the tie on the ``tau`` side, as the model's ``where`` puts it), so
  ``dL/dl = -rho'(u) / B = (1{y~ < l} - tau) / B``: a step, with no ``z (1 - z)`` factor. And
  ``dL/dy = rho'(u) / B * dy~/dy = -Q / (y (1 - y))`` inside the clip, 0 outside it (the clip's
  derivative is ``model.anchor_inside``, the bounds included)."""
  B = logits.shape[0]
  tau = jnp.asarray(taus, logits.dtype)
  Q = (jnp.where(model.clipped_logit(ys) < logits, 1, 0) - tau) / B
  inside = model.anchor_inside(ys)
  safe = jnp.where(inside, ys, 0.5)                          # no 1/0 in the branch not taken
  return Q, jnp.where(inside, -Q / (safe * (1 - safe)), 0)


def _backward(params: RNNParams, xs, ys, h0, anchor: bool = False, sums=None,
              taus=None) -> BPTTResult:
  xs_t = jnp.swapaxes(xs, 0, 1)                              # [T, B, D]
  hT, h_prev, active = model._run_for_bptt(params, xs, h0)   # h_{t-1}, A_t > 0: [T, B, H]
  logits = model.logits_of(params, hT, xs, anchor)
  value = model.loss_from_logits(logits, ys, taus)
  Q, dys = _bce_head(logits, ys) if taus is None else _pinball_head(logits, ys, taus)  # [B, K]
  grad_W = Q.T @ hT
  grad_c = jnp.sum(Q, axis=0)
  g_T = Q @ params.W                                         # dL/dh_T, [B, H]

  grad_U, grad_V, grad_b, dxs_t, dh0, dh_norms = _reverse(params, xs_t, h_prev, active, hT,
                                                          g_T, sums=sums)
  grads = RNNParams(U=grad_U, V=grad_V, b=grad_b, W=grad_W, c=grad_c)
  dxs = jnp.swapaxes(dxs_t, 0, 1)
  if anchor:
    dxs = dxs + _anchor_dxs(xs, Q)
  return BPTTResult(value, grads, dh_norms, dxs, dh0, dys)


def hidden_states_vjp(params: RNNParams, xs, cotangent_hs, h0=None, *, sums: str | None = None
                      ) -> tuple[RNNParams, jax.Array, jax.Array]:
  """The hand VJP of ``rnn_jax.hidden_states`` for ``cotangent_hs [B,T,H]``: ``(grads, dxs
  [B,T,D], dh0 [B,H])``, no head (``grads.W``, ``grads.c`` zero); ``sums`` as in ``_reverse``."""
  B, T, _, H, _ = model.check_inputs(params, xs, h0=h0)
  model.check_shape("cotangent_hs", cotangent_hs, (B, T, H))
  _check_sums(sums)
  hT, h_prev, active = model._run_for_bptt(params, xs, h0)
  ct_t = jnp.swapaxes(jnp.asarray(cotangent_hs, hT.dtype), 0, 1)   # [T, B, H]
  grad_U, grad_V, grad_b, dxs_t, dh0, _ = _reverse(
      params, jnp.swapaxes(xs, 0, 1), h_prev, active, hT, jnp.zeros_like(hT), ct_t, sums)
  grads = RNNParams(U=grad_U, V=grad_V, b=grad_b, W=jnp.zeros_like(params.W),
                    c=jnp.zeros_like(params.c))
  return grads, jnp.swapaxes(dxs_t, 0, 1), dh0


def _check(params, xs, ys, h0, sums, taus):
  """The public functions' checks; returns ``taus`` as ``model.check_taus`` gives it."""
  _, _, _, _, K = model.check_inputs(params, xs, ys, h0)
  _check_sums(sums)
  return model.check_taus(taus, K)


def backward(params: RNNParams, xs, ys, h0=None, *, anchor: bool = False,
             sums: str | None = None, taus=None) -> BPTTResult:
  """The hand BPTT's ``BPTTResult``; ``anchor`` and ``taus`` as in rnn_jax.loss (``taus``: the
  pinball loss's K quantile levels, None for the cross-entropy), ``sums`` as in ``_reverse``."""
  taus = _check(params, xs, ys, h0, sums, taus)
  return _backward(params, xs, ys, h0, anchor, sums, taus)


def loss_and_grads(params: RNNParams, xs, ys, h0=None, *, anchor: bool = False,
                   sums: str | None = None, taus=None) -> tuple[jax.Array, RNNParams]:
  """``(loss, grads)`` of rnn_jax.loss by the notes' hand-written BPTT; jit-compatible."""
  result = backward(params, xs, ys, h0, anchor=anchor, sums=sums, taus=taus)
  return result.loss, result.grads


def grad_norms(params: RNNParams, xs, ys, h0=None, *, anchor: bool = False,
               taus=None) -> jax.Array:
  """``||dL/dh_t||`` for t = 1..T, ``[T]``: vanishing or exploding gradients at a glance."""
  return backward(params, xs, ys, h0, anchor=anchor, taus=taus).dh_norms


@partial(jax.custom_vjp, nondiff_argnums=(4, 5, 6))
def _loss(params, xs, ys, h0, anchor, sums, taus):
  hT = model._run(params, xs, h0)[0]
  return model.loss_from_logits(model.logits_of(params, hT, xs, anchor), ys, taus)


def _loss_fwd(params, xs, ys, h0, anchor, sums, taus):
  r = _backward(params, xs, ys, h0, anchor, sums, taus)
  return r.loss, (r.grads, r.dxs, r.dys, r.dh0)


def _loss_bwd(anchor, sums, taus, res, ct):
  del anchor, sums, taus                                     # already in the residuals
  grads, dxs, dys, dh0 = res
  return jax.tree.map(lambda g: ct * g, (grads, dxs, dys, dh0))


_loss.defvjp(_loss_fwd, _loss_bwd)


def loss(params: RNNParams, xs, ys, h0=None, *, anchor: bool = False, sums: str | None = None,
         taus=None):
  """rnn_jax.loss whose derivative, under any JAX transformation, is the hand BPTT. ``taus``
  (the pinball loss's quantile levels) must be concrete: it is a static argument, as a tuple."""
  taus = _check(params, xs, ys, h0, sums, taus)
  if h0 is None:
    B, H = xs.shape[0], params.U.shape[0]
    h0 = jnp.zeros((B, H), jnp.result_type(params.U, xs))
  return _loss(params, xs, ys, h0, bool(anchor), sums, taus)

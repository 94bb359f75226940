"""The notes' recurrent network as pure functions over one small pytree. Axes, everywhere:

    xs: [B, T, D]   a batch of B windows of T steps with D inputs per step
    ys: [B, K]      targets in [0, 1] (soft occupancy fractions or one-hot classes)
    h:  [B, H]      hidden state; logits: [B, K]

The cell (derivation notes, "RNN Diagram"), with a bias the notes leave implicit, is

    A_t = U h_{t-1} + V x_t + b        h_t = relu(A_t)        z = sigmoid(W h_T + c)

and the loss is the notes' binary cross-entropy, summed over the K outputs and averaged over
the batch; ``U h`` is written ``h @ U.T``. ``anchor=True`` (off by default) adds
``anchor_logit``, a skip from the last reading, to every logit. ``taus`` (None by default: the
cross-entropy) switches the loss to the pinball loss of quantile levels ``taus``, one per
output, on the logit scale (``pinball_from_logits``).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax


class RNNParams(NamedTuple):
  """Parameters of the notes' RNN, named as in the derivation notes."""
  U: jax.Array  # [H, H] hidden to hidden
  V: jax.Array  # [H, D] input to hidden
  b: jax.Array  # [H]    hidden bias
  W: jax.Array  # [K, H] hidden to output
  c: jax.Array  # [K]    output bias


class ShapeError(ValueError):
  """A public function was given an array of the wrong shape; the message names it."""


INIT_SCHEMES = ("normal", "irnn")

# The anchor clips the reading to [ANCHOR_EPS, 1 - ANCHOR_EPS]: logit(0) is -inf, and an empty
# room (common at night) reads 0. The core does not know the capacity; 1e-3 of it makes
# persistence from an empty room forecast under a tenth of a person for rooms of up to 100
# (below one count up to 1000), while logit(1e-3) = -6.9 keeps the correction from an empty
# room to a busy one a few units of logit. A smaller eps buys almost nothing in error.
ANCHOR_EPS = 1e-3


def init_params(key, input_size: int = 1, hidden_size: int = 200, output_size: int = 3, *,
                scheme: str = "normal", zero_head: bool = False,
                dtype=jnp.float32) -> RNNParams:
  """Draws the notes' parameters. ``scheme="normal"``: weights from N(0, 1/fan_in) (fan_in = H
  for U and W, D for V), biases zero; the notes leave sigma^2 blank. 1/fan_in keeps Var(A_t)
  close to Var(h_{t-1}) + Var(x_t); as ReLU passes half of a symmetric pre-activation's second
  moment, the hidden state then shrinks (rather than blows up) over the 24 steps. 2/fan_in (He)
  sits on the edge of explosion.

  ``scheme="irnn"``: U = I, b = c = 0 (Le, Jaitly and Hinton 2015, "A Simple Way to Initialize
  Recurrent Networks of Rectified Linear Units"), but V and W keep the 1/fan_in normal, not the
  paper's std 0.001: with both near zero plain SGD starts at a saddle and barely moves.

  ``zero_head=True``: W = 0, c = 0, so that with ``anchor=True`` the untrained network forecasts
  persistence. The first gradient reaches only the head (dL/dh_T = Q W = 0), which grad_W =
  Q^T h_T moves off zero in one step; the same trick as zero-initialising a residual branch's
  last layer (Goyal et al. 2017, "Accurate, Large Minibatch SGD"; Fixup, Zhang et al. 2019).
  """
  if scheme not in INIT_SCHEMES:
    raise ValueError(f"scheme: expected one of {INIT_SCHEMES}, got {scheme!r}")
  for name, value in (("input_size", input_size), ("hidden_size", hidden_size),
                      ("output_size", output_size)):
    if int(value) != value or value < 1:
      raise ValueError(f"{name}: expected a positive integer, got {value!r}")
  D, H, K = int(input_size), int(hidden_size), int(output_size)
  kU, kV, kW = jax.random.split(key, 3)
  normal = lambda k, shape, fan_in: jax.random.normal(k, shape, dtype) / jnp.sqrt(
      jnp.asarray(fan_in, dtype))
  if scheme == "irnn":
    U = jnp.eye(H, dtype=dtype)
  else:
    U = normal(kU, (H, H), H)
  W = normal(kW, (K, H), H)
  if zero_head:
    W = jnp.zeros_like(W)
  return RNNParams(U=U, V=normal(kV, (H, D), D), b=jnp.zeros((H,), dtype), W=W,
                   c=jnp.zeros((K,), dtype))


def param_sizes(params: RNNParams) -> tuple[int, int, int]:
  """(D, H, K) of a parameter pytree, checking that its fields agree with each other."""
  H = params.U.shape[0]
  D = params.V.shape[-1]
  K = params.W.shape[0]
  expected = {"U": (H, H), "V": (H, D), "b": (H,), "W": (K, H), "c": (K,)}
  for name, shape in expected.items():
    actual = tuple(getattr(params, name).shape)
    if actual != shape:
      raise ShapeError(f"params.{name}: expected shape {list(shape)}, got {list(actual)}")
  return D, H, K


def check_shape(name: str, x, expected: tuple) -> None:
  """Raises ShapeError naming ``name`` unless ``x.shape`` matches ``expected`` (None = any)."""
  shape = tuple(jnp.shape(x))
  ok = len(shape) == len(expected) and all(
      e is None or e == s for e, s in zip(expected, shape))
  if not ok:
    want = "[" + ", ".join("*" if e is None else str(e) for e in expected) + "]"
    raise ShapeError(f"{name}: expected shape {want}, got {list(shape)}")


def check_inputs(params: RNNParams, xs, ys=None, h0=None) -> tuple[int, int, int, int, int]:
  """Checks the public-boundary shapes; returns (B, T, D, H, K)."""
  D, H, K = param_sizes(params)
  check_shape("xs", xs, (None, None, D))
  B, T, _ = jnp.shape(xs)
  if T < 1:
    raise ShapeError(f"xs: expected at least one time step, got shape {list(jnp.shape(xs))}")
  if ys is not None:
    check_shape("ys", ys, (B, K))
  if h0 is not None:
    check_shape("h0", h0, (B, H))
  return B, T, D, H, K


def _cell(UT, VT, b, h, x):
  """The cell with its weights as the products read them, ``U^T [H,H]``, ``V^T [D,H]``."""
  A = h @ UT + x @ VT + b
  h = jax.nn.relu(A)
  return h, (h, A)


def cell(params: RNNParams, h, x):
  """One step, carry first: ``(h_{t-1} [B,H], x_t [B,D]) -> (h_t, (h_t, A_t))``."""
  return _cell(params.U.T, params.V.T, params.b, h, x)


def _step_fn(params: RNNParams, batch: int, unroll: int | bool = 1):
  """``cell`` as a scan body, its transposes formed once outside the loop where that is faster.

  For a rolled scan (``unroll=1``) and B > 1, ``U^T`` is laid out once and every step is a plain
  GEMM, not XLA:CPU's product with a transposed operand (measured at T=24, H=200: inference
  1.15-1.2x faster at B=32, training step unchanged). Elsewhere the transpose stays in the
  product: for B = 1 ``h @ U^T`` is ``U h``, read row by row from U (a hoisted ``U^T`` made the
  training step 15-25% slower in CPU time), and an unrolled scan with a hoisted ``U^T`` trained
  2x slower at B=32 (XLA no longer folds the transpose into the 24 products).
  """
  rolled = not isinstance(unroll, bool) and unroll == 1
  if batch == 1 or not rolled:
    return lambda h, x: cell(params, h, x)
  UT, VT = params.U.T, params.V.T
  return lambda h, x: _cell(UT, VT, params.b, h, x)


def _scan(params: RNNParams, xs, h0, unroll, remat):
  """The one ``lax.scan`` of the recurrence, over time-major inputs ``[T, B, D]``.

  ``remat=True`` rematerialises in chunks of ``c = floor(sqrt(T))`` steps (Chen et al. 2016,
  "Training Deep Nets with Sublinear Memory Cost"): an outer scan keeps only the hidden state at
  each chunk boundary and recomputes each chunk (``jax.checkpoint``) in the backward pass:
  activations kept fall from T to about 2 sqrt(T) steps' worth, for one extra forward pass (at
  T=1536, B=32, H=200: XLA's temporary memory for the gradient 49.6 MB -> 2.8 MB,
  docs/benchmarking.md); the gradient equals the plain scan's to ~1e-15 in float64 (tests/train).
  """
  step = _step_fn(params, xs.shape[1], unroll)
  if not remat:
    return jax.lax.scan(step, h0, xs, unroll=unroll)
  T = xs.shape[0]
  c = max(1, math.isqrt(T))
  n = T // c

  @jax.checkpoint
  def chunk(h, xs_chunk):
    return jax.lax.scan(step, h, xs_chunk, unroll=unroll)

  h, ys = jax.lax.scan(chunk, h0, xs[:n * c].reshape((n, c) + xs.shape[1:]))
  ys = jax.tree.map(lambda y: y.reshape((n * c,) + y.shape[2:]), ys)
  if n * c < T:                                  # the T mod c steps left over
    h, tail = chunk(h, xs[n * c:])
    ys = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), ys, tail)
  return h, ys


def _initial_state(params: RNNParams, xs, h0):
  if h0 is None:
    return jnp.zeros((xs.shape[0], params.U.shape[0]), jnp.result_type(params.U, xs))
  return h0


def _run(params: RNNParams, xs, h0=None, *, unroll: int | bool = 1, remat: bool = False):
  """Unchecked, time-major core of the public functions: ``(h_T [B,H], hs [T,B,H], As [T,B,H])``."""
  h0 = _initial_state(params, xs, h0)
  hT, (hs, As) = _scan(params, jnp.swapaxes(xs, 0, 1), h0, unroll, remat)
  return hT, hs, As


def _run_for_bptt(params: RNNParams, xs, h0):
  """The hand BPTT's forward pass: ``(h_T [B,H], h_prev [T,B,H], active [T,B,H])``, step t
  keeping ``h_{t-1}`` (for grad_U) and ``A_t > 0`` (relu'(A_t)): no shifted copy afterwards."""
  step = _step_fn(params, xs.shape[0])

  def keep(h, x):
    h_next, (_, A) = step(h, x)
    return h_next, (h, A > 0)

  hT, (h_prev, active) = jax.lax.scan(keep, _initial_state(params, xs, h0),
                                      jnp.swapaxes(xs, 0, 1))
  return hT, h_prev, active


def head(params: RNNParams, h):
  """Output logits ``W h + c`` for ``h [B,H]``."""
  return h @ params.W.T + params.c


def anchor_inside(x):
  """Where the anchor's clip passes ``x`` through, ``eps < x < 1 - eps``: its derivative is 1
  there and 0 elsewhere, the bounds included (as relu'(0) = 0 in rnn_jax.bptt)."""
  return (x > ANCHOR_EPS) & (x < 1 - ANCHOR_EPS)


def clipped_logit(x):
  """``logit(clip(x, eps, 1 - eps))``, elementwise, ``eps = ANCHOR_EPS``: a fraction in [0, 1]
  on the logit scale, an empty room (0) at logit(1e-3) = -6.9 rather than -inf. ``where``, not
  ``jnp.clip`` (1/2 at a bound), makes autodiff's derivative exactly ``anchor_inside(x) /
  (x (1 - x))``, which the hand BPTT reproduces."""
  p = jnp.where(x <= ANCHOR_EPS, ANCHOR_EPS, jnp.where(x >= 1 - ANCHOR_EPS, 1 - ANCHOR_EPS, x))
  return jnp.log(p) - jnp.log1p(-p)


def anchor_logit(xs):
  """The anchor's skip ``logit(clip(x_T[0], eps, 1 - eps))``, ``[B, 1]``, ``eps = ANCHOR_EPS``
  (``clipped_logit``): feature 0 of the last step is the latest reading as a fraction of
  capacity (rnn_jax.data)."""
  return clipped_logit(xs[:, -1, 0])[:, None]


def logits_of(params: RNNParams, hT, xs, anchor: bool = False):
  """``head``, plus ``anchor_logit`` if asked."""
  logits = head(params, hT)
  return logits + anchor_logit(xs) if anchor else logits


def forward(params: RNNParams, xs, h0=None, *, unroll: int | bool = 1,
            remat: bool = False, anchor: bool = False):
  """Logits ``[B,K]`` after reading ``xs [B,T,D]`` from ``h0 [B,H]`` (zeros by default).
  ``unroll``: ``lax.scan``'s (True: full). ``remat``: for long windows (``_scan``)."""
  check_inputs(params, xs, h0=h0)
  hT, _, _ = _run(params, xs, h0, unroll=unroll, remat=remat)
  return logits_of(params, hT, xs, anchor)


def hidden_states(params: RNNParams, xs, h0=None, *, unroll: int | bool = 1):
  """The hidden state after every step, ``[B,T,H]``."""
  check_inputs(params, xs, h0=h0)
  _, hs, _ = _run(params, xs, h0, unroll=unroll)
  return jnp.swapaxes(hs, 0, 1)


def preactivations(params: RNNParams, xs, h0=None):
  """``A_t = U h_{t-1} + V x_t + b`` for every step, ``[B,T,H]`` (ReLU's kink sits at A = 0)."""
  check_inputs(params, xs, h0=h0)
  _, _, As = _run(params, xs, h0)
  return jnp.swapaxes(As, 0, 1)


def predict(params: RNNParams, xs, h0=None, *, anchor: bool = False):
  """``z = sigmoid(logits)``, ``[B,K]``: occupancy fractions or class probabilities."""
  return jax.nn.sigmoid(forward(params, xs, h0, anchor=anchor))


def bce_from_logits(logits, ys):
  """Binary cross-entropy summed over K, averaged over B: ``-[y log z + (1-y) log(1-z)]`` with
  ``z = sigmoid(l)`` is ``softplus(l) - y l`` (optax), so logits of +-1000 stay finite."""
  return jnp.mean(jnp.sum(optax.sigmoid_binary_cross_entropy(logits, ys), axis=-1))


def check_taus(taus, K: int | None = None) -> tuple[float, ...] | None:
  """``taus`` as a tuple of floats (hashable: a static argument under ``jit``), or None (the
  cross-entropy); raises ValueError unless it holds ``K`` levels (any number if K is None), each
  strictly inside (0, 1)."""
  if taus is None:
    return None
  try:
    levels = tuple(float(t) for t in taus)
  except (TypeError, ValueError):
    raise ValueError(f"taus: expected a sequence of quantile levels in (0, 1), got {taus!r}"
                     ) from None
  if not levels:
    raise ValueError("taus: expected at least one quantile level, got none")
  bad = [t for t in levels if not 0 < t < 1]
  if bad:
    raise ValueError(f"taus: every quantile level must lie strictly between 0 and 1, "
                     f"got {bad[0]!r}")
  if K is not None and len(levels) != K:
    raise ValueError(f"taus: expected one quantile level per output ({K}), got {len(levels)}")
  return levels


def pinball_from_logits(logits, ys, taus):
  """The pinball (quantile) loss on the logit scale, summed over K, averaged over B:
  ``rho_tau(y~ - l)`` with ``y~ = clipped_logit(y)`` and ``rho_tau(u) = max(tau u, (tau - 1) u)``
  (Koenker and Bassett 1978, "Regression Quantiles"), output k at level ``taus[k]``.

  Its minimiser in ``l`` is the tau-quantile of ``y~``; the logit is increasing, so
  ``sigmoid(l)`` is then the tau-quantile of the clipped fraction. Written with ``where``
  (``u < 0``: ``(tau - 1) u``, else ``tau u``), so at a tie ``u = 0`` autodiff takes
  dL/dl = -tau / B, the hand BPTT's ``(1{y~ < l} - tau) / B`` (rnn_jax.core.bptt)."""
  tau = jnp.asarray(check_taus(taus, jnp.shape(logits)[-1]), jnp.result_type(logits))
  u = clipped_logit(ys) - logits
  return jnp.mean(jnp.sum(jnp.where(u < 0, (tau - 1) * u, tau * u), axis=-1))


def loss_from_logits(logits, ys, taus=None):
  """``bce_from_logits`` when ``taus`` is None, else ``pinball_from_logits``."""
  if taus is None:
    return bce_from_logits(logits, ys)
  return pinball_from_logits(logits, ys, taus)


def loss(params: RNNParams, xs, ys, h0=None, *, unroll: int | bool = 1, remat: bool = False,
         anchor: bool = False, taus=None):
  """The notes' loss, ``bce_from_logits(forward(...), ys)``; dL/dlogits = ``(z - y) / B``.
  ``taus``: K quantile levels, one per output, for the pinball loss instead
  (``pinball_from_logits``; dL/dlogits = ``(1{y~ < l} - tau) / B``)."""
  _, _, _, _, K = check_inputs(params, xs, ys, h0)
  taus = check_taus(taus, K)
  return loss_from_logits(forward(params, xs, h0, unroll=unroll, remat=remat, anchor=anchor), ys,
                          taus)

"""Gradient checks of the hand-written gradients: against autodiff and against finite differences.

Two witnesses for each parameter of the notes' RNN (rnn_jax.bptt) and letters MLP (rnn_jax.mlp):

* **autodiff**: ``jax.grad`` of the same loss, in the same dtype. Both compute the same sums in a
  different order, so they agree to rounding: ``TOLERANCES[dtype].autodiff``.
* **finite differences**: central differences ``(L(p + eps v) - L(p - eps v)) / (2 eps)`` of
  the loss in float64 along unit directions ``v`` of each parameter (the direction of its
  gradient, random dense directions, the coordinate of its largest entry and a random
  coordinate), compared with ``<grad, v>``. They are always taken in float64: in float32 a
  central difference is itself only good to about ``u^(2/3) ~ 1e-5`` of |L| (u = 2^-24), too
  coarse to witness anything; so the float32 rows measure the float32 gradient against a
  float64 witness, i.e. its own rounding error.

Errors are reported as ``abs = max |hand - ref|`` and ``rel = abs / max |ref|`` per parameter
(``rel = abs`` when the reference is all zero, as for ``grad_U`` when T = 1 and h_0 = 0).

ReLU has a kink at 0, and a central difference whose segment ``p +- eps v`` moves a
pre-activation across it measures the average of two slopes, not the derivative (the classic
random failure of gradient checks on ReLU nets: CS231n notes, "Neural Networks Part 3",
"Gradient checks", kinks in the objective). So finite differences are only taken at *guarded*
points (``kink_guard``): every pre-activation
``A_t = U h_{t-1} + V x_t + b`` satisfies ``|A| > safety * eps * |dA|`` where ``dA`` is its
rate of change along the probed directions (forward-mode, ``jax.jvp``), or, for moves of unknown
direction with entries up to ``radius``, the row-wise l1 norm of its Jacobian times
``radius``; and (for explicit directions) the ReLU pattern is the same at both ends of every
segment. ``guarded_step`` shrinks the step (down to ``FD_MIN_EPS``) when a pre-activation is
too close for it, and ``pick_guarded`` redraws the problem from fresh seeds until the guard
holds.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from functools import partial
from typing import Any, Callable, Iterable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rnn_jax.core import bptt, mlp, model
from rnn_jax.core.model import RNNParams

DTYPES = ("float32", "float64")


@dataclasses.dataclass(frozen=True)
class Tolerance:
  """Largest relative error allowed for a hand gradient in one dtype."""
  autodiff: float  # against jax.grad in the same dtype
  fd: float        # against float64 central differences


# float64: autodiff and the hand BPTT do the same arithmetic in a different order; their gap is
#   a few ulp (2^-52 ~ 2.2e-16) grown over T steps and sums of T*B terms: measured <= 4e-15
#   over the test grid (T <= 100, H <= 200, B <= 64). 1e-10 leaves a wide margin for other
#   sizes and machines and still fails on any real mistake (a wrong transpose or a missing term
#   is an O(1) error). Central differences with a step eps of 1e-7..1e-6 along unit directions
#   carry eps^2 |L'''| / 6 (truncation, <= ~1e-12) plus ~u |L| / eps (rounding of the two
#   losses, ~1e-9..1e-8 for |L| ~ 2) against directional derivatives of ~0.01..1: measured
#   <= 1e-8 relative, so 1e-6.
# float32: a gradient entry sums ~T*B products, each carried through up to T steps of H-term
#   dot products; with unit roundoff u = 2^-24 ~ 6e-8 a random-walk estimate of the relative
#   error is u * sqrt(T * B * H) = 6e-8 * sqrt(100 * 64 * 200) ~ 7e-5 at the largest test size,
#   hence 1e-4 (measured: <= 6e-7, for the hand BPTT and for autodiff in float32 alike).
TOLERANCES = {
    "float64": Tolerance(autodiff=1e-10, fd=1e-6),
    "float32": Tolerance(autodiff=1e-4, fd=1e-4),
}
FD_EPS = 1e-6          # step of the float64 central differences, per unit direction
FD_MIN_EPS = 1e-7      # the smallest step check_rnn falls back to near a kink (rounding ~1e-8)
GUARD_SAFETY = 4.0     # |A| must exceed this many times its largest move eps * |dA|


def errors(x, ref) -> tuple[float, float]:
  """``(max |x - ref|, max |x - ref| / max |ref|)`` in float64; the relative error is the
  absolute one when ``ref`` is all zero (nothing to be relative to)."""
  x = np.asarray(x, np.float64)
  ref = np.asarray(ref, np.float64)
  abs_err = float(np.max(np.abs(x - ref), initial=0.0))
  scale = float(np.max(np.abs(ref), initial=0.0))
  return abs_err, (abs_err / scale if scale > 0 else abs_err)


def tree_errors(x, ref) -> dict[str, tuple[float, float]]:
  """``errors`` for each field of two NamedTuple pytrees of the same type."""
  return {name: errors(getattr(x, name), getattr(ref, name)) for name in ref._fields}


def _x64_enabled() -> bool:
  return bool(jax.config.read("jax_enable_x64"))


def _require_x64(what: str) -> None:
  if not _x64_enabled():
    raise ValueError(f"{what} needs float64: enable it first "
                     "(jax.config.update('jax_enable_x64', True), or the tests' x64 fixture)")


def to_dtype(tree, dtype):
  """Casts every leaf of a pytree (float32 values are exact in float64), on the host."""
  return jax.tree.map(lambda a: jnp.asarray(np.asarray(a).astype(dtype)), tree)


# --------------------------------------------------------------------------- problems


def rnn_problem(seed, *, T: int = 24, H: int = 200, D: int = 1, K: int = 3, B: int = 32,
                scheme: str = "normal", targets: str = "soft", dtype=np.float64):
  """A random problem for the RNN: ``(params, xs [B,T,D] ~ N(0,1), ys [B,K])``.

  The parameters follow rnn_jax.model.init_params' distribution (weights N(0, 1/fan_in),
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
  weights N(0, 1/fan_in) as rnn_jax.mlp.init_params draws them, with NumPy from ``seed``."""
  rng = np.random.default_rng(seed)
  params = mlp.MLPParams(V=rng.standard_normal((H, d + 1)) / np.sqrt(d + 1),
                         W=rng.standard_normal((K, H + 1)) / np.sqrt(H + 1))
  xs = rng.standard_normal((B, d))
  ys = np.eye(K)[rng.integers(0, K, B)]
  return to_dtype((params, xs, ys), dtype)


# --------------------------------------------------------------------------- the kink guard


class Guard(NamedTuple):
  """Whether finite differences at a point are safe from ReLU's kink."""
  ok: bool
  min_abs_A: float         # smallest |A_t| over t, b and units
  worst_ratio: float       # min over pre-activations of |A| / (eps |dA|); ok needs > safety
  patterns_agree: bool     # the ReLU pattern is the same at p and p +- eps v (True if unchecked)


def preactivations(params: RNNParams, xs, h0=None):
  """``A_t = U h_{t-1} + V x_t + b`` for every step, ``[B, T, H]``."""
  return model.preactivations(params, xs, h0)


def _ratio(A, move):
  """``|A| / move`` elementwise, inf where nothing moves; an A of exactly 0 (a unit sitting on
  the kink) is never accepted, even when the probed moves leave it in place."""
  A = jnp.abs(A)
  safe = jnp.where(move > 0, move, 1.0)
  return jnp.where(A == 0, 0.0, jnp.where(move > 0, A / safe, jnp.inf))


@jax.jit
def _direction_guard(params, xs, h0, directions, eps):
  """``(min |A|, min |A| / (eps max_v |dA/ds|), patterns agree)`` for stacked directions."""
  A = preactivations(params, xs, h0)
  tangent = lambda v: jax.jvp(lambda p: preactivations(p, xs, h0), (params,), (v,))[1]
  shift = jnp.max(jnp.abs(jax.vmap(tangent)(directions)), axis=0)

  def same(v, sign):
    moved = jax.tree.map(lambda p, d: p + sign * eps * d, params, v)
    return jnp.all((preactivations(moved, xs, h0) > 0) == (A > 0))

  agree = jnp.all(jax.vmap(lambda v: same(v, 1.0) & same(v, -1.0))(directions))
  return jnp.min(jnp.abs(A)), jnp.min(_ratio(A, eps * shift)), agree


@jax.jit
def _box_guard(params, xs, h0, radius, eps):
  """As ``_direction_guard`` for every move whose entries are at most ``radius``: then
  ``|dA/ds| <= radius * sum_i |dA/dp_i|``. Builds the full Jacobian: small nets only."""
  A = preactivations(params, xs, h0)
  jac = jax.jacfwd(lambda p: preactivations(p, xs, h0))(params)
  shift = sum(jnp.sum(jnp.abs(j).reshape(j.shape[:3] + (-1,)), axis=-1)
              for j in jax.tree.leaves(jac))
  return jnp.min(jnp.abs(A)), jnp.min(_ratio(A, eps * radius * shift)), jnp.array(True)


def kink_guard(params: RNNParams, xs, eps: float, *, directions=None, radius: float | None = None,
               h0=None, safety: float = GUARD_SAFETY) -> Guard:
  """Checks that central differences of step ``eps`` cannot cross ReLU's kink.

  Give either ``directions`` (RNNParams with a leading axis [n]: the moves ``+-eps v`` the
  check will make) or ``radius`` (any move whose entries are all at most ``radius`` in size,
  as ``jax.test_util.check_grads``' standard-normal tangents are, with radius ~ 6; builds the
  full Jacobian, so small nets only). The point passes when every pre-activation satisfies
  ``|A| > safety * eps * |dA/ds|`` (a first-order bound on how far it moves over the segment;
  ``safety`` covers the higher orders) and, for explicit directions, the ReLU pattern is
  identical at both ends of every segment. Computed in the dtype of ``params``: pass float64
  for a float64 check.
  """
  if (directions is None) == (radius is None):
    raise ValueError("kink_guard: give exactly one of directions= or radius=")
  B, _, _, H, _ = model.check_inputs(params, xs, h0=h0)
  if h0 is None:
    h0 = jnp.zeros((B, H), params.U.dtype)
  if directions is not None:
    min_A, worst, agree = _direction_guard(params, xs, h0, directions, eps)
  else:
    min_A, worst, agree = _box_guard(params, xs, h0, radius, eps)
  worst, agree = float(worst), bool(agree)
  return Guard(ok=worst > safety and agree, min_abs_A=float(min_A), worst_ratio=worst,
               patterns_agree=agree)


def guarded_step(params: RNNParams, xs, directions, eps: float = FD_EPS,
                 min_eps: float = FD_MIN_EPS, h0=None) -> tuple[Guard, float]:
  """``kink_guard`` with explicit directions at step ``eps``; when a pre-activation is too close
  to its kink for that step, once more at the step that leaves every ratio at ``2 * safety``
  (``|A| / (eps |dA|)`` scales as ``1 / eps``), but not below ``min_eps``.
  Returns ``(guard, step)``."""
  guard = kink_guard(params, xs, eps, directions=directions, h0=h0)
  if guard.ok or guard.worst_ratio <= 0:
    return guard, eps
  smaller = max(min_eps, eps * guard.worst_ratio / (2 * GUARD_SAFETY))
  if smaller >= eps:
    return guard, eps
  return kink_guard(params, xs, smaller, directions=directions, h0=h0), smaller


class NoGuardedPoint(RuntimeError):
  """No draw passed the kink guard (the problem has too many pre-activations for eps)."""


def pick_guarded(draw: Callable[[Any], Any], accept: Callable[[Any], Guard],
                 seeds: Iterable) -> tuple[Any, Guard, int]:
  """Draws ``problem = draw(seed)`` for each seed in turn until ``accept(problem).ok``.

  Returns ``(problem, guard, index of the accepted seed)``; raises NoGuardedPoint naming the best
  guard seen when no seed passes (NoGuardedPoint; make the problem or eps smaller).
  """
  best, tried = None, 0
  for i, seed in enumerate(seeds):
    tried += 1
    problem = draw(seed)
    guard = accept(problem)
    if guard.ok:
      return problem, guard, i
    if best is None or guard.worst_ratio > best.worst_ratio:
      best = guard
  if best is None:
    raise NoGuardedPoint("pick_guarded: no seeds given")
  raise NoGuardedPoint(f"pick_guarded: no point passed the kink guard in {tried} draws "
                     f"(best: min |A| = {best.min_abs_A:.3g}, worst |A|/(eps|dA|) = "
                     f"{best.worst_ratio:.3g}, patterns agree: {best.patterns_agree})")


# --------------------------------------------------------------------------- finite differences


def probe_directions(grads, seed: int = 0, *, n_random: int = 2):
  """Unit directions for each field of a NamedTuple of gradients, all stacked on axis 0.

  For each field, in order: its gradient's direction (skipped when the gradient is zero),
  ``n_random`` random dense directions, the coordinate of its largest gradient entry, and a
  random coordinate; every other field is zero. float64, drawn from ``numpy`` with ``seed``.
  Returns ``(directions, fields)`` where ``fields[n]`` names the field direction n moves.
  """
  rng = np.random.default_rng(seed)
  host = {name: np.asarray(getattr(grads, name), np.float64) for name in grads._fields}
  out, fields = [], []
  for name, g in host.items():
    vs = [g / np.linalg.norm(g)] if np.any(g != 0) else []
    for _ in range(n_random):
      v = rng.standard_normal(g.shape)
      vs.append(v / np.linalg.norm(v))
    for flat in (int(np.argmax(np.abs(g))), int(rng.integers(g.size))):
      e = np.zeros(g.size)
      e[flat] = 1.0
      vs.append(e.reshape(g.shape))
    for v in vs:
      out.append({other: (v if other == name else np.zeros_like(host[other]))
                  for other in host})
      fields.append(name)
  stacked = {name: jnp.asarray(np.stack([d[name] for d in out])) for name in host}
  return type(grads)(**stacked), fields


@partial(jax.jit, static_argnums=0)
def _central_differences(loss, params, directions, eps, *args):
  at = lambda sign: jax.vmap(lambda v: loss(
      jax.tree.map(lambda p, d: p + sign * eps * d, params, v), *args))(directions)
  return at(1.0), at(-1.0)


def central_differences(loss: Callable, params, directions, eps: float = FD_EPS, *args):
  """``(loss(p + eps v, *args) - loss(p - eps v, *args)) / (2 eps)`` for each stacked
  direction ``v``, in float64 on the host. ``loss`` should be a module-level function (it is a
  static argument of the jit, so the same one is compiled once)."""
  plus, minus = _central_differences(loss, params, directions, eps, *args)
  return (np.asarray(plus, np.float64) - np.asarray(minus, np.float64)) / (2 * eps)


def directional(grads, directions):
  """``<grads, v>`` for each stacked direction, in float64 on the host."""
  total = 0.0
  for g, v in zip(jax.tree.leaves(grads), jax.tree.leaves(directions)):
    g, v = np.asarray(g, np.float64), np.asarray(v, np.float64)
    total = total + (v.reshape(v.shape[0], -1) @ g.reshape(-1))
  return total


# --------------------------------------------------------------------------- reports


@dataclasses.dataclass(frozen=True)
class ParamError:
  """One parameter's largest errors against both witnesses."""
  network: str
  dtype: str
  param: str
  shape: tuple
  grad_max: float       # max |autodiff gradient| (the scale of the relative error)
  abs_autodiff: float
  rel_autodiff: float
  abs_fd: float
  rel_fd: float
  tol_autodiff: float
  tol_fd: float

  @property
  def ok(self) -> bool:
    finite = all(math.isfinite(e) for e in (self.abs_autodiff, self.rel_autodiff,
                                             self.abs_fd, self.rel_fd))
    return finite and self.rel_autodiff <= self.tol_autodiff and self.rel_fd <= self.tol_fd


@dataclasses.dataclass(frozen=True)
class CheckReport:
  """All parameters of one network in one dtype, and where the check was taken."""
  network: str
  dtype: str
  sizes: dict
  rows: list
  guard: Guard | None = None
  tries: int = 0
  eps: float = FD_EPS   # the step of the central differences

  @property
  def ok(self) -> bool:
    return all(row.ok for row in self.rows)


def _rows(network, dtype, hand, auto, fd, hand_dd, fields):
  tol = TOLERANCES[dtype]
  rows = []
  fields = np.asarray(fields)
  for name in hand._fields:
    a_abs, a_rel = errors(getattr(hand, name), getattr(auto, name))
    mask = fields == name
    f_abs, f_rel = errors(hand_dd[mask], fd[mask])
    rows.append(ParamError(network, dtype, name, tuple(getattr(hand, name).shape),
                           float(np.max(np.abs(np.asarray(getattr(auto, name), np.float64)))),
                           a_abs, a_rel, f_abs, f_rel, tol.autodiff, tol.fd))
  return rows


_rnn_hand = jax.jit(bptt.loss_and_grads)
_rnn_autodiff = jax.jit(jax.grad(model.loss))
_mlp_hand = jax.jit(mlp.loss_and_grads)
_mlp_autodiff = jax.jit(jax.grad(mlp.loss))


@jax.jit
def same_relu_pattern(params, xs, params64, xs64):
  """Whether the ReLU pattern in the point's own dtype equals the float64 one."""
  return jnp.all((preactivations(params, xs) > 0) == (preactivations(params64, xs64) > 0))


def _ieee_matmuls(fn):
  """Runs ``fn`` with float32 matmuls in full float32 (``precision="highest"``): on GPUs JAX's
  default float32 matmul is TF32 (10-bit mantissa, u ~ 5e-4), which is not the float32 the
  tolerances are written for. No effect on CPU or on float64."""
  @functools.wraps(fn)
  def wrapped(*args, **kwargs):
    with jax.default_matmul_precision("highest"):
      return fn(*args, **kwargs)
  return wrapped


@_ieee_matmuls
def check_rnn(dtype: str = "float64", *, T: int = 24, H: int = 200, D: int = 1, K: int = 3,
              B: int = 32, seed: int = 0, scheme: str = "normal", targets: str = "soft",
              eps: float = FD_EPS, min_eps: float = FD_MIN_EPS, n_random: int = 2,
              max_tries: int = 64) -> CheckReport:
  """The hand BPTT (rnn_jax.bptt.loss_and_grads) against jax.grad and finite differences.

  The point is drawn in ``dtype`` and accepted when ``kink_guard`` holds in float64 for the
  probe directions and, for float32, its ReLU pattern equals float64's (so both dtypes
  differentiate the same piece of the piecewise-smooth loss). The step is ``eps``, or, when a
  pre-activation sits too close to its kink for it, the step that keeps every pre-activation
  ``2 * safety`` moves away, down to ``min_eps`` (large T * B * H leave some |A| ~ 1e-7).
  Needs float64 enabled.
  """
  _require_x64("check_rnn")
  if dtype not in DTYPES:
    raise ValueError(f"dtype: expected one of {DTYPES}, got {dtype!r}")
  jdtype = jnp.dtype(dtype)
  probes = {}

  def draw(k):
    return rnn_problem(k, T=T, H=H, D=D, K=K, B=B, scheme=scheme, targets=targets, dtype=jdtype)

  def accept(problem):
    p64, xs64, ys64 = to_dtype(problem, jnp.float64)
    directions, fields = probe_directions(_rnn_autodiff(p64, xs64, ys64), seed,
                                          n_random=n_random)
    guard, step = guarded_step(p64, xs64, directions, eps, min_eps)
    probes.update(directions=directions, fields=fields, eps=step)
    if jdtype != jnp.float64:
      same = bool(same_relu_pattern(problem[0], problem[1], p64, xs64))
      guard = guard._replace(ok=guard.ok and same, patterns_agree=guard.patterns_agree and same)
    return guard

  seeds = ((seed, i) for i in range(max_tries))
  (params, xs, ys), guard, tries = pick_guarded(draw, accept, seeds)
  _, hand = _rnn_hand(params, xs, ys)
  auto = _rnn_autodiff(params, xs, ys)
  p64, xs64, ys64 = to_dtype((params, xs, ys), jnp.float64)
  directions, fields = probes["directions"], probes["fields"]   # those of the accepted draw
  fd = central_differences(model.loss, p64, directions, probes["eps"], xs64, ys64)
  rows = _rows("rnn", dtype, hand, auto, fd, directional(hand, directions), fields)
  return CheckReport("rnn", dtype, dict(T=T, H=H, D=D, K=K, B=B, scheme=scheme, seed=seed),
                     rows, guard, tries, probes["eps"])


@_ieee_matmuls
def check_mlp(dtype: str = "float64", *, d: int = 16, H: int = 200, K: int = 26, B: int = 32,
              seed: int = 0, eps: float = FD_EPS, n_random: int = 2) -> CheckReport:
  """The MLP's matrix-form gradients (rnn_jax.mlp.loss_and_grads) against jax.grad and
  finite differences. tanh and sigmoid are smooth, so no kink guard is needed."""
  _require_x64("check_mlp")
  if dtype not in DTYPES:
    raise ValueError(f"dtype: expected one of {DTYPES}, got {dtype!r}")
  params, xs, ys = mlp_problem(seed, d=d, H=H, K=K, B=B, dtype=jnp.dtype(dtype))
  _, hand = _mlp_hand(params, xs, ys)
  auto = _mlp_autodiff(params, xs, ys)
  p64, xs64, ys64 = to_dtype((params, xs, ys), jnp.float64)
  directions, fields = probe_directions(_mlp_autodiff(p64, xs64, ys64), seed, n_random=n_random)
  fd = central_differences(mlp.loss, p64, directions, eps, xs64, ys64)
  rows = _rows("mlp", dtype, hand, auto, fd, directional(hand, directions), fields)
  return CheckReport("mlp", dtype, dict(d=d, H=H, K=K, B=B, seed=seed), rows, eps=eps)


def format_table(reports) -> str:
  """A fixed-width table, one line per (network, dtype, parameter)."""
  head = (f"{'net':<4} {'dtype':<8} {'param':<6} {'shape':<11} {'max|grad|':>10} "
          f"{'abs(AD)':>10} {'rel(AD)':>10} {'tol':>7} {'abs(FD)':>10} {'rel(FD)':>10} "
          f"{'tol':>7}  ok")
  lines = [head, "-" * len(head)]
  for report in reports:
    for r in report.rows:
      shape = "x".join(str(s) for s in r.shape)
      lines.append(
          f"{r.network:<4} {r.dtype:<8} {r.param:<6} {shape:<11} {r.grad_max:>10.3e} "
          f"{r.abs_autodiff:>10.3e} {r.rel_autodiff:>10.3e} {r.tol_autodiff:>7.0e} "
          f"{r.abs_fd:>10.3e} {r.rel_fd:>10.3e} {r.tol_fd:>7.0e}  {'yes' if r.ok else 'NO'}")
  return "\n".join(lines)


# --------------------------------------------------------------------------- the notes' identity


def sin_affine(A, x):
  """The notes' side example ``y = sin(A x)``: ``A [m,n]``, ``x [n]`` -> ``y [m]``."""
  return jnp.sin(A @ x)


def sin_affine_jacobian(A, x):
  """``dy/dx = diag(cos(A x)) A``, ``[m, n]`` (the notes write ``A^T cos(Ax)``, see
  docs/derivation.md: that is the gradient of ``sum(y)``, i.e. the VJP with v = 1)."""
  return jnp.cos(A @ x)[:, None] * A


def sin_affine_vjp(A, x, v):
  """``v^T (dy/dx) = A^T (cos(A x) * v)``, ``[n]`` for a cotangent ``v [m]``."""
  return A.T @ (jnp.cos(A @ x) * v)

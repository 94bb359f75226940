"""Gradient checks of the hand-written gradients: against autodiff and against finite differences.

Two witnesses for each parameter of the notes' RNN (rnn_jax.core.bptt) and letters MLP
(rnn_jax.core.mlp):

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
(``rel = abs`` when the reference is all zero, as for ``grad_U`` when T = 1 and h_0 = 0), and,
for the BPTT's per-step quantities, the same per time step (``step_errors``: the early steps of
a long window are ~1e-15 of the late ones, invisible per parameter). ``hand_steps`` reads the
hand BPTT's own per-step ``dL/dA_t`` off its outputs (tests/core/test_bptt_per_step.py).

Here: the error measures, the tolerances, ``check_rnn`` / ``check_mlp`` and their table. The
finite differences and ReLU's kink guard live in rnn_jax.verify.fd, the random problems in
rnn_jax.verify.problems; the names the tests and experiments/gradcheck.py reach through this
module (``gradcheck.kink_guard`` and so on) are imported here from there.
"""
from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from rnn_jax.core import bptt, mlp, model
from rnn_jax.verify.fd import (FD_EPS, FD_MIN_EPS, Guard, central_differences, directional,
                               guarded_step, pick_guarded, probe_directions, same_relu_pattern)
from rnn_jax.verify.problems import mlp_problem, rnn_problem, to_dtype
# Not used here: reached as gradcheck.<name> by tests/core/test_bptt.py, experiments/gradcheck.py.
from rnn_jax.verify.fd import (GUARD_SAFETY, NoGuardedPoint, check_grads_tangents,  # noqa: F401
                               kink_guard, preactivations)

DTYPES = ("float32", "float64")


@dataclasses.dataclass(frozen=True)
class Tolerance:
  """Largest relative error allowed for a hand gradient in one dtype (``TOLERANCES``).

  One row per dtype, the same on every backend, because float32 is always checked in IEEE
  float32: under ``jax.default_matmul_precision("highest")`` (``full_float32_matmuls``), which
  check_rnn, check_mlp and the float32 tests enter. JAX's default float32 matmul on a GPU is
  TF32 and on a TPU bf16 passes (relative errors ~1e-3); these bars are not for those.
  """
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
#   That is IEEE float32 arithmetic, which is what every backend computes under
#   jax.default_matmul_precision("highest") (FLOAT32_MATMUL_PRECISION): check_rnn and check_mlp
#   and every float32 test run under it (full_float32_matmuls), on every backend, so there is one
#   float32 row, not one per backend. At JAX's default precision a GPU runs float32 matmuls in
#   TF32 (u = 2^-11 ~ 5e-4) and a TPU in bf16 passes (u = 2^-8 per pass): errors of ~1e-3 that
#   no float32 bar here is meant to pass.
# float64 rows hold per parameter and, in tests/core/test_bptt_per_step.py, per time step
#   (step_errors): each step of dL/dA_t, ||dL/dh_t|| and its contributions within 1e-10 of its
#   own size.
FLOAT32_MATMUL_PRECISION = "highest"
TOLERANCES = {
    "float64": Tolerance(autodiff=1e-10, fd=1e-6),
    "float32": Tolerance(autodiff=1e-4, fd=1e-4),
}


def errors(x, ref) -> tuple[float, float]:
  """``(max |x - ref|, max |x - ref| / max |ref|)`` in float64; the relative error is the
  absolute one when ``ref`` is all zero (nothing to be relative to)."""
  x = np.asarray(x, np.float64)
  ref = np.asarray(ref, np.float64)
  abs_err = float(np.max(np.abs(x - ref), initial=0.0))
  scale = float(np.max(np.abs(ref), initial=0.0))
  return abs_err, (abs_err / scale if scale > 0 else abs_err)


def step_errors(x, ref, axis: int = 1) -> np.ndarray:
  """The relative error of ``errors`` at every index along ``axis`` (the time axis: 1 for
  ``[B, T, ...]``, 0 for ``[T, ...]``), each step against its own ``max |ref|``; ``[T]``.

  A per-parameter relative error is set by the largest terms, i.e. the last steps: with the
  normal init at T = 100, ||dL/dh_1|| / ||dL/dh_T|| is ~1e-15, so a BPTT wrong in its early steps
  passes any per-parameter bar. Held to the same tolerance step by step, it does not.
  """
  x = np.moveaxis(np.asarray(x, np.float64), axis, 0)
  ref = np.moveaxis(np.asarray(ref, np.float64), axis, 0)
  if x.shape != ref.shape:
    raise ValueError(f"step_errors: shapes differ, {list(x.shape)} vs {list(ref.shape)}")
  return np.array([errors(a, r)[1] for a, r in zip(x, ref)])


def augment(params, xs):
  """``(params', xs')``: the same network with H more inputs, all zero, input D + k feeding unit
  k with weight 1 (``V' = [V, I]``, ``xs' = [xs, 0]``); nothing in the forward pass changes."""
  H = params.U.shape[0]
  V = jnp.concatenate([params.V, jnp.eye(H, dtype=params.V.dtype)], axis=1)
  xs = jnp.concatenate([xs, jnp.zeros(xs.shape[:2] + (H,), xs.dtype)], axis=-1)
  return params._replace(V=V), xs


def hand_steps(params, xs, ys, h0=None, *, anchor: bool = False, sums: str | None = None):
  """``(result, delta [B,T,H])``: rnn_jax.core.bptt.backward and its own ``delta_t = dL/dA_t``
  (``anchor``, ``sums`` as there).

  The hand BPTT keeps its per-step deltas inside its reverse scan; on the ``augment``-ed network
  its input gradient is ``dL/dx'_t = delta_t [V, I]``, whose last H columns are exactly
  ``delta_t`` (a product with the identity). ``result`` is the hand BPTT's output for the
  original network (the extra columns of ``grads.V`` and ``dxs`` dropped). jit-compatible.
  """
  D = xs.shape[-1]
  p_aug, xs_aug = augment(params, xs)
  r = bptt.backward(p_aug, xs_aug, ys, h0, anchor=anchor, sums=sums)
  result = r._replace(grads=r.grads._replace(V=r.grads.V[:, :D]), dxs=r.dxs[..., :D])
  return result, r.dxs[..., D:]


def tree_errors(x, ref) -> dict[str, tuple[float, float]]:
  """``errors`` for each field of two NamedTuple pytrees of the same type."""
  return {name: errors(getattr(x, name), getattr(ref, name)) for name in ref._fields}


def _x64_enabled() -> bool:
  return bool(jax.config.read("jax_enable_x64"))


def _require_x64(what: str) -> None:
  if not _x64_enabled():
    raise ValueError(f"{what} needs float64: enable it first "
                     "(jax.config.update('jax_enable_x64', True), or the tests' x64 fixture)")



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



def full_float32_matmuls():
  """``jax.default_matmul_precision("highest")``: float32 matmuls in full float32, which the
  float32 tolerances assume (see TOLERANCES). Tests that hold float32 to them run inside it."""
  return jax.default_matmul_precision(FLOAT32_MATMUL_PRECISION)


def _ieee_matmuls(fn):
  """Runs ``fn`` inside ``full_float32_matmuls``: on GPUs JAX's default float32 matmul is TF32
  (10-bit mantissa, u ~ 5e-4), on TPUs bf16 passes; neither is the float32 the tolerances are
  written for. No effect on CPU or on float64."""
  @functools.wraps(fn)
  def wrapped(*args, **kwargs):
    with full_float32_matmuls():
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

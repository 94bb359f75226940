"""Checks the hand-written gradients of both networks against autodiff and finite differences.

    python experiments/gradcheck.py [--window 24] [--hidden-size 200] [--batch-size 32]

Prints, for float32 and float64, the notes' RNN (rnn_jax.core.bptt) and letters MLP
(rnn_jax.core.mlp), each parameter's largest absolute and relative error against ``jax.grad``
and against float64 central differences at a point guarded from ReLU's kink, with the tolerance
of each (rnn_jax.testing.TOLERANCES, at the matmul precision ``PRECISION``, "highest": IEEE
float32 products on every platform; the first line printed names it). Exit status 0 when every
error is within its tolerance, 1 when any is not, 2 for a bad argument.

Two witnesses for each parameter:

* **autodiff**: ``jax.grad`` of the same loss, in the same dtype. Both compute the same sums in a
  different order, so they agree to rounding: ``TOLERANCES[dtype, PRECISION].autodiff``.
* **finite differences**: central differences ``(L(p + eps v) - L(p - eps v)) / (2 eps)`` of
  the loss in float64 along unit directions ``v`` of each parameter (``probe_directions``: the
  direction of its gradient, random dense directions, the coordinate of its largest entry and a
  random coordinate), compared with ``<grad, v>`` (``directional``). Always in float64: in
  float32 a central difference is itself only good to about ``u^(2/3) ~ 1e-5`` of |L|
  (u = 2^-24), too coarse to witness anything; so the float32 rows measure the float32 gradient
  against a float64 witness, i.e. its own rounding error.

ReLU has a kink at 0, and a central difference whose segment ``p +- eps v`` moves a
pre-activation across it measures the average of two slopes, not the derivative (the classic
random failure of gradient checks on ReLU nets: CS231n notes, "Neural Networks Part 3",
"Gradient checks", kinks in the objective). So finite differences are only taken at *guarded*
points (``kink_guard``): every pre-activation ``A_t = U h_{t-1} + V x_t + b`` satisfies
``|A| > safety * eps * |dA|`` where ``dA`` is its rate of change along the probed directions
(forward-mode, ``jax.jvp``), or, for moves of unknown direction with entries up to ``radius``,
the row-wise l1 norm of its Jacobian times ``radius``; and (for explicit directions) the ReLU
pattern is the same at both ends of every segment. ``guarded_step`` shrinks the step (down to
``FD_MIN_EPS``) when a pre-activation is too close for it, and ``pick_guarded`` redraws the
problem from fresh seeds until the guard holds. tests/core/test_bptt.py loads this file as a
module and tests these functions.
"""
from __future__ import annotations

import argparse
import functools
import math
import sys
import time
from typing import Any, Callable, Iterable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rnn_jax.common import cli
from rnn_jax.common.errors import InputError
from rnn_jax.core import bptt, mlp, model, precision
from rnn_jax.core.model import RNNParams
from rnn_jax.testing import (DTYPES, TOLERANCES, errors, mlp_problem,
                             rnn_problem, to_dtype)

PRECISION = "highest"  # float32 products in IEEE float32: TOLERANCES[dtype, "highest"]
FD_EPS = 1e-6          # step of the float64 central differences, per unit direction
FD_MIN_EPS = 1e-7      # the smallest step check_rnn falls back to near a kink (rounding ~1e-8)
GUARD_SAFETY = 4.0     # |A| must exceed this many times its largest move eps * |dA|


# --------------------------------------------------------------------------- the kink guard


class Guard(NamedTuple):
  """Whether finite differences at a point are safe from ReLU's kink."""
  ok: bool
  min_abs_A: float         # smallest |A_t| over t, b and units
  worst_ratio: float       # min over pre-activations of |A| / (eps |dA|); ok needs > safety
  patterns_agree: bool     # the ReLU pattern is the same at p and p +- eps v (True if unchecked)


preactivations = model.preactivations   # A_t = U h_{t-1} + V x_t + b, [B, T, H]


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
  check will make; for ``jax.test_util.check_grads``, its own tangent, ``check_grads_tangents``)
  or ``radius`` (any move whose entries are all at most ``radius`` in size; builds the full
  Jacobian, so small nets only). The point passes when every pre-activation satisfies
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


def check_grads_tangents(args):
  """The tangent ``jax.test_util.check_grads(f, args, order=1)`` draws for ``args``, one
  per leaf: standard normal from ``np.random.RandomState(0)``, leaves in tree order, in each
  leaf's dtype (jax's ``public_test_util.rand_like``). Its "fwd" and "rev" checks each draw
  this same tangent and take their finite difference along it, so guarding exactly it
  (``kink_guard(..., directions=)`` with a leading axis of 1) guards every central difference
  check_grads takes, whatever its size (no bound like ``radius`` needed); tests/core/
  test_bptt.py checks that check_grads does use this draw.
  """
  rng = np.random.RandomState(0)
  return jax.tree.map(lambda x: np.asarray(rng.randn(*np.shape(x)), dtype=np.asarray(x).dtype),
                      args)


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


@jax.jit
def same_relu_pattern(params, xs, params64, xs64):
  """Whether the ReLU pattern in the point's own dtype equals the float64 one."""
  return jnp.all((preactivations(params, xs) > 0) == (preactivations(params64, xs64) > 0))


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


@functools.partial(jax.jit, static_argnums=0)
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


# --------------------------------------------------------------------------- the checks


def _require_x64(what: str) -> None:
  if not jax.config.read("jax_enable_x64"):
    raise ValueError(f"{what} needs float64: enable it first "
                     "(jax.config.update('jax_enable_x64', True), or the tests' x64 fixture)")


class ParamError(NamedTuple):
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


class CheckReport(NamedTuple):
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
  tol = TOLERANCES[dtype, PRECISION]
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


def _ieee_matmuls(fn):
  """``fn`` traced at ``PRECISION``: on GPUs JAX's default float32 matmul is TF32 (10-bit
  mantissa, u ~ 5e-4), on TPUs one bf16 pass; neither is the float32 the tolerances at
  "highest" are written for. No effect on CPU or on float64."""
  return precision.with_precision(fn, PRECISION)


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


def _int_at_least(text: str, low: int, what: str) -> int:
  try:
    value = int(text)
  except ValueError:
    value = None
  if value is None or value < low:   # argparse words this as "argument --X: <message>"
    raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
  return value


def positive_int(text: str) -> int:
  return _int_at_least(text, 1, "a positive integer")


def seed_int(text: str) -> int:
  return _int_at_least(text, 0, "a non-negative integer")


def parse(argv):
  p = cli.ArgumentParser(prog="gradcheck.py", description=__doc__.split("\n\n")[0])
  size = lambda flag, default, what: p.add_argument(
      flag, type=positive_int, default=default, help=f"{what} (default {default})")
  size("--window", 24, "RNN window length T")
  size("--hidden-size", 200, "hidden units H, both nets")
  size("--input-size", 1, "RNN inputs per step D")
  size("--output-size", 3, "RNN outputs K")
  size("--batch-size", 32, "batch size B, both nets")
  p.add_argument("--seed", type=seed_int, default=0, help="random seed, >= 0 (default 0)")
  p.add_argument("--scheme", choices=("normal", "irnn"), default="normal",
                 help="RNN initialisation (default normal)")
  return p.parse_args(argv)


@cli.entry_point
def main(argv=None) -> int:
  args = parse(argv)
  jax.config.update("jax_enable_x64", True)   # float64 rows and the float64 witnesses
  start = time.perf_counter()
  reports = []
  T, H, D, K, B = (args.window, args.hidden_size, args.input_size, args.output_size,
                   args.batch_size)
  for dtype in DTYPES:
    try:
      reports.append(check_rnn(dtype, T=T, H=H, D=D, K=K, B=B, seed=args.seed,
                               scheme=args.scheme))
    except NoGuardedPoint as err:
      raise InputError(f"{err}; try a smaller --window, --batch-size or --hidden-size") from None
    reports.append(check_mlp(dtype, H=H, B=B, seed=args.seed))
  device = jax.devices()[0]
  print(f"matmul precision: {PRECISION} ({precision.JAX_NAMES[PRECISION]!r}: IEEE float32 "
        f"products) on {device.device_kind} ({device.platform}); float64 products are exact")
  print(f"RNN T={T} H={H} D={D} K={K} B={B} scheme={args.scheme}; "
        f"MLP d=16 H={H} K=26 B={B}; seed {args.seed}; "
        "finite differences: float64, central, along unit directions")
  for r in reports:
    if r.guard is not None:
      print(f"kink guard ({r.network} {r.dtype}): accepted draw {r.tries}, eps = {r.eps:.2g}, "
            f"min |A| = {r.guard.min_abs_A:.2e}, min |A|/(eps|dA|) = {r.guard.worst_ratio:.1f} "
            f"> {GUARD_SAFETY:g}")
  print(format_table(reports))
  worst = {d: max(row.rel_autodiff for r in reports if r.dtype == d for row in r.rows)
           for d in DTYPES}
  worst_fd = {d: max(row.rel_fd for r in reports if r.dtype == d for row in r.rows)
              for d in DTYPES}
  for d in DTYPES:
    print(f"largest {d} relative error: {worst[d]:.2e} vs autodiff, {worst_fd[d]:.2e} vs "
          "finite differences")
  ok = all(r.ok for r in reports)
  print(f"{'all within tolerance' if ok else 'FAILED: some error is past its tolerance'} "
        f"({time.perf_counter() - start:.1f} s)")
  return 0 if ok else 1


if __name__ == "__main__":
  sys.exit(main())

"""Finite differences of a loss, and the guard that keeps them away from ReLU's kink.

Central differences ``(L(p + eps v) - L(p - eps v)) / (2 eps)`` along stacked unit directions
``v`` (``probe_directions``: each parameter's gradient direction, random dense directions, the
coordinate of its largest entry and a random coordinate), compared with ``<grad, v>``
(``directional``). rnn_jax.verify.gradcheck takes them in float64 as the second witness.

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

from functools import partial
from typing import Any, Callable, Iterable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rnn_jax.core import model
from rnn_jax.core.model import RNNParams

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


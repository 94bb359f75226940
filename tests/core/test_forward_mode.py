"""Forward-mode autodiff as a fourth witness of the hand BPTT, in float64.

``jax.jvp`` / ``jax.jacfwd`` push tangents forward through the scan (the scan's JVP rule); they
share nothing with reverse mode's transpose rules, nor with the hand BPTT's reverse recursion.
Three checks, with the anchor off and on:

* the full gradient by ``jax.jacfwd`` (one forward pass per parameter entry and input entry, so
  tiny sizes only) against the hand gradient and dL/dxs, per parameter at 1e-10;
* the per-step ``delta_t = dL/dA_t`` by ``jax.jacfwd`` in the extra inputs of
  rnn_jax.testing.augment, against the hand BPTT's own (testing.hand_steps), each
  step at 1e-10 of its own size;
* directional derivatives ``jax.jvp`` along random tangents of every parameter and of the inputs
  at a larger size, against ``<hand gradient, tangent>``, at 1e-10 of ``sum |g * v|``
  (the size of the terms of the inner product, which rounding is relative to).
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_jax.core import bptt, model
from rnn_jax.core.model import RNNParams
from rnn_jax import testing
from rnn_jax.testing import TOLERANCES, errors, step_errors

TOL64 = TOLERANCES["float64"].autodiff   # 1e-10


def problem(T, H, D, K, B, scheme="normal", seed=0):
  """float64, a small bias (some units dead, some alive), feature 0 a reading in [0, 1]."""
  params, xs, ys = testing.rnn_problem(seed, T=T, H=H, D=D, K=K, B=B, scheme=scheme)
  rng = np.random.default_rng(seed + 1)
  params = params._replace(b=jnp.asarray(0.1 * rng.standard_normal(H)))
  return params, xs.at[:, :, 0].set(jnp.asarray(rng.uniform(size=(B, T)))), ys


@partial(jax.jit, static_argnames="anchor")
def forward_mode(params, xs, ys, anchor):
  """``(dL/dparams, dL/dxs, delta [B,T,H])`` by ``jax.jacfwd`` only."""
  loss = partial(model.loss, anchor=anchor)
  grads, dxs = jax.jacfwd(loss, argnums=(0, 1))(params, xs, ys)
  p_aug, xs_aug = testing.augment(params, xs)
  delta = jax.jacfwd(loss, argnums=1)(p_aug, xs_aug, ys)[..., xs.shape[-1]:]
  return grads, dxs, delta


_hand_steps = jax.jit(testing.hand_steps, static_argnames="anchor")


JACFWD_CASES = [((6, 4, 2, 3, 3, "normal"), False), ((6, 4, 2, 3, 3, "normal"), True),
                ((9, 5, 1, 2, 2, "irnn"), False), ((1, 3, 2, 1, 4, "normal"), True)]


@pytest.mark.parametrize("case,anchor", JACFWD_CASES, ids=lambda c: (
    "T{}-H{}-D{}-K{}-B{}-{}".format(*c) if isinstance(c, tuple) else ("anchor" if c else "plain")))
def test_jacfwd_matches_the_hand_bptt(x64, case, anchor):
  params, xs, ys = problem(*case, seed=sum(case[:5]))
  result, delta = _hand_steps(params, xs, ys, anchor=anchor)
  grads, dxs, fwd_delta = forward_mode(params, xs, ys, anchor)
  for field in RNNParams._fields:
    _, rel = errors(getattr(result.grads, field), getattr(grads, field))
    assert rel <= TOL64, f"grad_{field}: relative error {rel:.2e} against jacfwd"
  assert errors(result.dxs, dxs)[1] <= TOL64
  assert np.max(step_errors(delta, fwd_delta)) <= TOL64
  assert float(jnp.max(jnp.abs(grads.V))) > 0 and float(jnp.max(jnp.abs(fwd_delta))) > 0


def random_tangents(like, n, seed):
  """``n`` standard-normal tangents shaped like the pytree ``like``, stacked on axis 0."""
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda a: jnp.asarray(rng.standard_normal((n,) + a.shape)), like)


@partial(jax.jit, static_argnames="anchor")
def directional(params, xs, ys, tangents, anchor):
  """``jax.jvp`` of the loss along each stacked ``(params, xs)`` tangent."""
  loss = lambda p, x: model.loss(p, x, ys, anchor=anchor)
  return jax.vmap(lambda v: jax.jvp(loss, (params, xs), v)[1])(tangents)


def one_field(tangents, field, n):
  """The stacked tangents with every parameter field but ``field`` (and the inputs, unless
  ``field == "xs"``) zeroed: a directional derivative that sees one gradient only."""
  vp, vx = tangents
  keep = lambda name, a: a if name == field else jnp.zeros_like(a)
  vp = RNNParams(*(keep(name, getattr(vp, name)) for name in RNNParams._fields))
  return vp, keep("xs", vx)


@pytest.mark.parametrize("anchor", [False, True], ids=["plain", "anchor"])
@pytest.mark.parametrize("scheme", ["normal", "irnn"])
def test_jvp_along_random_tangents_matches_the_hand_bptt(x64, scheme, anchor):
  T, H, D, K, B, n = 24, 20, 3, 3, 5, 4
  params, xs, ys = problem(T, H, D, K, B, scheme, seed=3)
  result = jax.jit(bptt.backward, static_argnames="anchor")(params, xs, ys, anchor=anchor)
  tangents = random_tangents((params, xs), n, seed=4)
  hand = {name: getattr(result.grads, name) for name in RNNParams._fields}
  hand["xs"] = result.dxs
  for field, g in hand.items():
    vp, vx = one_field(tangents, field, n)
    v = vx if field == "xs" else getattr(vp, field)
    jvp = np.asarray(directional(params, xs, ys, (vp, vx), anchor))
    terms = np.asarray(g)[None] * np.asarray(v)
    expected = terms.reshape(n, -1).sum(1)
    scale = np.abs(terms).reshape(n, -1).sum(1)
    assert np.all(scale > 0), field
    rel = np.abs(jvp - expected) / scale
    assert np.max(rel) <= TOL64, f"<grad_{field}, v>: relative error {np.max(rel):.2e}"
  # and one tangent on everything at once
  jvp_all = np.asarray(directional(params, xs, ys, tangents, anchor))
  terms = [np.asarray(g)[None] * np.asarray(v) for g, v in
           zip(list(hand.values()), list(tangents[0]) + [tangents[1]])]
  expected = sum(t.reshape(n, -1).sum(1) for t in terms)
  scale = sum(np.abs(t).reshape(n, -1).sum(1) for t in terms)
  assert np.max(np.abs(jvp_all - expected) / scale) <= TOL64

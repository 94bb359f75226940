"""The hand BPTT (rnn_jax.core.bptt) runs with JAX's differentiation switched off.

tests/core/test_bptt.py scans bptt.py's source for differentiation calls; that cannot see a call
made through another module, an alias or a helper. Here every differentiation entry point of
the ``jax`` module (and of ``jax.experimental.jet``), every alias of one in the namespaces of
rnn_jax.core.bptt and rnn_jax.core.model, and JAX's own machinery underneath them (the JVP and
linearize traces and the transpose pass, which every route to a derivative goes through) are
replaced by a function that raises; bptt's public functions are then traced afresh (no cached
trace can stand in), compiled and run, with the anchor off and on, for the cross-entropy and
the pinball loss, and must give the values they give with differentiation on. Positive
controls show each patch is live.
"""
from __future__ import annotations

import jax
import jax.experimental.jet as jet_module
import jax.numpy as jnp
import numpy as np
import pytest
from jax._src.interpreters import ad

from rnn_jax.core import bptt, model
from rnn_jax import testing

ENTRY_POINTS = ("grad", "value_and_grad", "vjp", "jvp", "linearize", "jacobian", "jacfwd",
                "jacrev", "hessian", "linear_transpose")
# JAX's machinery: every jvp, grad, vjp, jacfwd/jacrev, linearize builds one of these traces
# (JVPTrace, or LinearizeTrace under direct linearization); every reverse pass and
# linear_transpose runs backward_pass.
INTERNALS = ((ad.JVPTrace, "__init__"), (ad.LinearizeTrace, "__init__"), (ad, "backward_pass"))


class AutodiffCalled(AssertionError):
  """A JAX differentiation function was called while the hand BPTT ran."""


def _raiser(name):
  def forbidden(*args, **kwargs):
    raise AutodiffCalled(f"{name} called during the hand BPTT")
  return forbidden


@pytest.fixture
def no_autodiff(monkeypatch):
  """Every differentiation entry point raises AutodiffCalled for the test's duration."""
  originals = {id(getattr(jax, name)): name for name in ENTRY_POINTS}
  originals[id(jet_module.jet)] = "jet"
  for name in ENTRY_POINTS:
    monkeypatch.setattr(jax, name, _raiser(f"jax.{name}"))
  monkeypatch.setattr(jet_module, "jet", _raiser("jax.experimental.jet.jet"))
  for module in (bptt, model):   # any alias (from jax import grad as g, ...) in their namespace
    for attr, value in list(vars(module).items()):
      if id(value) in originals:
        monkeypatch.setattr(module, attr, _raiser(f"{module.__name__}.{attr}"))
  for owner, attr in INTERNALS:
    monkeypatch.setattr(owner, attr, _raiser(f"{getattr(owner, '__name__', owner)}.{attr}"))
  yield


def _problem(anchor):
  params, xs, ys = testing.rnn_problem(0, T=6, H=5, D=2, K=3, B=4)
  if anchor:
    xs = xs.at[:, :, 0].set(jnp.linspace(0.0, 1.0, 6))
  h0 = jnp.abs(jnp.asarray(np.random.default_rng(1).standard_normal((4, 5))))
  return params, xs, ys, h0


TAUS = (0.1, 0.5, 0.9)   # the pinball loss's quantile levels, one per output


def _all_calls(params, xs, ys, h0, anchor):
  """Every public function of bptt at one point, with the cross-entropy and the pinball loss:
  ``{name: output}``."""
  ct = jnp.ones(xs.shape[:2] + (params.U.shape[0],))
  return {
      "loss_and_grads": bptt.loss_and_grads(params, xs, ys, h0, anchor=anchor),
      "backward": bptt.backward(params, xs, ys, h0, anchor=anchor),
      "grad_norms": bptt.grad_norms(params, xs, ys, h0, anchor=anchor),
      "hidden_states_vjp": bptt.hidden_states_vjp(params, xs, ct, h0),
      "loss": bptt.loss(params, xs, ys, h0, anchor=anchor),
      "backward pinball": bptt.backward(params, xs, ys, h0, anchor=anchor, taus=TAUS),
      "loss pinball": bptt.loss(params, xs, ys, h0, anchor=anchor, taus=TAUS),
  }


@pytest.fixture(params=[False, True], ids=["plain", "anchor"])
def expected(request):
  """The outputs of every call with differentiation on (computed before any patch)."""
  anchor = request.param
  with jax.enable_x64(True):
    args = _problem(anchor)
    return anchor, args, jax.jit(lambda *a: _all_calls(*a, anchor))(*args)


def test_hand_bptt_runs_with_differentiation_disabled(expected, no_autodiff):
  anchor, args, before = expected
  traces = []

  def traced(*a):                  # a new function object: jit cannot reuse a cached trace
    traces.append(1)               # runs only while jit traces
    return _all_calls(*a, anchor)

  with jax.enable_x64(True):
    out = jax.jit(traced)(*args)
  assert traces == [1]
  assert set(out) == set(before)
  for name in before:
    for a, b in zip(jax.tree.leaves(out[name]), jax.tree.leaves(before[name]), strict=True):
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=name)


_f = lambda x: jnp.sin(x) * x
_CALLS = {   # a call of each entry point that differentiates _f (or a linear map) at 1.0
    "grad": lambda d: d(_f)(1.0), "value_and_grad": lambda d: d(_f)(1.0),
    "jacobian": lambda d: d(_f)(1.0), "jacfwd": lambda d: d(_f)(1.0),
    "jacrev": lambda d: d(_f)(1.0), "hessian": lambda d: d(_f)(1.0),
    "vjp": lambda d: d(_f, 1.0)[1](1.0), "jvp": lambda d: d(_f, (1.0,), (1.0,)),
    "linearize": lambda d: d(_f, 1.0), "linear_transpose": lambda d: d(lambda x: 2 * x, 1.0)(1.0),
    "jet": lambda d: d(_f, (1.0,), ((1.0,),)),
}


@pytest.mark.parametrize("name", ENTRY_POINTS + ("jet",))
def test_every_entry_point_is_patched(no_autodiff, name):
  entry = jet_module.jet if name == "jet" else getattr(jax, name)
  with pytest.raises(AutodiffCalled):
    _CALLS[name](entry)


_UNPATCHED = {name: getattr(jax, name) for name in ENTRY_POINTS}


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_the_machinery_under_the_entry_points_is_patched(no_autodiff, name):
  """The unpatched entry points (as a helper that kept its own reference would call them) still
  raise: the patch of JAX's traces and transpose pass is live under every one of them."""
  with pytest.raises(AutodiffCalled):
    _CALLS[name](_UNPATCHED[name])


def test_a_hidden_autodiff_call_is_caught(no_autodiff):
  """The check does catch a "hand" BPTT that differentiates behind an alias: one whose helper
  kept its own reference to jax.grad, traced exactly as the real one is above."""
  def sneaky_loss_and_grads(params, xs, ys, h0):
    return model.loss(params, xs, ys, h0), _UNPATCHED["grad"](model.loss)(params, xs, ys, h0)
  with jax.enable_x64(True):
    args = _problem(False)
    with pytest.raises(AutodiffCalled):
      jax.jit(sneaky_loss_and_grads)(*args)

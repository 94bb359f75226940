"""The forward pass: one test body over many implementations, flax as an independent one,
jit (retracing: tests/train/test_retrace.py), initialisation, dtypes, and shape errors at the
public boundary.

Implementations of the same network (all float64, compared step by step):
  scan           rnn_jax.core.model (lax.scan), autodiff gradients
  scan-unroll8   the same with lax.scan(unroll=8) (T = 9, so 8 does not divide T)
  scan-unrollT   fully unrolled (unroll=T)
  loop           a plain Python loop over time (the reference, lives only here)
  bptt           rnn_jax.bptt.loss_and_grads (the hand BPTT)
  bptt-vjp       jax.value_and_grad of rnn_jax.bptt.loss (custom_vjp -> hand BPTT)
  flax           flax.linen nn.RNN(nn.SimpleCell(relu)) + nn.Dense, given the same weights
each with and without jax.jit. Values are compared with a NumPy loop (no JAX at all); gradients
with jax.grad of the Python-loop reference (the loop itself with the plain scan's). float32 runs
in IEEE float32 (rnn_jax.testing.full_float32_matmuls) on every backend.
rnn_jax.value_and_grad("hand") and scan(remat=True) are compared with autodiff in test_bptt.py.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnn_jax
from rnn_jax.core import bptt, model
from rnn_jax import testing
from rnn_jax.testing import errors, tree_errors
from rnn_jax.core.model import RNNParams, ShapeError

VALUE_TOL = 1e-12   # float64 forward values: a few ulp grown over T = 9 steps
GRAD_TOL = 1e-10    # float64 gradients, relative (rnn_jax.testing.TOLERANCES)

B, T, D, H, K = 3, 9, 2, 6, 3


# --------------------------------------------------------------------------- references


def numpy_forward(params: RNNParams, xs, h0, ys):
  """The notes' network in plain NumPy float64: ``(hs [B,T,H], logits [B,K], loss)``."""
  U, V, b, W, c = (np.asarray(a, np.float64) for a in params)
  xs, h, ys = (np.asarray(a, np.float64) for a in (xs, h0, ys))
  hs = []
  for t in range(xs.shape[1]):
    h = np.maximum(h @ U.T + xs[:, t] @ V.T + b, 0.0)
    hs.append(h)
  logits = h @ W.T + c
  loss = np.mean(np.sum(np.logaddexp(0.0, logits) - ys * logits, axis=-1))
  return np.stack(hs, axis=1), logits, loss


def bce(logits, ys):
  """softplus(l) - y l, summed over K, mean over B: written here, not taken from rnn_jax."""
  return jnp.mean(jnp.sum(jnp.logaddexp(0.0, logits) - ys * logits, axis=-1))


def loop_forward(params: RNNParams, xs, h0):
  """A plain Python loop over time in JAX ops: ``(hs [B,T,H], h_T, logits)``."""
  h, hs = h0, []
  for t in range(xs.shape[1]):
    h = jax.nn.relu(h @ params.U.T + xs[:, t] @ params.V.T + params.b)
    hs.append(h)
  return jnp.stack(hs, axis=1), h, h @ params.W.T + params.c


def loop_loss(params, xs, ys, h0):
  return bce(loop_forward(params, xs, h0)[2], ys)


class FlaxRNN(nn.Module):
  """An independent implementation: flax's SimpleCell with ReLU and a Dense head."""
  hidden: int
  outputs: int

  @nn.compact
  def __call__(self, xs, h0):
    cell = nn.SimpleCell(features=self.hidden, activation_fn=nn.relu, param_dtype=jnp.float64)
    hT, hs = nn.RNN(cell, return_carry=True)(xs, initial_carry=h0)
    return hs, hT, nn.Dense(self.outputs, param_dtype=jnp.float64)(hT)


def to_flax(p: RNNParams):
  """flax Dense kernels are [in, out]; SimpleCell's 'i' (input) has the bias, 'h' has none."""
  return {"SimpleCell_0": {"i": {"kernel": p.V.T, "bias": p.b}, "h": {"kernel": p.U.T}},
          "Dense_0": {"kernel": p.W.T, "bias": p.c}}


def from_flax(f) -> RNNParams:
  cell = f["SimpleCell_0"]
  return RNNParams(U=cell["h"]["kernel"].T, V=cell["i"]["kernel"].T, b=cell["i"]["bias"],
                   W=f["Dense_0"]["kernel"].T, c=f["Dense_0"]["bias"])


# --------------------------------------------------------------------------- implementations


def _scan(unroll=1, remat=False):
  def impl(p, xs, ys, h0):
    hT, _, _ = model._run(p, xs, h0, unroll=unroll, remat=remat)   # the scan's final carry
    loss, grads = jax.value_and_grad(model.loss)(p, xs, ys, h0, unroll=unroll, remat=remat)
    # (model.loss goes through model.forward; the logits themselves are checked for the loop
    # and flax, and in test_predict_is_sigmoid_of_forward)
    return dict(hs=model.hidden_states(p, xs, h0, unroll=unroll), hT=hT, loss=loss, grads=grads)
  return impl


def _loop(p, xs, ys, h0):
  hs, hT, logits = loop_forward(p, xs, h0)
  loss, grads = jax.value_and_grad(loop_loss)(p, xs, ys, h0)
  return dict(hs=hs, hT=hT, logits=logits, loss=loss, grads=grads)


def _bptt(p, xs, ys, h0):
  loss, grads = bptt.loss_and_grads(p, xs, ys, h0)
  return dict(loss=loss, grads=grads)


def _bptt_vjp(p, xs, ys, h0):
  loss, grads = jax.value_and_grad(bptt.loss)(p, xs, ys, h0)
  return dict(loss=loss, grads=grads)


def _flax(p, xs, ys, h0):
  module = FlaxRNN(H, K)
  hs, hT, logits = module.apply({"params": to_flax(p)}, xs, h0)
  flax_loss = lambda f: bce(module.apply({"params": f}, xs, h0)[2], ys)
  loss, fgrads = jax.value_and_grad(flax_loss)(to_flax(p))
  return dict(hs=hs, hT=hT, logits=logits, loss=loss, grads=from_flax(fgrads))


IMPLEMENTATIONS = {
    "scan": _scan(), "scan-unroll8": _scan(unroll=8), "scan-unrollT": _scan(unroll=T),
    "loop": _loop, "bptt": _bptt, "bptt-vjp": _bptt_vjp, "flax": _flax,
}


@pytest.fixture
def problem(x64):
  """float64 weights N(0, 1/fan_in), a nonzero bias and initial state (so their paths are
  exercised too). Drawn with NumPy: jax.random would cost a compilation per shape."""
  rng = np.random.default_rng(7)
  normal = lambda *shape: jnp.asarray(rng.standard_normal(shape))
  params = RNNParams(U=normal(H, H) / np.sqrt(H), V=normal(H, D) / np.sqrt(D),
                     b=0.1 * normal(H), W=normal(K, H) / np.sqrt(H), c=0.1 * normal(K))
  xs = normal(B, T, D)
  ys = jnp.asarray(rng.uniform(size=(B, K)))
  h0 = jnp.abs(normal(B, H))
  return params, xs, ys, h0


@pytest.mark.parametrize("jit", [False, True], ids=["nojit", "jit"])
@pytest.mark.parametrize("name", list(IMPLEMENTATIONS))
def test_every_implementation_agrees(problem, name, jit):
  params, xs, ys, h0 = problem
  impl = IMPLEMENTATIONS[name]
  out = (jax.jit(impl) if jit else impl)(params, xs, ys, h0)

  hs_ref, logits_ref, loss_ref = numpy_forward(params, xs, h0, ys)
  # The scan must visit a mix of live and dead units for the comparison to mean something.
  assert 0.05 < np.mean(hs_ref > 0) < 0.95
  reference = dict(hs=hs_ref, hT=hs_ref[:, -1], logits=logits_ref, loss=loss_ref)
  for key, ref in reference.items():
    if key in out:
      assert jnp.asarray(out[key]).dtype == jnp.float64, key
      assert np.shape(out[key]) == np.shape(ref), key
      _, rel = errors(out[key], ref)
      assert rel <= VALUE_TOL, f"{name}: {key} off by {rel:.2e}"

  grad_ref = (jax.grad(loop_loss) if name != "loop" else jax.grad(model.loss))(params, xs, ys, h0)
  assert all(g.dtype == jnp.float64 for g in out["grads"])   # float64 survives every path
  for field, (abs_err, rel) in tree_errors(out["grads"], grad_ref).items():
    assert rel <= GRAD_TOL, f"{name}: grad {field} off by {rel:.2e} (abs {abs_err:.2e})"


def test_flax_mapping_is_not_trivially_symmetric(problem):
  """Guards the flax comparison itself: feeding U instead of U^T must be caught."""
  params, xs, ys, h0 = problem
  wrong = to_flax(params)
  wrong["SimpleCell_0"]["h"]["kernel"] = params.U
  _, _, logits = FlaxRNN(H, K).apply({"params": wrong}, xs, h0)
  assert errors(logits, model.forward(params, xs, h0))[1] > 1e-3


# Retracing: tests/train/test_retrace.py counts the compilations of rnn_jax's own compiled
# functions (fit's programs, the train step fed its own state, the gradient checks'); a test here
# that jitted its own wrapper and called it twice with identical arguments could not fail.


# --------------------------------------------------------------------------- init and dtypes


def test_init_params():
  @jax.jit
  def both(key):   # one compilation for both schemes
    return {s: model.init_params(key, 3, 50, 4, scheme=s) for s in model.INIT_SCHEMES}

  for scheme, p in both(jax.random.key(0)).items():
    assert [a.shape for a in p] == [(50, 50), (50, 3), (50,), (4, 50), (4,)]
    assert all(a.dtype == jnp.float32 for a in p)
    np.testing.assert_array_equal(p.b, 0.0)
    np.testing.assert_array_equal(p.c, 0.0)
    if scheme == "irnn":
      np.testing.assert_array_equal(p.U, np.eye(50))
    else:  # N(0, 1/fan_in): the sample variance of 2500 draws is within ~10% of 1/50
      assert abs(float(jnp.var(p.U)) * 50 - 1.0) < 0.15


def test_init_params_rejects_bad_arguments():
  with pytest.raises(ValueError, match="scheme"):
    model.init_params(jax.random.key(0), scheme="xavier")
  with pytest.raises(ValueError, match="hidden_size"):
    model.init_params(jax.random.key(0), hidden_size=0)


def test_predict_is_sigmoid_of_forward():
  rng = np.random.default_rng(0)
  normal = lambda *shape: jnp.asarray(rng.standard_normal(shape), jnp.float32)
  p = RNNParams(U=normal(8, 8) / 3, V=normal(8, 1), b=normal(8), W=normal(3, 8), c=normal(3))
  xs = normal(5, 24, 1)
  with testing.full_float32_matmuls():   # IEEE float32 on every backend (not TF32 on GPUs)
    z, logits = jax.jit(lambda p, xs: (model.predict(p, xs), model.forward(p, xs)))(p, xs)
  np.testing.assert_allclose(z, jax.nn.sigmoid(logits), rtol=1e-6)
  _, logits_ref, _ = numpy_forward(p, xs, np.zeros((5, 8)), np.zeros((5, 3)))
  assert errors(logits, logits_ref)[1] <= 1e-5   # float32 against the NumPy float64 loop
  assert z.shape == (5, 3) and bool(jnp.all((z >= 0) & (z <= 1)))


# --------------------------------------------------------------------------- shape errors


def _shape_cases():
  p = model.init_params(jax.random.key(0), 2, 4, 3)
  xs = jnp.zeros((5, 6, 2))
  ys = jnp.zeros((5, 3))
  return [
      ("xs-inputs", lambda: model.forward(p, jnp.zeros((5, 6, 3))), "xs", "[*, *, 2]",
       "[5, 6, 3]"),
      ("xs-rank", lambda: model.hidden_states(p, jnp.zeros((5, 6))), "xs", "[*, *, 2]",
       "[5, 6]"),
      ("xs-no-steps", lambda: model.forward(p, jnp.zeros((5, 0, 2))), "xs", "at least one",
       "[5, 0, 2]"),
      ("ys", lambda: model.loss(p, xs, jnp.zeros((5, 2))), "ys", "[5, 3]", "[5, 2]"),
      ("ys-bptt", lambda: bptt.loss_and_grads(p, xs, jnp.zeros((4, 3))), "ys", "[5, 3]",
       "[4, 3]"),
      ("h0", lambda: model.forward(p, xs, jnp.zeros((5, 3))), "h0", "[5, 4]", "[5, 3]"),
      ("h0-bptt-loss", lambda: bptt.loss(p, xs, ys, jnp.zeros((4,))), "h0", "[5, 4]", "[4]"),
      ("params.U", lambda: model.forward(p._replace(U=jnp.zeros((4, 5))), xs), "params.U",
       "[4, 4]", "[4, 5]"),
      ("params.c", lambda: model.loss(p._replace(c=jnp.zeros((2,))), xs, ys), "params.c",
       "[3]", "[2]"),
      ("cotangent_hs", lambda: bptt.hidden_states_vjp(p, xs, jnp.zeros((5, 6, 3))),
       "cotangent_hs", "[5, 6, 4]", "[5, 6, 3]"),
  ]


@pytest.mark.parametrize("call,name,expected,actual", [c[1:] for c in _shape_cases()],
                         ids=[c[0] for c in _shape_cases()])
def test_shape_error_names_argument_expected_and_actual(call, name, expected, actual):
  with pytest.raises(ShapeError) as err:
    call()
  message = str(err.value)
  assert message.startswith(name + ":"), message
  assert expected in message and actual in message, message
  assert "\n" not in message


@pytest.mark.parametrize("T", [7, 24, 100])
def test_chunked_remat_same_loss_and_gradient(x64, T):
  p = rnn_jax.init_params(jax.random.key(0), 2, 9, 3, dtype=jnp.float64)
  xs = jax.random.uniform(jax.random.key(1), (4, T, 2), jnp.float64, -1, 1)
  ys = jax.random.uniform(jax.random.key(2), (4, 3), jnp.float64)
  plain = jax.value_and_grad(lambda p: model.loss(p, xs, ys))(p)
  remat = jax.value_and_grad(lambda p: model.loss(p, xs, ys, remat=True))(p)
  assert plain[0] == remat[0]
  for a, b in zip(plain[1], remat[1]):
    np.testing.assert_allclose(b, a, rtol=1e-13, atol=1e-15)


def test_chunked_remat_keeps_sublinear_activations():
  """XLA's own memory plan for the gradient: with remat the temporaries of a long window
  shrink from O(T) to O(sqrt T) steps (a compile-time fact, not a timing)."""
  p = rnn_jax.init_params(jax.random.key(0), 1, 64, 3)
  xs, ys = jnp.zeros((8, 400, 1)), jnp.zeros((8, 3))

  def temp_bytes(remat):
    grad = jax.jit(jax.grad(lambda p: model.loss(p, xs, ys, remat=remat)))
    return grad.lower(p).compile().memory_analysis().temp_size_in_bytes

  activations = 400 * 8 * 64 * 4      # one float32 [T, B, H] array
  assert temp_bytes(False) >= activations
  assert temp_bytes(True) < activations / 5

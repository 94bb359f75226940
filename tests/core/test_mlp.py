"""The notes' letters network (rnn_jax.mlp): its matrix-form gradients against jax.grad, the SGD
step, and shape errors. Finite differences for it run in test_bptt.py's gradcheck-script test."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_jax import testing
from rnn_jax.core import mlp
from rnn_jax.testing import TOLERANCES, errors, tree_errors
from rnn_jax.core.mlp import MLPParams
from rnn_jax.core.model import ShapeError


def draw(d, H, K, B, targets="onehot", seed=0, dtype=np.float64, scale=1.0):
  """Weights N(0, 1/fan_in) as mlp.init_params draws them (fan_in counts the bias unit)."""
  rng = np.random.default_rng(seed)
  V = rng.standard_normal((H, d + 1)) / np.sqrt(d + 1)
  W = rng.standard_normal((K, H + 1)) / np.sqrt(H + 1)
  xs = scale * rng.standard_normal((B, d))
  ys = np.eye(K)[rng.integers(0, K, size=B)] if targets == "onehot" else rng.uniform(size=(B, K))
  cast = lambda a: jnp.asarray(a, dtype)
  return MLPParams(V=cast(V), W=cast(W)), cast(xs), cast(ys)


@jax.jit
def hand_and_autodiff(params, xs, ys):
  return mlp.loss_and_grads(params, xs, ys), jax.value_and_grad(mlp.loss)(params, xs, ys)


def assert_close(hand, ref, tol, what=""):
  for field, (abs_err, rel) in tree_errors(hand, ref).items():
    assert np.isfinite(abs_err) and rel <= tol, f"{what} grad {field}: {rel:.2e} > {tol:g}"


#  d    H   K   B  targets
CASES = [(1, 1, 1, 1, "onehot"), (3, 7, 2, 5, "soft"), (16, 7, 26, 64, "onehot"),
         (16, 200, 26, 32, "onehot")]   # the notes' letters network


@pytest.mark.parametrize("case", CASES, ids=lambda c: "d{}-H{}-K{}-B{}-{}".format(*c))
def test_hand_gradients_match_autodiff_float64(x64, case):
  params, xs, ys = draw(*case)
  (loss, hand), (loss_ref, ref) = hand_and_autodiff(params, xs, ys)
  assert errors(loss, loss_ref)[1] <= TOLERANCES["float64"].autodiff
  assert_close(hand, ref, TOLERANCES["float64"].autodiff, str(case))


def test_hand_gradients_float32_against_float64_reference(x64):
  p32, xs32, ys32 = draw(16, 200, 26, 32, dtype=np.float32)
  to64 = lambda t: jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), t)
  with testing.full_float32_matmuls():   # IEEE float32 on every backend (not TF32 on GPUs)
    (_, hand32), (_, auto32) = hand_and_autodiff(p32, xs32, ys32)
  (_, _), (_, ref) = hand_and_autodiff(to64(p32), to64(xs32), to64(ys32))
  assert all(g.dtype == jnp.float32 for g in hand32)
  tol = TOLERANCES["float32", "highest"].autodiff
  assert_close(hand32, ref, tol, "hand float32")
  assert_close(auto32, ref, tol, "autodiff float32")


def test_hard_cases_stay_finite_and_matching(x64):
  # inputs of 1e3 saturate tanh (sech^2 -> 0); logits of about +-1000 saturate the sigmoid
  params, xs, ys = draw(16, 7, 26, 64, scale=1e3)
  big = params._replace(W=params.W.at[:, -1].set(jnp.where(jnp.arange(26) % 2 == 0,
                                                                 1000.0, -1000.0)))
  for what, p in (("x ~ 1e3", params), ("logits ~ +-1000", big)):
    (loss, hand), (loss_ref, ref) = hand_and_autodiff(p, xs, ys)
    assert np.isfinite(float(loss)) and errors(loss, loss_ref)[1] <= 1e-12, what
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in hand), what
    assert_close(hand, ref, TOLERANCES["float64"].autodiff, what)


def test_sgd_step_is_the_notes_update_and_decreases_the_loss(x64):
  # A small learnable problem: the class is the argmax of a fixed linear map of x.
  rng = np.random.default_rng(0)
  xs = jnp.asarray(rng.standard_normal((64, 4)))
  ys = jax.nn.one_hot(jnp.argmax(xs @ jnp.asarray(rng.standard_normal((4, 3))), axis=1), 3)
  params, _, _ = draw(4, 16, 3, 1)
  step = jax.jit(mlp.sgd_step)
  lr = 0.5

  new, loss0 = step(params, xs, ys, lr)
  (loss_before, grads), _ = hand_and_autodiff(params, xs, ys)
  assert errors(loss0, loss_before)[1] <= 1e-14     # sgd_step returns the loss before the step
  for field in MLPParams._fields:   # V <- V - eps grad_V, W <- W - eps grad_W
    expected = getattr(params, field) - lr * getattr(grads, field)
    assert errors(getattr(new, field), expected)[0] <= 1e-15
    assert not np.allclose(getattr(new, field), getattr(params, field))   # every parameter moves
  assert float(hand_and_autodiff(new, xs, ys)[0][0]) < float(loss0)

  losses = [float(loss0)]
  for _ in range(100):
    new, loss = step(new, xs, ys, lr)
    losses.append(float(loss))
  assert losses[-1] < 0.5 * losses[0]


def test_init_params_shapes_are_bias_augmented():
  p = mlp.init_params(jax.random.key(0))
  assert p.V.shape == (200, 17) and p.W.shape == (26, 201) and p.V.dtype == jnp.float32
  with pytest.raises(ValueError, match="hidden_size"):
    mlp.init_params(jax.random.key(0), hidden_size=0)


@pytest.mark.parametrize("call,name,expected,actual", [
    (lambda p, xs, ys: mlp.forward(p, xs[:, :3]), "xs", "[*, 4]", "[5, 3]"),
    (lambda p, xs, ys: mlp.loss(p, xs, ys[:, :2]), "ys", "[5, 3]", "[5, 2]"),
    (lambda p, xs, ys: mlp.loss_and_grads(p, xs, ys[:4]), "ys", "[5, 3]", "[4, 3]"),
    (lambda p, xs, ys: mlp.forward(p._replace(W=p.W[:, :-1]), xs), "params.W", "[3, 7]",
     "[3, 6]"),
], ids=["xs", "ys", "ys-batch", "params.W"])
def test_shape_errors_name_argument_expected_and_actual(call, name, expected, actual):
  params, xs, ys = draw(4, 6, 3, 5, dtype=np.float32)
  with pytest.raises(ShapeError) as err:
    call(params, xs, ys)
  message = str(err.value)
  assert message.startswith(name + ":") and expected in message and actual in message, message

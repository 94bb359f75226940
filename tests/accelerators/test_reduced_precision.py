"""The matmul precisions (rnn_jax.core.precision) and their tolerances (rnn_jax.testing.TOLERANCES)
tried on a CPU: TF32 and bf16 products emulated by rounding the operands of every product
(reduced_precision.rounded), in the library's own hand BPTT and in autodiff, forward and
backward.

The claim checked: at each precision the gradients' error against float64 is within that
precision's tolerance and above the float32 ("highest") one, so each row is the size of the
rounding it is written for: not so loose that float32's check would pass TF32 gradients, not so
tight that a correct TF32 gradient fails. The points are drawn where rounding leaves every ReLU
unit on the side it is on in float64 (``same_pattern``; the derivation in rnn_jax/testing.py says
why the rows assume it).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_jax import testing
from rnn_jax.core import bptt, model, precision
from rnn_jax.testing import TOLERANCES, errors, tree_errors

from reduced_precision import count_products, round_operand, rounded

SHAPE = dict(T=16, H=32, D=1, K=3, B=8)          # 4,096 pre-activations
SEEDS = range(40)


def hand(params, xs, ys):
  return bptt.loss_and_grads(params, xs, ys)[1]


GRADIENTS = {"hand": hand,                         # the notes' BPTT called directly
             "hand-vjp": jax.grad(bptt.loss),     # the same through its custom_vjp (--grad hand)
             "autodiff": jax.grad(model.loss)}    # jax.grad through the scan


# --------------------------------------------------------------------------- the settings


def test_resolve_names_what_each_platform_computes():
  assert [precision.resolve("default", p) for p in ("cpu", "cuda", "gpu", "tpu")] == [
      "highest", "tf32", "tf32", "bf16"]
  assert [precision.resolve(p, "cuda") for p in ("highest", "tf32", "bf16")] == [
      "highest", "tf32", "bf16"]
  assert {precision.resolve(p, "cpu") for p in precision.PRECISIONS} == {"highest"}
  assert [precision.unit_roundoff(p) for p in ("highest", "tf32", "bf16")] == [
      2.0 ** -24, 2.0 ** -11, 2.0 ** -8]
  with pytest.raises(ValueError, match="precision: expected one of"):
    precision.resolve("fp8", "cuda")
  with pytest.raises(ValueError, match="platform: expected one of"):
    precision.resolve("tf32", "metal")
  with pytest.raises(ValueError, match="resolve"):
    precision.unit_roundoff("default")


def test_tolerances_per_dtype_and_precision():
  assert TOLERANCES["float32"] is TOLERANCES["float32", "highest"]
  assert TOLERANCES["float64"] is TOLERANCES["float64", "highest"] is TOLERANCES[np.float64]
  assert TOLERANCES[jnp.float32, "tf32"] is TOLERANCES["float32", "tf32"]
  assert testing.tolerance("float32", "default", "cuda") is TOLERANCES["float32", "tf32"]
  assert testing.tolerance("float32", "default", "tpu") is TOLERANCES["float32", "bf16"]
  assert testing.tolerance("float32", "bf16", "cpu") is TOLERANCES["float32", "highest"]
  assert testing.tolerance("float64", "bf16", "tpu") is TOLERANCES["float64"]
  rows = [TOLERANCES["float64"]] + [TOLERANCES["float32", p] for p in ("highest", "tf32", "bf16")]
  assert all(a.autodiff < b.autodiff for a, b in zip(rows, rows[1:]))
  # the operand term of the derivation, 20 u_p, rounded up to the row
  for p in ("tf32", "bf16"):
    assert 20 * precision.unit_roundoff(p) <= TOLERANCES["float32", p].autodiff < (
        21 * precision.unit_roundoff(p))
  with pytest.raises(KeyError, match="no tolerance for dtype 'float16'"):
    TOLERANCES["float16"]


def test_the_precision_reaches_the_lowered_products():
  f = precision.with_precision(lambda a, b: a @ b, "tf32")
  a = jnp.ones((4, 4), jnp.float32)
  assert "precision = [HIGH, HIGH]" in jax.jit(f).lower(a, a).as_text()
  assert precision.with_precision(f, None) is f


# --------------------------------------------------------------------------- the emulation


def test_rounding_is_to_nearest_with_the_stated_bits():
  x = jnp.asarray([1 + 2.0 ** -11, 1 + 3 * 2.0 ** -11, 1 + 2.0 ** -12, -3.0], jnp.float32)
  np.testing.assert_array_equal(round_operand(x, 10), [1.0, 1 + 2 * 2.0 ** -10, 1.0, -3.0])
  np.testing.assert_array_equal(round_operand(x, 23), x)
  assert round_operand(jnp.ones(2, jnp.int32), 10).dtype == jnp.int32


@pytest.mark.parametrize("name", sorted(GRADIENTS))
def test_every_product_is_rounded(name):
  """Forward and backward, at every depth: as many rewritten as the program has."""
  params, xs, ys = testing.rnn_problem(0, **SHAPE, dtype=np.float32)
  counter = [0]
  fn = rounded(GRADIENTS[name], 10, counter)
  jax.jit(fn).lower(params, xs, ys)
  n = count_products(GRADIENTS[name], params, xs, ys)
  assert counter[0] == n >= 6, (counter[0], n)   # at least h U^T, x V^T, the head, delta U, ...
  # 23 bits is float32 itself: the same numbers as the program as it is
  same = jax.jit(rounded(GRADIENTS[name], 23))(params, xs, ys)
  for a, b in zip(same, jax.jit(GRADIENTS[name])(params, xs, ys)):
    np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------- the tolerances


def same_pattern(bits, params, xs, params64, xs64) -> bool:
  """Whether every pre-activation keeps its float64 side of ReLU's kink with rounded products."""
  rounded_A = jax.jit(rounded(model.preactivations, bits))(params, xs)
  return bool(np.array_equal(np.asarray(rounded_A) > 0,
                             np.asarray(model.preactivations(params64, xs64)) > 0))


def guarded_point(bits):
  """The first draw whose ReLU pattern rounding leaves alone, in float32 and in float64."""
  for seed in SEEDS:
    p32, xs32, ys32 = testing.rnn_problem(seed, **SHAPE, dtype=np.float32)
    p64, xs64, ys64 = testing.to_dtype((p32, xs32, ys32), jnp.float64)
    if same_pattern(bits, p32, xs32, p64, xs64):
      return (p32, xs32, ys32), (p64, xs64, ys64)
  pytest.fail(f"no draw in {len(SEEDS)} keeps the ReLU pattern at {bits} bits")


def worst(x, ref) -> float:
  return max(rel for _, rel in tree_errors(x, ref).values())


@pytest.mark.parametrize("name", ["highest", "tf32", "bf16"])
def test_each_precision_meets_its_tolerance_and_misses_the_finer_one(x64, name):
  bits = precision.MANTISSA_BITS[name]
  (p32, xs32, ys32), (p64, xs64, ys64) = guarded_point(bits)
  ref = jax.jit(jax.grad(model.loss))(p64, xs64, ys64)
  tol, finer = TOLERANCES["float32", name].autodiff, TOLERANCES["float32", "highest"].autodiff
  grads = {k: jax.jit(rounded(fn, bits))(p32, xs32, ys32) for k, fn in GRADIENTS.items()}
  for k, g in grads.items():
    err = worst(g, ref)
    assert all(leaf.dtype == jnp.float32 for leaf in g)
    assert err <= tol, f"{k} at {name}: {err:.2e} > its tolerance {tol:.0e}"
    if name != "highest":
      assert err > finer, (f"{k} at {name}: {err:.2e} is within float32's {finer:.0e}: the "
                           "products were not rounded, or the tolerance is loose")
  # The hand BPTT and autodiff round the same operands: they agree far better than either
  # agrees with float64, and well within the row.
  assert worst(grads["hand"], grads["autodiff"]) <= tol / 10
  assert worst(grads["hand-vjp"], grads["hand"]) <= tol / 10


def test_the_loss_itself_at_tf32(x64):
  """The loss, not only its gradient, is off by ~u_p at TF32 (a few units of 2^-11)."""
  (p32, xs32, ys32), (p64, xs64, ys64) = guarded_point(10)
  loss = jax.jit(rounded(model.loss, 10))(p32, xs32, ys32)
  rel = errors(loss, model.loss(p64, xs64, ys64))[1]
  assert 2.0 ** -24 < rel <= 20 * precision.unit_roundoff("tf32")

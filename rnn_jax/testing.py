"""What gradient checks of rnn_jax.core need, in the spirit of ``jax.test_util``: error measures
per array, per NamedTuple field or per time step, tolerances per dtype and matmul precision
(``TOLERANCES``), random problems drawn on the host, and the hand BPTT's own per-step
``dL/dA_t`` (``hand_steps``).
experiments/gradcheck.py checks both networks against autodiff and finite differences with these.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from rnn_jax.core import bptt, mlp, model
from rnn_jax.core import precision as precision_lib
from rnn_jax.core.model import RNNParams
from rnn_jax.core.precision import DEFAULT_PRECISION

DTYPES = ("float32", "float64")


@dataclasses.dataclass(frozen=True)
class Tolerance:
  """Largest relative error allowed for a hand gradient in one dtype at one matmul precision."""
  autodiff: float  # against jax.grad (in the same dtype, or in float64 as the reference)
  fd: float        # against float64 central differences


# Keyed by (dtype, precision), the precision as rnn_jax.core.precision resolves it for a platform
# ("highest", "tf32", "bf16"); float64 products are never rounded, so float64 has one row.
#
# float64: autodiff and the hand BPTT do the same arithmetic in another order: a few ulp
#   (2^-52 ~ 2.2e-16) grown over T steps and sums of T*B terms, measured <= 4e-15 over the test
#   grid (T <= 100, H <= 200, B <= 64). 1e-10 leaves a wide margin and still fails on any real
#   mistake (a wrong transpose or a missing term is an O(1) error). Central differences with a
#   step eps of 1e-7..1e-6 along unit directions carry eps^2 |L'''| / 6 (truncation, <= ~1e-12)
#   plus ~u |L| / eps (rounding of the two losses, ~1e-9..1e-8 for |L| ~ 2) against directional
#   derivatives of ~0.01..1: measured <= 1e-8 relative, so 1e-6. 1e-10 holds per parameter and, in
#   tests/core/test_bptt_per_step.py, per time step (step_errors).
# float32 gradients carry two roundings (u32 = 2^-24 ~ 6e-8, float32's own unit roundoff):
#   (a) accumulation: an entry sums ~T*B products, each carried through up to T steps of H-term
#       dot products, accumulated in float32 at every precision: a random-walk estimate of the
#       relative error is u32 sqrt(T B H) = 6e-8 * sqrt(100 * 64 * 200) ~ 7e-5 at the largest
#       test size;
#   (b) operands: at "tf32" and "bf16" the operands of every product are rounded first (u_p =
#       2^-11 ~ 4.9e-4, 2^-8 ~ 3.9e-3). That error is relative to each product, so it does not
#       grow with the length of a sum; it re-enters at each of the T steps of the chain, about
#       u_p sqrt(T): 2 u_p sqrt(100) = 20 u_p at the largest test size. Measured with the
#       operands rounded on a CPU (tests/accelerators/test_reduced_precision.py), against
#       float64: 1-12 u_p for T = 4..100 where no ReLU unit changed side (and 2-22 u32 for
#       "highest", where (a) is the larger term).
#   "highest" (IEEE float32): (a) rules, so 1e-4 (measured <= 6e-7, the hand BPTT and autodiff
#   alike); "tf32": (b), 20 u_p = 9.8e-3, so 1e-2; "bf16": 20 u_p = 7.8e-2, so 8e-2. Rounding
#   alone misses the next finer row (TF32 errors of 4.5e-4..5.9e-3, all above 1e-4). With
#   rounded operands a pre-activation within ~u_p of ReLU's kink can change side, and the
#   gradient then differs by that unit's whole contribution (measured 18-136 u_p with 1-3 of
#   3,000-13,000 pre-activations flipped): every float32 row holds where the ReLU pattern is
#   float64's, which the float32 checks make sure of (same_relu_pattern in
#   experiments/gradcheck.py). Finite differences are taken in float64, so their row bounds the
#   float32 gradient's own rounding: the same numbers.
_TOLERANCES = {
    ("float64", "highest"): Tolerance(autodiff=1e-10, fd=1e-6),
    ("float32", "highest"): Tolerance(autodiff=1e-4, fd=1e-4),
    ("float32", "tf32"): Tolerance(autodiff=1e-2, fd=1e-2),
    ("float32", "bf16"): Tolerance(autodiff=8e-2, fd=8e-2),
}


class Tolerances(Mapping):
  """``TOLERANCES[dtype, precision]``; ``TOLERANCES[dtype]`` is ``TOLERANCES[dtype,
  DEFAULT_PRECISION]``, the precision every check runs at unless it names another."""

  def __init__(self, table: dict):
    self._table = dict(table)

  def __getitem__(self, key) -> Tolerance:
    dtype, precision = key if isinstance(key, tuple) else (key, DEFAULT_PRECISION)
    dtype = np.dtype(dtype).name if not isinstance(dtype, str) else dtype   # np.float32 too
    if (dtype, precision) not in self._table:
      raise KeyError(f"no tolerance for dtype {dtype!r} at precision {precision!r}; "
                     f"known: {sorted(self._table)}")
    return self._table[dtype, precision]

  def __iter__(self):
    return iter(self._table)

  def __len__(self) -> int:
    return len(self._table)


TOLERANCES = Tolerances(_TOLERANCES)


def tolerance(dtype: str, precision: str = DEFAULT_PRECISION, platform: str = "cpu") -> Tolerance:
  """The row of ``TOLERANCES`` for products at ``precision`` as they come out on ``platform``
  (rnn_jax.core.precision.resolve: "default" is "tf32" on a GPU, "bf16" on a TPU; every
  precision is "highest" on a CPU and for float64)."""
  if dtype == "float64":
    return TOLERANCES["float64", "highest"]
  return TOLERANCES[dtype, precision_lib.resolve(precision, platform)]


def full_float32_matmuls():
  """``precision.matmul_precision("highest")``: IEEE float32 products on every backend, as
  ``TOLERANCES["float32", "highest"]`` assumes (a GPU's default is TF32, a TPU's bf16)."""
  return precision_lib.matmul_precision("highest")


def errors(x, ref) -> tuple[float, float]:
  """``(max |x - ref|, max |x - ref| / max |ref|)`` in float64; relative = absolute when ``ref``
  is all zero (as grad_U when T = 1 and h_0 = 0)."""
  x = np.asarray(x, np.float64)
  ref = np.asarray(ref, np.float64)
  abs_err = float(np.max(np.abs(x - ref), initial=0.0))
  scale = float(np.max(np.abs(ref), initial=0.0))
  return abs_err, (abs_err / scale if scale > 0 else abs_err)


def tree_errors(x, ref) -> dict[str, tuple[float, float]]:
  """``errors`` for each field of two NamedTuple pytrees of the same type."""
  return {name: errors(getattr(x, name), getattr(ref, name)) for name in ref._fields}


def step_errors(x, ref, axis: int = 1) -> np.ndarray:
  """``[T]``: the relative error of ``errors`` at every index along the time ``axis`` (1 for
  ``[B, T, ...]``, 0 for ``[T, ...]``), each step against its own ``max |ref|``. With the normal
  init at T = 100, ||dL/dh_1|| / ||dL/dh_T|| is ~1e-15, so a BPTT wrong in its early steps
  passes any per-parameter bar; held to the same tolerance step by step, it does not."""
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


def hand_steps(params, xs, ys, h0=None, *, anchor: bool = False, sums: str | None = None,
               taus=None):
  """``(result, delta [B,T,H])``: rnn_jax.core.bptt.backward and its own ``delta_t = dL/dA_t``
  (``anchor``, ``sums``, ``taus`` as there). On the ``augment``-ed network the input gradient is
  ``dL/dx'_t = delta_t [V, I]``, whose last H columns are exactly ``delta_t``; ``result`` drops
  the extra columns of ``grads.V`` and ``dxs``. jit-compatible."""
  D = xs.shape[-1]
  p_aug, xs_aug = augment(params, xs)
  r = bptt.backward(p_aug, xs_aug, ys, h0, anchor=anchor, sums=sums, taus=taus)
  result = r._replace(grads=r.grads._replace(V=r.grads.V[:, :D]), dxs=r.dxs[..., :D])
  return result, r.dxs[..., D:]


# --------------------------------------------------------------------------- random problems


def to_dtype(tree, dtype):
  """Casts every leaf of a pytree (float32 values are exact in float64), on the host."""
  return jax.tree.map(lambda a: jnp.asarray(np.asarray(a).astype(dtype)), tree)


def rnn_problem(seed, *, T: int = 24, H: int = 200, D: int = 1, K: int = 3, B: int = 32,
                scheme: str = "normal", targets: str = "soft", dtype=np.float64):
  """A random problem for the RNN: ``(params, xs [B,T,D] ~ N(0,1), ys [B,K])``, parameters as
  rnn_jax.core.model.init_params draws them but with NumPy from ``seed`` (an int or a tuple of
  ints): no compilation per shape. ``targets="soft"``: ys uniform in [0, 1]; ``"onehot"``: one
  class per example (with K = 1, all ones)."""
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
  """``rnn_problem`` for the letters MLP: ``(params, xs [B,d] ~ N(0,1), one-hot ys [B,K])``."""
  rng = np.random.default_rng(seed)
  params = mlp.MLPParams(V=rng.standard_normal((H, d + 1)) / np.sqrt(d + 1),
                         W=rng.standard_normal((K, H + 1)) / np.sqrt(H + 1))
  xs = rng.standard_normal((B, d))
  ys = np.eye(K)[rng.integers(0, K, B)]
  return to_dtype((params, xs, ys), dtype)

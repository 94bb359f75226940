"""What gradient checks of rnn_jax.core need, in the spirit of ``jax.test_util``: error measures
per array, per NamedTuple field or per time step, tolerances per dtype (``TOLERANCES``), random
problems drawn on the host, and the hand BPTT's own per-step ``dL/dA_t`` (``hand_steps``).
experiments/gradcheck.py checks both networks against autodiff and finite differences with these.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from rnn_jax.core import bptt, mlp, model
from rnn_jax.core.model import RNNParams

DTYPES = ("float32", "float64")


@dataclasses.dataclass(frozen=True)
class Tolerance:
  """Largest relative error allowed for a hand gradient in one dtype (``TOLERANCES``)."""
  autodiff: float  # against jax.grad in the same dtype
  fd: float        # against float64 central differences


# float64: autodiff and the hand BPTT do the same arithmetic in another order: a few ulp
#   (2^-52 ~ 2.2e-16) grown over T steps and sums of T*B terms, measured <= 4e-15 over the test
#   grid (T <= 100, H <= 200, B <= 64). 1e-10 leaves a wide margin and still fails on any real
#   mistake (a wrong transpose or a missing term is an O(1) error). Central differences with a
#   step eps of 1e-7..1e-6 along unit directions carry eps^2 |L'''| / 6 (truncation, <= ~1e-12)
#   plus ~u |L| / eps (rounding of the two losses, ~1e-9..1e-8 for |L| ~ 2) against directional
#   derivatives of ~0.01..1: measured <= 1e-8 relative, so 1e-6. 1e-10 holds per parameter and, in
#   tests/core/test_bptt_per_step.py, per time step (step_errors).
# float32: a gradient entry sums ~T*B products, each carried through up to T steps of H-term
#   dot products; with unit roundoff u = 2^-24 ~ 6e-8 a random-walk estimate of the relative
#   error is u * sqrt(T * B * H) = 6e-8 * sqrt(100 * 64 * 200) ~ 7e-5 at the largest test size,
#   hence 1e-4 (measured: <= 6e-7, for the hand BPTT and for autodiff in float32 alike). That
#   is IEEE float32, which every backend computes inside full_float32_matmuls, so one row serves
#   every backend. At JAX's default precision a GPU runs float32 matmuls in TF32
#   (u = 2^-11 ~ 5e-4) and a TPU in bf16 passes (u = 2^-8): errors of ~1e-3, not meant to pass.
FLOAT32_MATMUL_PRECISION = "highest"
TOLERANCES = {
    "float64": Tolerance(autodiff=1e-10, fd=1e-6),
    "float32": Tolerance(autodiff=1e-4, fd=1e-4),
}


def full_float32_matmuls():
  """``jax.default_matmul_precision("highest")``: full float32 matmuls, as TOLERANCES assume."""
  return jax.default_matmul_precision(FLOAT32_MATMUL_PRECISION)


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

"""The notes' side identity ``y = sin(A x)``: the function, its Jacobian and its VJP, stated
correctly (docs/derivation.md, section 4; tests/verify/test_identity.py checks them)."""
from __future__ import annotations

import jax.numpy as jnp


def sin_affine(A, x):
  """The notes' side example ``y = sin(A x)``: ``A [m,n]``, ``x [n]`` -> ``y [m]``."""
  return jnp.sin(A @ x)


def sin_affine_jacobian(A, x):
  """``dy/dx = diag(cos(A x)) A``, ``[m, n]`` (the notes write ``A^T cos(Ax)``, see
  docs/derivation.md: that is the gradient of ``sum(y)``, i.e. the VJP with v = 1)."""
  return jnp.cos(A @ x)[:, None] * A


def sin_affine_vjp(A, x, v):
  """``v^T (dy/dx) = A^T (cos(A x) * v)``, ``[n]`` for a cotangent ``v [m]``."""
  return A.T @ (jnp.cos(A @ x) * v)

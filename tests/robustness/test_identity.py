"""The notes' side identity for ``y = sin(A x)``, stated correctly (docs/derivation.md).

The notes write ``dy/dx = A^T cos(Ax)``. The Jacobian of ``y [m]`` with respect to ``x [n]`` is
``diag(cos(Ax)) A`` ``[m, n]``; ``A^T cos(Ax)`` ``[n]`` is the gradient of ``sum(y)``, i.e. the
vector-Jacobian product ``v -> A^T (cos(Ax) * v)`` at ``v = 1``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_jax.testing import errors

TOL = 1e-12


def sin_affine(A, x):
  """The notes' side example ``y = sin(A x)``: ``A [m,n]``, ``x [n]`` -> ``y [m]``."""
  return jnp.sin(A @ x)


def sin_affine_jacobian(A, x):
  """``dy/dx = diag(cos(A x)) A``, ``[m, n]`` (the notes write ``A^T cos(Ax)``: that is the
  gradient of ``sum(y)``, i.e. the VJP with v = 1)."""
  return jnp.cos(A @ x)[:, None] * A


def sin_affine_vjp(A, x, v):
  """``v^T (dy/dx) = A^T (cos(A x) * v)``, ``[n]`` for a cotangent ``v [m]``."""
  return A.T @ (jnp.cos(A @ x) * v)


def _draw(m, n, seed=0):
  rng = np.random.default_rng(seed)
  return (jnp.asarray(rng.standard_normal((m, n))), jnp.asarray(rng.standard_normal(n)),
          jnp.asarray(rng.standard_normal(m)))


@pytest.mark.parametrize("m,n", [(5, 3), (3, 5), (4, 4), (200, 200)])
def test_jacobian_is_diag_cos_times_A(x64, m, n):
  A, x, _ = _draw(m, n)
  jac = sin_affine_jacobian(A, x)
  assert jac.shape == (m, n)       # the notes' "[200 x 200]" for m = n = 200
  assert errors(jac, jax.jit(jax.jacobian(sin_affine, argnums=1))(A, x))[1] <= TOL
  assert errors(jac, jax.jit(jax.jacfwd(sin_affine, argnums=1))(A, x))[1] <= TOL


@pytest.mark.parametrize("m,n", [(5, 3), (3, 5), (200, 200)])
def test_vjp_is_A_transpose_cos_times_v(x64, m, n):
  A, x, v = _draw(m, n, seed=1)
  y, vjp = jax.vjp(lambda x: sin_affine(A, x), x)
  assert errors(y, jnp.sin(A @ x))[1] <= TOL
  (ref,) = vjp(v)
  assert errors(sin_affine_vjp(A, x, v), ref)[1] <= TOL
  # v^T J, with the Jacobian above
  assert errors(sin_affine_vjp(A, x, v), v @ sin_affine_jacobian(A, x))[1] <= TOL


def test_notes_expression_is_the_gradient_of_the_sum(x64):
  """``A^T cos(Ax)`` is ``grad sum(sin(Ax))`` = the VJP at v = 1, not the Jacobian."""
  A, x, _ = _draw(6, 4, seed=2)
  notes = A.T @ jnp.cos(A @ x)
  assert notes.shape == (4,)
  assert errors(notes, jax.grad(lambda x: jnp.sum(sin_affine(A, x)))(x))[1] <= TOL
  assert errors(notes, sin_affine_vjp(A, x, jnp.ones(6)))[1] <= TOL
  # For square A, a transposed Jacobian (A^T diag(cos)) has the right shape and is wrong.
  A, x, _ = _draw(5, 5, seed=3)
  transposed = A.T * jnp.cos(A @ x)[None, :]
  assert errors(transposed, jax.jacobian(sin_affine, argnums=1)(A, x))[1] > 1e-2

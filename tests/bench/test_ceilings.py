"""The FLOP count of ``rnn_jax.bench.ceilings`` against an independent count of the matrix
products in the jaxprs that training and inference run."""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import pytest

from bench_reference import B, H, T
from rnn_jax import bench as bm
from rnn_jax.core import gradients, model


def _dot_flops(jaxpr) -> int:
  """Independent count: 2 * prod(output) * prod(contracted dims) for every dot_general in a
  jaxpr, recursing into sub-jaxprs and multiplying by a scan's length."""
  total = 0
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == "dot_general":
      (lhs_contract, _), _ = eqn.params["dimension_numbers"]
      lhs = eqn.invars[0].aval.shape
      total += 2 * math.prod(eqn.outvars[0].aval.shape) * math.prod(lhs[d] for d in lhs_contract)
    times = eqn.params["length"] if eqn.primitive.name == "scan" else 1
    for value in eqn.params.values():
      for sub in value if isinstance(value, (tuple, list)) else (value,):
        inner = sub.jaxpr if hasattr(sub, "consts") else sub if hasattr(sub, "eqns") else None
        if inner is not None:
          total += times * _dot_flops(inner)
  return total


def _abstract(b, t, h, d, k):
  """Shapes only: tracing needs no data and compiles nothing."""
  f32 = lambda *shape: jax.ShapeDtypeStruct(shape, jnp.float32)
  params = model.RNNParams(U=f32(h, h), V=f32(h, d), b=f32(h), W=f32(k, h), c=f32(k))
  return params, f32(b, t, d), f32(b, k)


@pytest.mark.parametrize("shape", [(2, 4, 8, 1, 3), (3, 5, 6, 2, 4)], ids=str)
@pytest.mark.parametrize("unroll", [1, True], ids=["scan", "unrolled"])
def test_flop_formula_matches_the_matmuls_autodiff_runs(shape, unroll):
  b, t, h, d, k = shape
  params, xs, ys = _abstract(b, t, h, d, k)
  grad = jax.make_jaxpr(gradients.loss_and_grad("autodiff", unroll=unroll))(params, xs, ys)
  assert _dot_flops(grad.jaxpr) == b * bm.flops_per_sample(t, h, d, k)
  fwd = jax.make_jaxpr(lambda p, x: model.forward(p, x, unroll=unroll))(params, xs)
  assert _dot_flops(fwd.jaxpr) == b * bm.flops_per_sample(t, h, d, k, training=False)


def test_flop_formula_for_the_notes_network():
  # By hand: T (2H^2 + 2HD) + 2KH and three times the recurrent part for training.
  assert bm.flops_per_sample(24, 200, 1, 3, training=False) == 24 * (80000 + 400) + 1200
  assert bm.flops_per_sample(24, 200, 1, 3) == 24 * (240000 + 800) + 3600 == 5_782_800


def test_bptt_jaxpr_adds_only_the_input_gradient_xla_drops():
  # The hand BPTT also forms dL/dx_t = delta_t V (2HD a step), which nothing uses here.
  params, xs, ys = _abstract(B, T, H, 2, 3)
  jaxpr = jax.make_jaxpr(gradients.loss_and_grad("bptt"))(params, xs, ys)
  assert _dot_flops(jaxpr.jaxpr) == B * (bm.flops_per_sample(T, H, 2, 3) + T * 2 * H * 2)

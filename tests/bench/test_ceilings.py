"""The FLOP count of ``rnn_jax.bench.timing`` against an independent count of the matrix
products in the jaxprs that training and inference run; the dense-rate check and the roofline
against numbers worked out by hand."""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import pytest

from bench_reference import B, H, T
from rnn_jax import bench as bm
from rnn_jax.bench import cell_record
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
  grad = jax.make_jaxpr(gradients.value_and_grad("autodiff", unroll=unroll))(params, xs, ys)
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
  jaxpr = jax.make_jaxpr(gradients.value_and_grad("hand"))(params, xs, ys)
  assert _dot_flops(jaxpr.jaxpr) == B * (bm.flops_per_sample(T, H, 2, 3) + T * 2 * H * 2)


# --------------------------------------------------------------------------- dense rate, roofline


def test_flop_split_of_the_notes_network_by_hand():
  # chain: 24 dependent [B,200]x[200,200] products forward and 24 backward, 2 * 200^2 each
  assert bm.flop_split(24, 200, 1, 3) == (3_840_000, 5_782_800 - 3_840_000)
  assert bm.flop_split(24, 200, 1, 3, training=False) == (1_920_000, 1_930_800 - 1_920_000)


def test_roofline_of_a_known_split_by_hand():
  # 3.84 MFLOP of chain at 20 GFLOP/s = 192 us, 1.9428 MFLOP at 200 GFLOP/s = 9.714 us
  roof = bm.roofline(3_840_000, 1_942_800, 20.0, 200.0)
  assert roof["chain_s"] == pytest.approx(192e-6)
  assert roof["dense_s"] == pytest.approx(9.714e-6)
  assert roof["samples_per_s"] == pytest.approx(1 / 201.714e-6)
  assert roof["gflops"] == pytest.approx(5.7828e-3 / 201.714e-6)


def _record(samples_per_s, variant="autodiff", chain_gflops=None):
  r = {"samples_per_s": samples_per_s, "spread": {}, "calls": 1}
  cfg = bm.BenchConfig()
  return cell_record(cfg, variant, 32, 24, 200, r, {"gflops": 20.0}, {"gflops": 100.0},
                     batched=chain_gflops and {"gflops": chain_gflops})


def test_cell_record_shares_of_dense_and_roofline_by_hand():
  rec = _record(1000.0)                      # 1000 windows/s x 5.7828 MFLOP = 5.7828 GFLOP/s
  assert rec["pct_peak"] == pytest.approx(100 * 5.7828 / 20)
  assert rec["pct_dense"] == pytest.approx(5.7828)
  # roofline: 3.84 MFLOP at 20 GFLOP/s (192 us) + 1.9428 MFLOP at 100 GFLOP/s (19.428 us)
  assert rec["roofline_samples_per_s"] == pytest.approx(1 / 211.428e-6)
  assert rec["pct_roofline"] == pytest.approx(100 * 1000 * 211.428e-6)
  # vmap16's chain runs at the rate of its 16 chains at once: 40 GFLOP/s -> 96 us
  assert _record(1000.0, "vmap16", 40.0)["roofline_samples_per_s"] == pytest.approx(
      1 / 115.428e-6)
  fwd = _record(1000.0, "forward")           # 1.9308 MFLOP a window
  assert fwd["pct_dense"] == pytest.approx(1.9308)


def test_a_record_above_the_dense_rate_is_refused():
  at_limit = _record(100e9 / 5_782_800)      # exactly the dense rate
  assert at_limit["pct_dense"] == pytest.approx(100.0)
  bm.check_below_dense(dict(at_limit, pct_dense=100.0))
  planted = _record(1.01 * 100e9 / 5_782_800)
  with pytest.raises(bm.CeilingError, match=r"autodiff B=32 T=24 H=200: .* 101\.0% of the dense"):
    bm.check_below_dense(planted)
  with pytest.raises(bm.CeilingError):     # a NaN rate is no measurement either
    bm.check_below_dense(dict(at_limit, pct_dense=float("nan")))

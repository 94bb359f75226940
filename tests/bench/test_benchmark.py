"""The benchmark's own logic on tiny sizes: its FLOP count, that every variant trains the same
model as a plain optax step, the JSON and PNG it writes, and its one-line errors.

Nothing here times anything or compares speeds: throughput is measured, never asserted.
"""
from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import REPO
from rnn_jax import bench as bm
from rnn_jax.common import cli
from rnn_jax.core import gradients, model

B, T, H = 2, 4, 8
CFG = bm.BenchConfig(batch_sizes=(B,), seq_lens=(T,), hidden_sizes=(H,), seconds=0.01,
                     repeats=2, fuse_steps=2, fuse_windows=1)
TOL = dict(rtol=2e-5, atol=2e-6)


def _script():
  spec = importlib.util.spec_from_file_location("bench_script", REPO / "experiments" /
                                                "benchmark.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


# --------------------------------------------------------------------------- FLOP count

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


# --------------------------------------------------------------------------- same model

def _reference_optimizer():
  return optax.chain(optax.clip_by_global_norm(CFG.clip), optax.adam(CFG.lr))


@pytest.fixture(scope="module")
def reference_step():
  """A plain optax step on ``jax.value_and_grad(model.loss)``, written out here."""
  opt = _reference_optimizer()

  @jax.jit
  def step(params, opt_state, xs, ys):
    loss, grads = jax.value_and_grad(model.loss)(params, xs, ys)
    updates, opt_state = opt.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  return step, opt


def _close(a, b):
  jax.tree.map(lambda x, y: np.testing.assert_allclose(np.asarray(x), np.asarray(y), **TOL),
               a, b)


@pytest.mark.parametrize("variant", ["autodiff", "autodiff_unroll", "bptt"])
def test_step_variants_train_like_a_plain_optax_step(variant, reference_step):
  ref, opt = reference_step
  params, xs, ys = bm.problem(CFG, B, T, H)
  state = (params, opt.init(params))
  work = bm.build(CFG, variant, B, T, H)
  assert work.compile_s > 0 and work.samples_per_call == B
  losses = []
  for _ in range(2):
    out = work.call()
    p, s, loss = ref(*state, xs, ys)
    state = (p, s)
    np.testing.assert_allclose(out[2], loss, **TOL)
    assert bool(out[3])
    _close(out[0], p)
    losses.append(float(out[2]))
  assert losses[1] != losses[0]                               # it trained


def test_flax_peer_is_the_same_model_and_trains_the_same(reference_step):
  ref, opt = reference_step
  params, xs, ys = bm.problem(CFG, B, T, H)
  variables = bm.flax_params(params)
  module = bm.flax_module(H, CFG.output_size)
  np.testing.assert_allclose(module.apply(variables, xs), model.forward(params, xs), **TOL)
  work = bm.build(CFG, "flax", B, T, H)
  state = (params, opt.init(params))
  for _ in range(2):
    out = work.call()
    p, s, loss = ref(*state, xs, ys)
    state = (p, s)
    np.testing.assert_allclose(out[2], loss, **TOL)
    _close(out[0], bm.flax_params(p))


def test_torch_peer_trains_the_same_model(reference_step):
  if not bm.torch_available():
    pytest.skip("torch is not installed (optional: pip install '.[torch]')")
  ref, opt = reference_step
  params, xs, ys = bm.problem(CFG, B, T, H)
  work = bm.torch_workload(CFG, B, T, H)
  peer = work.info["peer"]
  state = (params, opt.init(params))
  for _ in range(2):
    loss = work.call()
    p, s, ref_loss = ref(*state, xs, ys)
    state = (p, s)
    np.testing.assert_allclose(float(loss), ref_loss, rtol=1e-5)
  _close(peer.params(), p)


def test_forward_variant_is_model_forward():
  params, xs, _ = bm.problem(CFG, B, T, H)
  work = bm.build(CFG, "forward", B, T, H)
  assert work.block_each
  np.testing.assert_allclose(work.call(), model.forward(params, xs), **TOL)


def _epoch_reference(ref, params, opt_state, xs, ys, perm, steps):
  losses = []
  for s in range(steps):
    idx = np.asarray(perm[s * B:(s + 1) * B])
    params, opt_state, loss = ref(params, opt_state, xs[idx], ys[idx])
    losses.append(loss)
  return params, np.asarray(losses)


def test_fused_variant_runs_the_steps_of_its_permutation(reference_step):
  ref, opt = reference_step
  (params, opt_state, xs, ys, perm), steps = bm.fused_inputs(CFG, B, T, H)
  assert steps == 2 and xs.shape == (steps * B, T, 1)
  work = bm.build(CFG, "fused", B, T, H)
  assert work.samples_per_call == steps * B and work.info["steps_per_call"] == steps
  out = work.call()
  want_params, want_losses = _epoch_reference(ref, params, opt.init(params), xs, ys, perm, steps)
  np.testing.assert_allclose(out[2], want_losses, **TOL)
  _close(out[0], want_params)


def test_vmap16_trains_each_model_like_one_model_alone(reference_step):
  ref, opt = reference_step
  (params, _, xs, ys, perm), steps = bm.fused_inputs(CFG, B, T, H, models=bm.MODELS)
  assert perm.shape == (bm.MODELS, steps * B)
  assert not np.allclose(params.U[0], params.U[1])            # independent initialisations
  work = bm.build(CFG, "vmap16", B, T, H)
  assert work.samples_per_call == bm.MODELS * steps * B
  out = work.call()
  assert out[2].shape == (bm.MODELS, steps)
  for i in (0, 7, bm.MODELS - 1):
    p_i = jax.tree.map(lambda a: a[i], params)
    want_params, want_losses = _epoch_reference(ref, p_i, opt.init(p_i), xs, ys, perm[i], steps)
    np.testing.assert_allclose(out[2][i], want_losses, **TOL)
    _close(jax.tree.map(lambda a: a[i], out[0]), want_params)


# --------------------------------------------------------------------------- timing logic

def test_measure_blocks_and_counts_without_timing_anything():
  calls, blocked = [], []
  work = bm.Workload("fake", 3, lambda: calls.append(1) or len(calls),
                     block=lambda x: blocked.append(x) or x)
  r = bm.measure(work, seconds=0.002, repeats=3)
  assert len(r["per_repeat"]) == 3 and r["calls"] >= 1
  s = r["spread"]
  assert s["min"] <= s["q1"] <= r["samples_per_s"] <= s["q3"] <= s["max"]
  # warm-up (1) and calibration (>= 1) are not timed; every repetition ends with a block
  assert len(calls) >= 2 + 3 * r["calls"]
  assert blocked[-1] == len(calls)
  blocked.clear()
  bm.measure(bm.Workload("fake", 1, lambda: 0, block=lambda x: blocked.append(x),
                         block_each=True), seconds=0.002, repeats=2)
  assert len(blocked) >= 2 + 2 * 2                           # after every call


def test_fused_steps_stay_within_bounds():
  cfg = bm.BenchConfig(fuse_steps=64, fuse_windows=4096)
  assert [bm.fused_steps(cfg, b) for b in (1, 32, 256, 1024, 4096, 8192)] == [64, 64, 16, 4, 2, 2]


# --------------------------------------------------------------------------- the script

@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
  out = tmp_path_factory.mktemp("bench")
  variants = "autodiff,forward" + (",torch" if bm.torch_available() else "")
  argv = ["--batch-sizes", str(B), "--seq-lens", str(T), "--hidden-sizes", str(H),
          "--variants", variants, "--seconds", "0.01", "--repeats", "2", "--fuse-steps", "2",
          "--remat-memory", "--remat-seq-lens", "4", "--remat-batch", "2",
          "--json", str(out / "bench.json"), "--plot", str(out / "bench.png")]
  assert cli.main(_script().run, argv) == 0
  return out, json.loads((out / "bench.json").read_text())


def test_json_has_a_record_per_cell_with_the_fields(bench_run):
  out, result = bench_run
  assert set(result["versions"]) >= {"jax", "jaxlib", "flax", "optax", "torch"}
  assert result["versions"]["jax"] == jax.__version__
  assert result["device"]["kind"] and result["device"]["count"] >= 1
  assert [(p["batch"], p["T"], p["H"]) for p in result["peaks"]] == [(B, T, H)]
  assert result["peaks"][0]["gflops"] > 0
  variants = [r["variant"] for r in result["records"]]
  assert variants == ["autodiff", "forward"] + (["torch"] if bm.torch_available()
                                                          else [])
  for r in result["records"]:
    assert {"variant", "batch", "T", "H", "samples_per_s", "gflops", "pct_peak", "compile_s",
            "spread"} <= set(r)
    assert (r["batch"], r["T"], r["H"]) == (B, T, H)
    assert r["gflops"] == pytest.approx(r["samples_per_s"] * r["flops_per_sample"] / 1e9)
    assert r["pct_peak"] == pytest.approx(100 * r["gflops"] / result["peaks"][0]["gflops"])
    assert r["spread"]["min"] <= r["samples_per_s"] <= r["spread"]["max"]
    assert (r["compile_s"] is None) == (r["variant"] == "torch")
  if bm.torch_available():
    assert result["records"][0]["vs_torch"] > 0
    assert result["records"][-1]["threads"] in bm.torch_threads()
  rows = result["remat_memory"]
  assert [(r["T"], r["remat"]) for r in rows] == [(4, False), (4, True)]
  assert all(r["argument_bytes"] > 0 and r["peak_bytes"] >= r["temp_bytes"] for r in rows)
  assert result["devices_sweep"] is None


def test_plot_is_written_as_png_and_nothing_else_is_left(bench_run):
  out, _ = bench_run
  assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  assert sorted(p.name for p in out.iterdir()) == ["bench.json", "bench.png"]


@pytest.mark.parametrize("argv", [
    ["--batch-sizes", "32,1.5"], ["--batch-sizes", "0"], ["--batch-sizes", "a,b"],
    ["--batch-sizes", ""], ["--variants", "autodiff,nope"], ["--seconds", "-1"],
    ["--seconds", "nan"], ["--repeats", "0"], ["--hidden-sizes", "-3"], ["--bogus"],
    ["--json", "MISSING/out.json"], ["--plot", "."],
], ids=lambda a: " ".join(a))
def test_bad_arguments_exit_2_with_one_line_and_write_nothing(argv, tmp_path, capsys,
                                                              monkeypatch):
  monkeypatch.chdir(tmp_path)
  argv = argv + ["--json", str(tmp_path / "out.json")] if "--json" not in argv else argv
  assert cli.main(_script().run, argv) == 2
  err = capsys.readouterr().err
  assert err.startswith("error: ") and err.count("\n") == 1, err
  assert list(tmp_path.iterdir()) == []


def test_devices_sweep_reports_each_device_count_on_4_simulated_devices():
  # A fresh process: the device count is fixed when JAX starts.
  code = ("import json; from rnn_jax import bench as bm; "
          "cfg = bm.BenchConfig(batch_sizes=(4,), seq_lens=(3,), hidden_sizes=(4,), "
          "seconds=0.01, repeats=1); print(json.dumps(bm.devices_sweep(cfg)))")
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
             PYTHONPATH=str(REPO))
  done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                        timeout=300, cwd=REPO)
  assert done.returncode == 0, done.stderr
  rows = json.loads(done.stdout.strip().splitlines()[-1])
  assert [(r["batch"], r["devices"]) for r in rows] == [(4, 1), (4, 2), (4, 4)]
  assert all(r["samples_per_s"] > 0 and r["variant"] == "data_parallel" for r in rows)

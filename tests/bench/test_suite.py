"""The benchmark end to end, experiments/benchmark.py over ``rnn_jax.bench.suite``, on tiny
sizes: the JSON, PNG and markdown it writes, its one-line errors, and the device sweep on
simulated devices.

Nothing here times anything or compares speeds: throughput is measured, never asserted.
"""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import jax
import pytest

from bench_reference import B, H, T
from conftest import REPO, load_script
from rnn_jax import bench as bm
from rnn_jax.bench import suite


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
  out = tmp_path_factory.mktemp("bench")
  variants = "autodiff,forward" + (",torch" if bm.torch_available() else "")
  argv = ["--batch-sizes", str(B), "--windows", str(T), "--hidden-sizes", str(H),
          "--variants", variants, "--seconds", "0.01", "--repeats", "2", "--fuse-steps", "2",
          "--remat-memory", "--remat-windows", "4", "--remat-batch-size", "2",
          "--dense-size", "128",
          "--json", str(out / "bench.json"), "--plot", str(out / "bench.png"),
          "--markdown", str(out / "bench.md")]
  assert load_script("benchmark.py").main(argv) == 0
  return out, json.loads((out / "bench.json").read_text())


def test_json_has_a_record_per_cell_with_the_fields(bench_run):
  out, result = bench_run
  assert set(result["versions"]) >= {"jax", "jaxlib", "flax", "optax", "torch"}
  assert result["versions"]["jax"] == jax.__version__
  assert result["device"]["kind"] and result["device"]["count"] >= 1
  platform = jax.devices()[0].platform
  assert result["precision"] == {"setting": "highest", "products": "highest"}
  assert result["config"]["precision"] == "highest"
  assert [(p["batch"], p["T"], p["H"]) for p in result["peaks"]] == [(B, T, H)]
  assert result["peaks"][0]["gflops"] > 0
  variants = [r["variant"] for r in result["records"]]
  assert variants == ["autodiff", "forward"] + (["torch"] if bm.torch_available()
                                                          else [])
  square = result["dense"]["square"]
  assert sorted(square["by_n"]) == ["128", "32", "64"] and square["gflops"] > 0
  assert square["gflops"] == square["by_n"][str(square["n"])] == max(square["by_n"].values())
  [dense] = result["dense"]["cells"]
  assert dense["chain_gflops"] == result["peaks"][0]["gflops"]
  assert dense["gflops"] == max(dense["rows_gflops"], dense["square_gflops"],
                                dense["chain_gflops"])
  [roof] = result["rooflines"]
  assert (roof["batch"], roof["T"], roof["H"]) == (B, T, H)
  assert roof["training"]["samples_per_s"] < roof["forward"]["samples_per_s"]
  for r in result["records"]:
    assert {"variant", "batch", "T", "H", "samples_per_s", "gflops", "pct_peak", "compile_s",
            "spread", "pct_dense", "dense_gflops", "pct_roofline",
            "roofline_samples_per_s"} <= set(r)
    assert r["dense_gflops"] == dense["gflops"]
    kind = "forward" if r["variant"] == "forward" else "training"
    assert r["roofline_samples_per_s"] == roof[kind]["samples_per_s"]
    assert (r["batch"], r["T"], r["H"]) == (B, T, H)
    # (the rate arithmetic is checked on a fake clock in test_timing_clock.py, the FLOP count
    # against the jaxpr's matmuls in test_ceilings.py: no formula is recomputed here)
    assert r["samples_per_s"] > 0 and r["gflops"] > 0 and r["pct_peak"] > 0
    assert (r["compile_s"] is None) == (r["variant"] == "torch")
    # every record names where it ran and at what precision
    assert (r["device_kind"], r["platform"]) == (jax.devices()[0].device_kind, platform)
    assert (r["precision"], r["products"]) == ("highest", "highest")
  if bm.torch_available():
    assert result["records"][0]["vs_torch"] > 0
    assert result["records"][-1]["threads"] in bm.torch_threads()
  rows = result["remat_memory"]
  assert [(r["T"], r["remat"]) for r in rows] == [(4, False), (4, True)]
  assert all(r["argument_bytes"] > 0 and r["peak_bytes"] >= r["temp_bytes"] for r in rows)
  assert all(r["precision"] == "highest" and r["platform"] == platform for r in rows)
  assert result["devices_sweep"] is None


def test_plot_and_markdown_are_written_and_nothing_else_is_left(bench_run):
  out, result = bench_run
  assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  assert (out / "bench.md").read_text() == bm.markdown(result)
  assert "matmul precision highest (highest products)" in bm.markdown(result).splitlines()[0]
  assert sorted(p.name for p in out.iterdir()) == ["bench.json", "bench.md", "bench.png"]


@pytest.mark.parametrize("argv", [
    ["--batch-sizes", "32,1.5"], ["--batch-sizes", "0"], ["--batch-sizes", "a,b"],
    ["--batch-sizes", ""], ["--variants", "autodiff,nope"], ["--seconds", "-1"],
    ["--seconds", "nan"], ["--repeats", "0"], ["--hidden-sizes", "-3"], ["--bogus"],
    ["--json", "MISSING/out.json"], ["--plot", "."], ["--dense-size", "0"],
    ["--markdown", "MISSING/out.md"], ["--markdown", "."], ["--precision", "fp16"],
], ids=lambda a: " ".join(a))
def test_bad_arguments_exit_2_with_one_line_and_write_nothing(argv, tmp_path, capsys,
                                                              monkeypatch):
  monkeypatch.chdir(tmp_path)
  argv = argv + ["--json", str(tmp_path / "out.json")] if "--json" not in argv else argv
  assert load_script("benchmark.py").main(argv) == 2
  err = capsys.readouterr().err
  assert err.startswith("error: ") and err.count("\n") == 1, err
  assert list(tmp_path.iterdir()) == []


def test_devices_sweep_reports_each_device_count_on_4_simulated_devices():
  # A fresh process: the device count is fixed when JAX starts.
  code = ("import json; from rnn_jax import bench as bm; "
          "cfg = bm.BenchConfig(batch_sizes=(4,), windows=(3,), hidden_sizes=(4,), "
          "seconds=0.01, repeats=1); print(json.dumps(bm.devices_sweep(cfg)))")
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
             PYTHONPATH=str(REPO))
  done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                        timeout=300, cwd=REPO)
  assert done.returncode == 0, done.stderr
  rows = json.loads(done.stdout.strip().splitlines()[-1])
  assert [(r["batch"], r["devices"]) for r in rows] == [(4, 1), (4, 2), (4, 4)]
  assert all(r["samples_per_s"] > 0 and r["variant"] == "data_parallel" for r in rows)
  assert all(r["precision"] == "highest" and r["platform"] == "cpu" for r in rows)


def _planted_dense(monkeypatch, rates):
  """``dense_peak`` (and ``square_peak``) in the suite return the planted GFLOP/s in turn."""
  calls = iter(rates)

  def dense_peak(cfg, batch, T, H, square, chain):
    g = next(calls)
    return {"batch": batch, "T": T, "H": H, "rows_gflops": g, "square_gflops": g, "gflops": g}

  monkeypatch.setattr(suite, "dense_peak", dense_peak)
  monkeypatch.setattr(suite, "square_peak",
                      lambda cfg: {"n": cfg.dense_size, "gflops": 0.0, "by_n": {}})


TINY = bm.BenchConfig(batch_sizes=(B,), windows=(T,), hidden_sizes=(H,), variants=("forward",),
                      seconds=0.01, repeats=2)


def test_a_record_above_the_dense_rate_has_it_timed_again(monkeypatch):
  """A planted dense rate far below the record's: timed again (the faster kept), the run goes on."""
  _planted_dense(monkeypatch, [1e-9, 1e9])
  result = bm.run_cells(TINY, io.StringIO())
  [dense], [rec] = result["dense"]["cells"], result["records"]
  assert dense["remeasured"] and dense["gflops"] == 1e9
  assert rec["dense_gflops"] == 1e9 and rec["pct_dense"] < 100
  [roof] = result["rooflines"]                                  # made from the rate timed again
  assert roof["dense_gflops"] == 1e9


def test_a_record_still_above_the_dense_rate_stops_the_run(monkeypatch):
  _planted_dense(monkeypatch, [1e-9, 1e-9])
  with pytest.raises(bm.CeilingError, match="forward B=2 T=4 H=8: .* of the dense GEMM rate"):
    bm.run_cells(TINY, io.StringIO())


def test_the_variants_of_a_point_are_timed_side_by_side_with_the_chain_peak(monkeypatch):
  """One measure_side_by_side call per (B, T, H) holds both chain peaks and every JAX variant
  there, so their ratios and % of peak come from the same rounds."""
  calls = []
  real = suite.measure_side_by_side

  def recording(works, seconds, repeats):
    calls.append([w.variant for w in works])
    return real(works, seconds, repeats)

  monkeypatch.setattr(suite, "measure_side_by_side", recording)
  cfg = bm.BenchConfig(batch_sizes=(B, 2 * B), windows=(T,), hidden_sizes=(H,),
                       variants=("autodiff", "hand", "forward"), seconds=0.01, repeats=2,
                       dense_size=64)
  result = bm.run_cells(cfg, io.StringIO())
  assert calls == [["peak", "peak", "autodiff", "hand", "forward"]] * 2
  assert [(r["variant"], r["batch"]) for r in result["records"]] == [
      (v, b) for b in (B, 2 * B) for v in ("autodiff", "hand", "forward")]

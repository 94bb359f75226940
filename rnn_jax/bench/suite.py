"""The benchmark run: every cell, the optional sweeps, the summary and the files.

A cell is one (variant, B, T, H). At each (B, T, H) ``_measure_point`` builds every JAX
variant (one compile line each), times them side by side with the chain peak in rounds
(``timing.measure_side_by_side``), then torch alone (it switches thread settings) and the dense
rate, and prints the ceilings and one result line per variant.
"""
from __future__ import annotations

import datetime
import time

import jax

from rnn_jax import train
from rnn_jax.bench.ceilings import (FLOP_FORMULAS, chain_peak, chain_workloads, check_below_dense,
                                    dense_peak, flop_split, flops_per_sample, roofline,
                                    square_peak)
from rnn_jax.bench.config import MODELS, BenchConfig, check_output_path, make_optimizer
from rnn_jax.bench.results import (add_ratios, cell_record, cell_row, device_info, emit,
                                   fmt_rate, plot, summary, write_markdown)
from rnn_jax.bench.timing import Workload, measure, measure_side_by_side
from rnn_jax.bench.torch_peer import measure_torch, torch_available
from rnn_jax.bench.workloads import build, problem, train_step_fn
from rnn_jax.common import fileio
from rnn_jax.common.versions import versions
from rnn_jax.train import parallel


def run_cells(cfg: BenchConfig, out=None) -> dict:
  """Runs every cell of ``cfg``; returns the result dict (see ``run`` for the JSON layout)."""
  variants = [v for v in cfg.variants if v != "torch" or torch_available()]
  if "torch" in cfg.variants and "torch" not in variants:
    emit("torch: not installed (pip install '.[torch]'); the torch variant is skipped", out)
  records, peaks, batched_peaks, denses, rooflines = [], [], [], [], []
  square = square_peak(cfg)
  emit(f"dense  [n,n]x[n,n] n={square['n']}: {square['gflops']:.1f} GFLOP/s (fastest of "
       f"{cfg.repeats}; " + ", ".join(f"n={n}: {g:.1f}" for n, g in square["by_n"].items())
       + ")", out)
  for T in cfg.windows:
    for H in cfg.hidden_sizes:
      for B in cfg.batch_sizes:
        cell = _measure_point(cfg, variants, B, T, H, square, out)
        peaks.append(cell["peak"])
        denses.append(cell["dense"])
        rooflines.append(cell["roofline"])
        if cell["peak_batched"] is not None:
          batched_peaks.append(cell["peak_batched"])
        records.extend(cell["records"])
  add_ratios(records)
  return {"records": records, "peaks": peaks, "peaks_batched": batched_peaks,
          "dense": {"square": square, "cells": denses}, "rooflines": rooflines}


def _measure_point(cfg: BenchConfig, variants: list[str], B: int, T: int, H: int,
                   square: dict, out=None) -> dict:
  """Every variant at one (B, T, H), with its ceilings. If a record runs above the dense rate,
  the rate is timed once more (the faster kept) before anything is made from it; a record still
  above it stops the run (``check_below_dense``)."""
  cell_variants = []
  for variant in variants:
    if variant == "vmap16" and B > cfg.vmap_max_batch:
      emit(f"{variant:<16s} B={B:<5d} skipped (B > --vmap-max-batch {cfg.vmap_max_batch})", out)
    else:
      cell_variants.append(variant)
  chains = chain_workloads(cfg, B, T, H)
  batched = chain_workloads(cfg, B, T, H, models=MODELS) if "vmap16" in cell_variants else []
  built = {}
  for variant in cell_variants:
    if variant != "torch":
      built[variant] = work = build(cfg, variant, B, T, H)
      emit(f"compile {variant} B={B} T={T} H={H}: {work.compile_s:.2f} s", out)
  works = chains + batched + list(built.values())
  n_chains, n_ceilings = len(chains), len(chains) + len(batched)
  seconds = [cfg.seconds / 2] * n_ceilings + [cfg.seconds] * len(built)
  results = measure_side_by_side(works, seconds, cfg.repeats)
  peak = chain_peak(chains, results[:n_chains], B, T, H)
  peak_batched = (chain_peak(batched, results[n_chains:n_ceilings], B, T, H, models=MODELS)
                  if batched else None)
  timed = dict(zip(built, results[n_ceilings:]))
  if "torch" in cell_variants:
    timed["torch"] = measure_torch(cfg, B, T, H)
  dense = dense_peak(cfg, B, T, H, square, peak)

  def records_against(dense):
    return [_record(cfg, v, B, T, H, timed[v], built.get(v), peak, dense,
                    peak_batched if v == "vmap16" else None) for v in cell_variants]

  records = records_against(dense)
  above = [rec["variant"] for rec in records if rec["pct_dense"] > 100.0]
  if above:   # a busy moment may have slowed the dense timing: time it once more, keep the faster
    again = dense_peak(cfg, B, T, H, square_peak(cfg), peak)
    for key in ("rows_gflops", "square_gflops", "gflops"):
      dense[key] = max(dense[key], again[key])
    dense["remeasured"] = True
    emit(f"dense  B={B:<5d} T={T} H={H}: timed again after {', '.join(above)} ran above it: "
         f"{dense['gflops']:.1f} GFLOP/s", out)
    records = records_against(dense)
  emit(f"peak   B={B:<5d} T={T} H={H}: {peak['gflops']:.1f} GFLOP/s "
       f"(chain of {T} [B,H]x[H,H] products, unroll={peak['unroll']}); dense "
       f"{dense['gflops']:.1f} GFLOP/s ([T*B,H]x[H,H] {dense['rows_gflops']:.1f})", out)
  roof = _roofline_row(cfg, B, T, H, peak, dense, out)
  for rec in records:
    check_below_dense(rec)
    emit(cell_row(rec), out)
  return {"peak": peak, "peak_batched": peak_batched, "dense": dense, "roofline": roof,
          "records": records}


def _record(cfg: BenchConfig, variant: str, B: int, T: int, H: int, r: dict,
            work: Workload | None, peak: dict, dense: dict, chain: dict | None) -> dict:
  """One timed cell's record; ``chain``: vmap16's batched chain peak (``pct_peak_batched``)."""
  info = work.info if work is not None else None
  compile_s = work.compile_s if work is not None else None
  rec = cell_record(cfg, variant, B, T, H, r, peak, info, compile_s, dense,
                    chain["gflops"] if chain else None)
  if chain is not None:
    rec["peak_batched_gflops"] = chain["gflops"]
    rec["pct_peak_batched"] = 100.0 * rec["gflops"] / chain["gflops"]
  return rec


def _roofline_row(cfg: BenchConfig, B: int, T: int, H: int, peak: dict, dense: dict,
                  out=None) -> dict:
  """The roofline of one (B, T, H), training and forward, printed and returned."""
  row = {"batch": B, "T": T, "H": H, "chain_gflops": peak["gflops"],
         "dense_gflops": dense["gflops"]}
  for kind, training in (("training", True), ("forward", False)):
    chain, rest = flop_split(T, H, cfg.input_size, cfg.output_size, training=training)
    row[kind] = dict(roofline(chain, rest, peak["gflops"], dense["gflops"]),
                     chain_flops=chain, dense_flops=rest)
  emit(f"roofline B={B:<5d} T={T} H={H}: training {fmt_rate(row['training']['samples_per_s'])}"
       f" samples/s, forward {fmt_rate(row['forward']['samples_per_s'])} samples/s (chain at "
       f"the peak, the rest at the dense rate)", out)
  return row


def devices_sweep(cfg: BenchConfig, out=None) -> list[dict]:
  """Training throughput of the ``autodiff`` step, batch sharded over a ``'data'`` mesh and
  parameters replicated (``rnn_jax.train.parallel``), on 1, 2, 4, ... devices, every B divisible."""
  n_all = jax.device_count()
  counts = sorted({min(2 ** i, n_all) for i in range(n_all.bit_length() + 1)})
  if n_all == 1:
    emit("devices sweep: 1 device only; simulate more on a CPU with "
         "XLA_FLAGS=--xla_force_host_platform_device_count=4 (they share the same cores)",
         out)
  rows = []
  for T in cfg.windows:
    for H in cfg.hidden_sizes:
      for B in cfg.batch_sizes:
        for n in counts:
          if B % n:
            continue
          row = _sweep_cell(cfg, n, B, T, H)
          rows.append(row)
          s = row["spread"]
          emit(f"devices={n:<3d} B={B:<5d} T={T} H={H}: {fmt_rate(row['samples_per_s']):>10s}"
               f" samples/s [{fmt_rate(s['min'])}..{fmt_rate(s['max'])}]"
               f"  {row['gflops']:.1f} GFLOP/s", out)
  return rows


def _sweep_cell(cfg: BenchConfig, n: int, B: int, T: int, H: int) -> dict:
  """One row of the sweep: the ``autodiff`` step on ``n`` devices, compiled and timed."""
  mesh = parallel.data_mesh(n)
  params, xs, ys = problem(cfg, B, T, H)
  opt_state = make_optimizer(cfg).init(params)
  rep, data = parallel.replicated(mesh), parallel.batch_sharding(mesh)
  params, opt_state = parallel.put((params, opt_state), rep)
  xs, ys = parallel.put((xs, ys), data)
  step = parallel.shard_step(train_step_fn(cfg, "autodiff", T), mesh)
  t0 = time.perf_counter()
  step.lower(params, opt_state, xs, ys).compile()
  compile_s = time.perf_counter() - t0
  state = [params, opt_state]

  def call():
    o = step(state[0], state[1], xs, ys)
    state[0], state[1] = o[0], o[1]
    return o

  r = measure(Workload("data_parallel", B, call), cfg.seconds, cfg.repeats)
  fps = flops_per_sample(T, H, cfg.input_size, cfg.output_size)
  return {"variant": "data_parallel", "devices": n, "batch": B, "T": T, "H": H,
          "samples_per_s": r["samples_per_s"], "spread": r["spread"],
          "gflops": r["samples_per_s"] * fps / 1e9, "compile_s": compile_s}


def remat_memory(cfg: BenchConfig, out=None) -> list[dict]:
  """Compiled memory of the training step (``autodiff``) with and without ``jax.checkpoint``
  for every T of ``remat_windows``, from XLA's ``compiled.memory_analysis()`` (bytes)."""
  H, B = cfg.hidden_sizes[0], cfg.remat_batch_size
  rows = []
  for T in cfg.remat_windows:
    params, xs, ys = problem(cfg, B, T, H)
    opt_state = make_optimizer(cfg).init(params)
    for remat in (False, True):
      step = train.make_train_step(make_optimizer(cfg), "autodiff", 1, remat)
      t0 = time.perf_counter()
      ma = jax.jit(step).lower(params, opt_state, xs, ys).compile().memory_analysis()
      compile_s = time.perf_counter() - t0
      temp, arg = int(ma.temp_size_in_bytes), int(ma.argument_size_in_bytes)
      outb, alias = int(ma.output_size_in_bytes), int(ma.alias_size_in_bytes)
      row = {"T": T, "batch": B, "H": H, "remat": remat, "temp_bytes": temp,
             "argument_bytes": arg, "output_bytes": outb, "alias_bytes": alias,
             "peak_bytes": temp + arg + outb - alias, "compile_s": compile_s}
      rows.append(row)
      emit(f"memory T={T:<5d} B={B} H={H} remat={str(remat):<5s}: temp {temp:>12,d} B, "
           f"arguments {arg:>10,d} B, outputs {outb:>10,d} B, peak {row['peak_bytes']:>12,d} B",
           out)
  return rows


def run(cfg: BenchConfig, json_path=None, plot_path=None, out=None, markdown_path=None) -> dict:
  """The whole benchmark: device and versions, the cells, the optional sweeps, the summary,
  then the JSON, PNG and markdown, each written atomically. The JSON's fields are listed in
  docs/benchmarking.md."""
  json_path = check_output_path("--json", json_path)
  plot_path = check_output_path("--plot", plot_path)
  markdown_path = check_output_path("--markdown", markdown_path)
  started = time.perf_counter()
  dev, vers = device_info(), versions()
  emit(f"device: {dev['kind']} ({dev['platform']}), {dev['count']} device(s); host "
       f"{dev['host_cpu']}, {dev['host_cores']} cores", out)
  emit("versions: " + ", ".join(f"{k} {v}" for k, v in vers.items()), out)
  emit(f"FLOPs per window: training {FLOP_FORMULAS['training']}, forward "
       f"{FLOP_FORMULAS['forward']} (matrix products only)", out)
  result = {"device": dev, "versions": vers, "config": cfg.to_dict(),
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "flops_per_sample": dict(FLOP_FORMULAS)}
  result.update(run_cells(cfg, out))
  result["devices_sweep"] = devices_sweep(cfg, out) if cfg.devices_sweep else None
  result["remat_memory"] = remat_memory(cfg, out) if cfg.remat_memory else None
  result["elapsed_s"] = time.perf_counter() - started
  summary(result, out)
  if json_path is not None:
    fileio.write_json(json_path, result)
    emit(f"wrote {json_path}", out)
  if plot_path is not None:
    plot(result, plot_path)
    emit(f"wrote {plot_path}", out)
  if markdown_path is not None:
    write_markdown(markdown_path, result)
    emit(f"wrote {markdown_path}", out)
  return result

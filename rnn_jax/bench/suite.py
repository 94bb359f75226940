"""The benchmark run: every cell (a variant at one (B, T, H)), the optional sweeps, outputs."""
from __future__ import annotations

import datetime
import itertools
import os
import platform
import sys
import time
from pathlib import Path

import jax

from rnn_jax import train
from rnn_jax.bench.config import MODELS, VARIANTS, BenchConfig, check_output_path, make_optimizer
from rnn_jax.bench.timing import (FLOP_FORMULAS, chain_peak, chain_workloads, check_below_dense,
                                  dense_peak, flop_split, flops_per_sample, measure,
                                  measure_side_by_side, roofline, square_peak)
from rnn_jax.bench.workloads import (build, measure_torch, problem, torch_available,
                                     training_workload)
from rnn_jax.common import fileio
from rnn_jax.common.versions import versions
from rnn_jax.core import precision
from rnn_jax.train import parallel


def fmt_rate(x) -> str:
  return f"{x:,.0f}"                                       # 12,345


def emit(line: str = "", out=None) -> None:
  print(line, file=out or sys.stdout, flush=True)


def products(setting: str, platform: str) -> str:
  """What float32 products are at ``setting`` on ``platform`` (rnn_jax.core.precision.resolve);
  the setting itself on a platform it does not know."""
  try:
    return precision.resolve(setting, platform)
  except ValueError:
    return setting


def device_fields(cfg: BenchConfig, variant: str = "", r: dict | None = None) -> dict:
  """Where a record ran and at what precision: ``device_kind``, ``platform`` (JAX's first
  device; the torch peer's own when it runs elsewhere), ``precision`` (the setting) and
  ``products`` (what float32 products are there: "highest", "tf32" or "bf16")."""
  d = jax.devices()[0]
  fields = {"device_kind": d.device_kind, "platform": d.platform, "precision": cfg.precision,
            "products": products(cfg.precision, d.platform)}
  if variant == "torch" and r is not None:
    if r.get("device") == "cpu" and d.platform != "cpu":
      fields.update(device_kind="cpu", platform="cpu")
    fields["products"] = r.get("precision", fields["products"])
  return fields


def cell_record(cfg: BenchConfig, variant, batch, T, H, r, peak, dense, work=None,
                batched=None) -> dict:
  """One cell's JSON record from ``measure``'s ``r`` against the chain ``peak`` and ``dense``
  rate; vmap16 passes its ``batched`` chain peak (its roofline's chain rate); torch: no ``work``."""
  training = variant != "forward"
  D, K = cfg.input_size, cfg.output_size
  fps = flops_per_sample(T, H, D, K, training=training)
  gflops = r["samples_per_s"] * fps / 1e9
  roof = roofline(*flop_split(T, H, D, K, training=training), (batched or peak)["gflops"],
                  dense["gflops"])
  rec = {"variant": variant, "batch": batch, "T": T, "H": H, "D": D, "K": K,
         "samples_per_s": r["samples_per_s"], "gflops": gflops,
         "pct_peak": 100.0 * gflops / peak["gflops"], "dense_gflops": dense["gflops"],
         "pct_dense": 100.0 * gflops / dense["gflops"],
         "roofline_samples_per_s": roof["samples_per_s"],
         "pct_roofline": 100.0 * r["samples_per_s"] / roof["samples_per_s"],
         "compile_s": work.compile_s if work else None, "spread": r["spread"],
         "repeats": cfg.repeats, "calls_per_repeat": r["calls"], "flops_per_sample": fps}
  if batched:
    rec["peak_batched_gflops"] = batched["gflops"]
    rec["pct_peak_batched"] = 100.0 * gflops / batched["gflops"]
  info = work.info if work else {}
  rec.update({k: info[k] for k in ("steps_per_call", "models") if k in info})
  rec.update({k: r[k] for k in ("threads", "by_threads", "device") if k in r})
  rec.update(device_fields(cfg, variant, r))
  return rec


def cell_row(rec: dict) -> str:
  s, extra = rec["spread"], ""
  if "threads" in rec:
    extra = f"  threads={rec['threads']} (" + ", ".join(
        f"{k}: {fmt_rate(v)}" for k, v in rec["by_threads"].items()) + f") on {rec['device']}"
  if "steps_per_call" in rec:
    models = f"{rec['models']} models, " if rec.get("models", 1) > 1 else ""
    extra += f"  {models}{rec['steps_per_call']} steps/call"
  return (f"{rec['variant']:<16s} B={rec['batch']:<5d} T={rec['T']} H={rec['H']}: "
          f"{fmt_rate(rec['samples_per_s']):>10s} samples/s "
          f"[{fmt_rate(s['min'])}..{fmt_rate(s['max'])}]  {rec['gflops']:7.1f} GFLOP/s "
          f"{rec['pct_peak']:5.1f}% of peak {rec['pct_dense']:5.1f}% of dense "
          f"{rec['pct_roofline']:5.1f}% of roofline{extra}")


def add_ratios(records: list[dict]) -> None:
  """Adds ``vs_torch``, ``vs_flax`` (throughput / the peer's, same cell) to every JAX training
  record and ``vs_fused`` (16 models' throughput / one fused model's) to vmap16's."""
  by = {(r["variant"], r["batch"], r["T"], r["H"]): r for r in records}
  for r in records:
    cell = (r["batch"], r["T"], r["H"])
    for peer in ("torch", "flax"):
      peer_rec = by.get((peer,) + cell)
      if r["variant"] not in ("torch", "flax", "forward") and peer_rec:
        r[f"vs_{peer}"] = r["samples_per_s"] / peer_rec["samples_per_s"]
    if r["variant"] == "vmap16":
      fused = by.get(("fused",) + cell)
      r["vs_fused"] = r["samples_per_s"] / fused["samples_per_s"] if fused else None


def summary(result: dict, out=None) -> None:
  """Prints the summary table, a line per record (its header names the columns)."""
  if not result["records"]:
    return
  emit("\nsummary (samples/s; % of the [B,H]x[H,H] chain peak, of the dense GEMM rate, of the "
       "roofline; x flax, x torch = ratio to the peer's best)", out)
  for r in result["records"]:
    extra = "".join(f"  {r[key]:.2f}x {label}" for key, label in (
        ("vs_flax", "flax"), ("vs_torch", "torch"), ("vs_fused", "one model fused"))
        if r.get(key) is not None)
    emit(f"  {r['variant']:<16s} B={r['batch']:<5d} T={r['T']} H={r['H']}: "
         f"{fmt_rate(r['samples_per_s']):>10s}  {r['pct_peak']:5.1f}% {r['pct_dense']:5.1f}% "
         f"{r['pct_roofline']:5.1f}%{extra}", out)
  emit(f"total {result['elapsed_s']:.0f} s", out)


def markdown(result: dict) -> str:
  """The README's tables: per (T, H), samples/s (% of dense) per variant and batch size."""
  dev, vers = result.get("device", {}), result.get("versions", {})
  prec = result.get("precision")        # absent from runs made before the setting existed
  prec = (f"matmul precision {prec['setting']} ({prec['products']} products), " if prec
          else "")
  lines = [f"Run started {result.get('started', '?')} on {dev.get('kind', '?')} "
           f"({dev.get('platform', '?')}; host {dev.get('host_cpu', '?')}, "
           f"{dev.get('host_cores', '?')} cores), {prec}"
           + ", ".join(f"{k} {vers[k]}" for k in ("jax", "jaxlib", "flax", "torch")
                       if vers.get(k)) + (f", {result['elapsed_s']:.0f} s"
                                          if "elapsed_s" in result else "") + "."]
  records = result["records"]
  for T, H in sorted({(r["T"], r["H"]) for r in records}):
    recs = [r for r in records if (r["T"], r["H"]) == (T, H)]
    batches = sorted({r["batch"] for r in recs})
    cell = {(r["variant"], r["batch"]): r for r in recs}
    lines += ["", f"Samples/s (% of the dense GEMM rate), T={T}, H={H}:", "",
              "| variant | " + " | ".join(f"B={b}" for b in batches) + " |",
              "|---|" + "---:|" * len(batches)]
    for v in dict.fromkeys(r["variant"] for r in recs):
      lines.append(f"| `{v}` | " + " | ".join(
          "-" if (v, b) not in cell else
          f"{fmt_rate(cell[v, b]['samples_per_s'])} ({cell[v, b]['pct_dense']:.1f}%)"
          for b in batches) + " |")
  return "\n".join(lines) + "\n"


def plot(result: dict, path) -> None:
  """PNG of throughput against B, a line per variant, a panel per (T, H), peaks and roofline."""
  from matplotlib.figure import Figure
  shapes = sorted({(r["T"], r["H"]) for r in result["records"]}) or [(0, 0)]
  fig = Figure(figsize=(6.4 * len(shapes), 4.8))
  for ax, (T, H) in zip(fig.subplots(1, len(shapes), squeeze=False)[0], shapes):
    rows = [r for r in result["records"] if (r["T"], r["H"]) == (T, H)]
    for variant in VARIANTS:
      pts = sorted((r["batch"], r["samples_per_s"]) for r in rows if r["variant"] == variant)
      if pts:
        ax.plot(*zip(*pts), marker="o", ls="--" if variant == "forward" else "-", label=variant)
    pk = sorted((p["batch"], p["gflops"]) for p in result["peaks"] if (p["T"], p["H"]) == (T, H))
    if pk and rows:
      b, g = zip(*pk)
      for training, style, label in ((True, "k-", "peak (training FLOPs)"),
                                     (False, "k:", "peak (forward FLOPs)")):
        fps = flops_per_sample(T, H, rows[0]["D"], rows[0]["K"], training=training)
        ax.plot(b, [x * 1e9 / fps for x in g], style, lw=2, alpha=0.6, label=label)
    roof = sorted((r["batch"], r["training"]["samples_per_s"])
                  for r in result.get("rooflines", []) if (r["T"], r["H"]) == (T, H))
    if roof:
      ax.plot(*zip(*roof), "r-", lw=2, alpha=0.5, label="roofline (training)")
    ax.set_xscale("log", base=2)
    ax.set(yscale="log", xlabel="batch size B", ylabel="windows / s (vmap16: all 16 models)",
           title=f"T={T}, H={H}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
  dev = result.get("device", {})
  fig.suptitle(f"rnn_jax training throughput on {dev.get('kind', '?')} "
               f"({dev.get('host_cpu', '')})", fontsize=10)
  fig.tight_layout()
  with fileio.atomic_path(path) as tmp:
    fig.savefig(tmp, format="png", dpi=110)


def _shapes(cfg: BenchConfig):
  """Every (T, H, B) of the run, in the order they are measured."""
  return itertools.product(cfg.windows, cfg.hidden_sizes, cfg.batch_sizes)


def run_cells(cfg: BenchConfig, out=None) -> dict:
  """Every cell of ``cfg``: ``{"records", "peaks", "peaks_batched", "dense", "rooflines"}``."""
  variants = [v for v in cfg.variants if v != "torch" or torch_available()]
  if "torch" in cfg.variants and "torch" not in variants:
    emit("torch: not installed (pip install '.[torch]'); the torch variant is skipped", out)
  square = square_peak(cfg)
  emit(f"dense  [n,n]x[n,n] n={square['n']}: {square['gflops']:.1f} GFLOP/s (fastest of "
       f"{cfg.repeats}; " + ", ".join(f"n={n}: {g:.1f}" for n, g in square["by_n"].items())
       + ")", out)
  cells = [_measure_point(cfg, variants, B, T, H, square, out) for T, H, B in _shapes(cfg)]
  records = [rec for cell in cells for rec in cell["records"]]
  add_ratios(records)
  return {"records": records, "peaks": [c["peak"] for c in cells],
          "peaks_batched": [c["peak_batched"] for c in cells if c["peak_batched"]],
          "dense": {"square": square, "cells": [c["dense"] for c in cells]},
          "rooflines": [c["roofline"] for c in cells]}


def _measure_point(cfg: BenchConfig, variants: list[str], B: int, T: int, H: int,
                   square: dict, out=None) -> dict:
  """Every variant at one (B, T, H): the JAX ones timed side by side with the chain peaks, then
  torch alone (it switches threads), then the dense rate, timed again if a record ran above it;
  a record still above it stops the run (``check_below_dense``)."""
  if "vmap16" in variants and B > cfg.vmap_max_batch:
    emit(f"{'vmap16':<16s} B={B:<5d} skipped (B > --vmap-max-batch {cfg.vmap_max_batch})", out)
    variants = [v for v in variants if v != "vmap16"]
  chains = chain_workloads(cfg, B, T, H)
  batched = chain_workloads(cfg, B, T, H, models=MODELS) if "vmap16" in variants else []
  built = {v: build(cfg, v, B, T, H) for v in variants if v != "torch"}
  for v, work in built.items():
    emit(f"compile {v} B={B} T={T} H={H}: {work.compile_s:.2f} s", out)
  n_ceilings = len(chains) + len(batched)
  results = measure_side_by_side(chains + batched + list(built.values()),
                                 [cfg.seconds / 2] * n_ceilings + [cfg.seconds] * len(built),
                                 cfg.repeats)
  peak = chain_peak(chains, results[:len(chains)], B, T, H)
  peak_batched = (chain_peak(batched, results[len(chains):n_ceilings], B, T, H, models=MODELS)
                  if batched else None)
  timed = dict(zip(built, results[n_ceilings:]))
  if "torch" in variants:
    timed["torch"] = measure_torch(cfg, B, T, H)
  dense = dense_peak(cfg, B, T, H, square, peak)

  def records_against(dense):
    return [cell_record(cfg, v, B, T, H, timed[v], peak, dense, built.get(v),
                        peak_batched if v == "vmap16" else None) for v in variants]

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
  roof = {"batch": B, "T": T, "H": H, "chain_gflops": peak["gflops"],
          "dense_gflops": dense["gflops"]}
  for kind, training in (("training", True), ("forward", False)):
    chain, rest = flop_split(T, H, cfg.input_size, cfg.output_size, training=training)
    roof[kind] = dict(roofline(chain, rest, peak["gflops"], dense["gflops"]),
                      chain_flops=chain, dense_flops=rest)
  emit(f"roofline B={B:<5d} T={T} H={H}: training {fmt_rate(roof['training']['samples_per_s'])}"
       f" samples/s, forward {fmt_rate(roof['forward']['samples_per_s'])} samples/s (chain at "
       f"the peak, the rest at the dense rate)", out)
  for rec in records:
    check_below_dense(rec)
    emit(cell_row(rec), out)
  return {"peak": peak, "peak_batched": peak_batched, "dense": dense, "roofline": roof,
          "records": records}


def devices_sweep(cfg: BenchConfig, out=None) -> list[dict]:
  """``autodiff`` step throughput, batch sharded over a ``'data'`` mesh, parameters replicated
  (``rnn_jax.train.parallel``), on 1, 2, 4, ... devices, every B that divides."""
  n_all = jax.device_count()
  if n_all == 1:
    emit("devices sweep: 1 device only; simulate more on a CPU with "
         "XLA_FLAGS=--xla_force_host_platform_device_count=4 (they share the same cores)", out)
  rows = []
  for (T, H, B), n in itertools.product(
      _shapes(cfg), sorted({min(2 ** i, n_all) for i in range(n_all.bit_length() + 1)})):
    if B % n:
      continue
    mesh = parallel.data_mesh(n)
    params, xs, ys = problem(cfg, B, T, H)
    params, opt_state = parallel.put((params, make_optimizer(cfg).init(params)),
                                     parallel.replicated(mesh))
    xs, ys = parallel.put((xs, ys), parallel.batch_sharding(mesh))
    step = parallel.shard_step(train.make_train_step(make_optimizer(cfg),
                                                     precision=cfg.precision), mesh)
    work = training_workload("data_parallel", step, params, opt_state, xs, ys, samples=B)
    r = measure(work, cfg.seconds, cfg.repeats)
    gflops = r["samples_per_s"] * flops_per_sample(T, H, cfg.input_size, cfg.output_size) / 1e9
    rows.append({"variant": "data_parallel", "devices": n, "batch": B, "T": T, "H": H,
                 "samples_per_s": r["samples_per_s"], "spread": r["spread"], "gflops": gflops,
                 "compile_s": work.compile_s, **device_fields(cfg)})
    s = r["spread"]
    emit(f"devices={n:<3d} B={B:<5d} T={T} H={H}: {fmt_rate(r['samples_per_s']):>10s}"
         f" samples/s [{fmt_rate(s['min'])}..{fmt_rate(s['max'])}]  {gflops:.1f} GFLOP/s", out)
  return rows


def remat_memory(cfg: BenchConfig, out=None) -> list[dict]:
  """Compiled memory (bytes) of the ``autodiff`` step, with and without ``jax.checkpoint``."""
  H, B = cfg.hidden_sizes[0], cfg.remat_batch_size
  rows = []
  for T, remat in itertools.product(cfg.remat_windows, (False, True)):
    params, xs, ys = problem(cfg, B, T, H)
    opt = make_optimizer(cfg)
    step = train.make_train_step(opt, "autodiff", 1, remat, precision=cfg.precision)
    t0 = time.perf_counter()
    ma = jax.jit(step).lower(params, opt.init(params), xs, ys).compile().memory_analysis()
    compile_s = time.perf_counter() - t0
    temp, arg = int(ma.temp_size_in_bytes), int(ma.argument_size_in_bytes)
    outb, alias = int(ma.output_size_in_bytes), int(ma.alias_size_in_bytes)
    rows.append({"T": T, "batch": B, "H": H, "remat": remat, "temp_bytes": temp,
                 "argument_bytes": arg, "output_bytes": outb, "alias_bytes": alias,
                 "peak_bytes": temp + arg + outb - alias, "compile_s": compile_s,
                 **device_fields(cfg)})
    emit(f"memory T={T:<5d} B={B} H={H} remat={str(remat):<5s}: temp {temp:>12,d} B, "
         f"arguments {arg:>10,d} B, outputs {outb:>10,d} B, "
         f"peak {rows[-1]['peak_bytes']:>12,d} B", out)
  return rows


def run(cfg: BenchConfig, json_path=None, plot_path=None, out=None, markdown_path=None) -> dict:
  """The whole benchmark, then the JSON (fields: docs/benchmarking.md), PNG and markdown."""
  writes = [(check_output_path(flag, path), write) for flag, path, write in (
      ("--json", json_path, fileio.write_json), ("--plot", plot_path, lambda p, r: plot(r, p)),
      ("--markdown", markdown_path, lambda p, r: fileio.write_text(p, markdown(r))))]
  started = time.perf_counter()
  try:
    cpu = next(line.split(":", 1)[1].strip() for line in
               Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name"))
  except (OSError, StopIteration):
    cpu = platform.processor() or platform.machine()
  d, vers = jax.devices()[0], versions()
  dev = {"platform": d.platform, "kind": d.device_kind, "count": jax.device_count(),
         "host_cpu": cpu, "host_cores": os.cpu_count()}
  prec = {"setting": cfg.precision, "products": products(cfg.precision, d.platform)}
  emit(f"device: {dev['kind']} ({dev['platform']}), {dev['count']} device(s); host "
       f"{dev['host_cpu']}, {dev['host_cores']} cores", out)
  emit(f"matmul precision: {prec['setting']} (float32 products here: {prec['products']}; "
       "rnn_jax.core.precision)", out)
  emit("versions: " + ", ".join(f"{k} {v}" for k, v in vers.items()), out)
  emit(f"FLOPs per window: training {FLOP_FORMULAS['training']}, forward "
       f"{FLOP_FORMULAS['forward']} (matrix products only)", out)
  result = {"device": dev, "precision": prec, "versions": vers, "config": cfg.to_dict(),
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "flops_per_sample": dict(FLOP_FORMULAS)}
  result.update(run_cells(cfg, out))
  result["devices_sweep"] = devices_sweep(cfg, out) if cfg.devices_sweep else None
  result["remat_memory"] = remat_memory(cfg, out) if cfg.remat_memory else None
  result["elapsed_s"] = time.perf_counter() - started
  summary(result, out)
  for path, write in writes:
    if path is not None:
      write(path, result)
      emit(f"wrote {path}", out)
  return result

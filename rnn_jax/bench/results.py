"""What the benchmark records and shows: the device, one record and result line per cell, the
ratios between cells, the summary table, the README's markdown tables and the PNG.
"""
from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

import jax

from rnn_jax.bench.ceilings import flop_split, flops_per_sample, roofline
from rnn_jax.bench.config import VARIANTS, BenchConfig
from rnn_jax.common import fileio


def device_info() -> dict:
  try:
    cpu = next(line.split(":", 1)[1].strip() for line in
               Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name"))
  except (OSError, StopIteration):
    cpu = platform.processor() or platform.machine()
  d = jax.devices()[0]
  return {"platform": d.platform, "kind": d.device_kind, "count": jax.device_count(),
          "host_cpu": cpu, "host_cores": os.cpu_count()}


def fmt_rate(x) -> str:
  return f"{x:,.0f}"                                       # 12,345


def emit(line: str = "", out=None) -> None:
  print(line, file=out or sys.stdout, flush=True)


def cell_record(cfg: BenchConfig, variant, batch, T, H, r, peak, dense, work=None,
                batched=None) -> dict:
  """The JSON record of one cell from ``measure``'s result ``r``, against the chain ``peak``
  and the ``dense`` rate; vmap16 passes its ``batched`` chain peak, the chain rate of its
  roofline (``pct_peak_batched``). ``work``: the timed ``Workload`` (None for torch)."""
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
  return rec


def cell_row(rec: dict) -> str:
  """The result line of one record."""
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
  """The table: samples/s, % of the chain peak, of the dense rate and of the roofline per
  variant and batch, and the ratios to flax, torch and (vmap16) one fused model."""
  if not result["records"]:
    return
  emit("", out)
  emit("summary (samples/s; % of the [B,H]x[H,H] chain peak, of the dense GEMM rate, of the "
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
  """The README's tables from one run's result: a line naming the run, then per (T, H)
  samples/s (% of the dense GEMM rate) per variant (rows) and batch size (columns)."""
  dev, vers = result.get("device", {}), result.get("versions", {})
  lines = [f"Run started {result.get('started', '?')} on {dev.get('kind', '?')} "
           f"({dev.get('platform', '?')}; host {dev.get('host_cpu', '?')}, "
           f"{dev.get('host_cores', '?')} cores), "
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


def write_markdown(path, result: dict) -> None:
  fileio.write_text(path, markdown(result))


def plot(result: dict, path) -> None:
  """PNG of training throughput against B, a line per variant and a panel per (T, H), with the
  chain peak as windows/s and the training roofline."""
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

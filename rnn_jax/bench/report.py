"""What the benchmark prints and records: the device, one record and one result line per cell,
the ratios between cells (to torch, vmap16 to fused), the summary table with the targets'
verdicts (``targets``), and the same tables as markdown for the README (``markdown``).
"""
from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

import jax

from rnn_jax.bench import targets
from rnn_jax.bench.ceilings import flop_split, flops_per_sample, roofline
from rnn_jax.bench.config import BenchConfig
from rnn_jax.common import fileio


def device_info() -> dict:
  d = jax.devices()[0]
  info = {"platform": d.platform, "kind": d.device_kind, "count": jax.device_count(),
          "host_cpu": _cpu_name(), "host_cores": os.cpu_count()}
  return info


def _cpu_name() -> str:
  try:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def fmt_rate(x) -> str:
  """A rate as a whole number with thousands separators: ``12,345``."""
  return f"{x:,.0f}"


def emit(line: str = "", out=None) -> None:
  """Prints one line to ``out`` (default: stdout), flushed at once."""
  print(line, file=out or sys.stdout, flush=True)


def cell_record(cfg: BenchConfig, variant, batch, T, H, r, peak, work_info=None,
                compile_s=None, dense=None, chain_gflops=None) -> dict:
  """The JSON record of one cell from ``measure``'s result ``r``, the cell's chain ``peak``
  and, when given, its ``dense`` rate (``ceilings.dense_peak``): ``pct_dense`` and the
  roofline's ``roofline_samples_per_s`` / ``pct_roofline`` (chain part at ``chain_gflops``,
  default the peak's; vmap16 passes the rate of its 16 chains at once)."""
  training = variant != "forward"
  D, K = cfg.input_size, cfg.output_size
  fps = flops_per_sample(T, H, D, K, training=training)
  gflops = r["samples_per_s"] * fps / 1e9
  rec = {"variant": variant, "batch": batch, "T": T, "H": H, "D": D, "K": K,
         "samples_per_s": r["samples_per_s"], "gflops": gflops,
         "pct_peak": 100.0 * gflops / peak["gflops"], "compile_s": compile_s,
         "spread": r["spread"], "repeats": cfg.repeats, "calls_per_repeat": r["calls"],
         "flops_per_sample": fps}
  if dense is not None:
    rec["dense_gflops"] = dense["gflops"]
    rec["pct_dense"] = 100.0 * gflops / dense["gflops"]
    chain, rest = flop_split(T, H, D, K, training=training)
    roof = roofline(chain, rest, chain_gflops or peak["gflops"], dense["gflops"])
    rec["roofline_samples_per_s"] = roof["samples_per_s"]
    rec["pct_roofline"] = 100.0 * r["samples_per_s"] / roof["samples_per_s"]
  for key in ("steps_per_call", "models"):
    if work_info and key in work_info:
      rec[key] = work_info[key]
  for key in ("threads", "by_threads", "device"):
    if key in r:
      rec[key] = r[key]
  return rec


def _shares(rec: dict) -> str:
  """``% of peak``, and with a dense rate ``% of dense`` and ``% of roofline``."""
  text = f"{rec['pct_peak']:5.1f}% of peak"
  if "pct_dense" in rec:
    text += f" {rec['pct_dense']:5.1f}% of dense {rec['pct_roofline']:5.1f}% of roofline"
  return text


def cell_row(rec: dict) -> str:
  """The result line of one record."""
  s = rec["spread"]
  extra = ""
  if "threads" in rec:
    extra = f"  threads={rec['threads']} (" + ", ".join(
        f"{k}: {fmt_rate(v)}" for k, v in rec["by_threads"].items()) + ")"
    if "device" in rec:
      extra += f" on {rec['device']}"
  if "models" in rec and rec["models"] > 1:
    extra += f"  {rec['models']} models, {rec['steps_per_call']} steps/call"
  elif "steps_per_call" in rec:
    extra += f"  {rec['steps_per_call']} steps/call"
  return (f"{rec['variant']:<16s} B={rec['batch']:<5d} T={rec['T']} H={rec['H']}: "
          f"{fmt_rate(rec['samples_per_s']):>10s} samples/s "
          f"[{fmt_rate(s['min'])}..{fmt_rate(s['max'])}]  {rec['gflops']:7.1f} GFLOP/s "
          f"{_shares(rec)}{extra}")


def add_ratios(records: list[dict]) -> None:
  """Adds ``vs_torch`` and ``vs_flax`` (throughput / the peer's, same cell) to every JAX
  training record and ``vs_fused`` (the 16 models' throughput / one model's fused throughput)
  to vmap16's."""
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
  variant and batch, ratios to flax, torch and vmap16's to one fused model; then the targets'
  verdicts (``result["verdicts"]``, one line each) where the result has them."""
  records = result["records"]
  if not records:
    return
  emit("", out)
  emit("summary (samples/s; % of the [B,H]x[H,H] chain peak, of the dense GEMM rate, of the "
       "roofline; x flax, x torch = ratio to the peer's best)", out)
  for r in records:
    extra = ""
    for key, label in (("vs_flax", "flax"), ("vs_torch", "torch"),
                       ("vs_fused", "one model fused")):
      if r.get(key) is not None:
        extra += f"  {r[key]:.2f}x {label}"
    shares = f"{r['pct_peak']:5.1f}%"
    if "pct_dense" in r:
      shares += f" {r['pct_dense']:5.1f}% {r['pct_roofline']:5.1f}%"
    emit(f"  {r['variant']:<16s} B={r['batch']:<5d} T={r['T']} H={r['H']}: "
         f"{fmt_rate(r['samples_per_s']):>10s}  {shares}{extra}", out)
  if result.get("verdicts"):
    emit(_verdict_header(result["verdicts"]), out)
    for v in result["verdicts"]:
      emit(targets.verdict_line(v), out)
  emit(f"total {result['elapsed_s']:.0f} s", out)


def _verdict_header(verdicts: list[dict]) -> str:
  counts = {k: sum(targets.status(v) == k for v in verdicts)
            for k in ("met", "MISSED", "not measured")}
  return ("targets of issue 11 (gap = measured - required, negative when missed): "
          + ", ".join(f"{n} {k}" for k, n in counts.items()))


def markdown(result: dict) -> str:
  """The README's tables from one run's result (``bench.json``): samples/s (% of the dense
  GEMM rate) per variant (rows) and batch size (columns), one table per (T, H), then the
  targets' verdicts (``result["verdicts"]``, or computed from the records)."""
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
    variants = list(dict.fromkeys(r["variant"] for r in recs))
    cell = {(r["variant"], r["batch"]): r for r in recs}
    lines += ["", f"Samples/s (% of the dense GEMM rate), T={T}, H={H}:", "",
              "| variant | " + " | ".join(f"B={b}" for b in batches) + " |",
              "|---|" + "---:|" * len(batches)]
    for v in variants:
      lines.append(f"| `{v}` | " + " | ".join(_md_cell(cell.get((v, b))) for b in batches)
                   + " |")
  verdicts = result.get("verdicts")
  if verdicts is None:
    verdicts = targets.verdicts(records, result.get("config", {}).get("grad", "autodiff"))
  lines += ["", "Targets (issue 11; gap = measured - required, negative when missed):", "",
            "| target | B | T | H | variant | measured | required | gap | verdict |",
            "|---|---:|---:|---:|---|---:|---:|---:|---|"]
  for v in verdicts:
    name = f"`{v['variant']}`" + (f" vs `{v['peer']}`" if v["peer"] else "") \
        if v["variant"] else "-"
    measured = "-" if v["met"] is None else targets.fmt_value(v["measured"], v["unit"])
    gap = "-" if v["met"] is None else targets.fmt_gap(v)
    verdict = targets.status(v)
    lines.append(f"| {v['target']} | {'-' if v['batch'] is None else v['batch']} | {v['T']} | "
                 f"{'-' if v['H'] is None else v['H']} | {name} | {measured} | {v['op']} "
                 f"{targets.fmt_value(v['required'], v['unit'])} | {gap} | "
                 f"{'**MISSED**' if verdict == 'MISSED' else verdict} |")
  return "\n".join(lines) + "\n"


def _md_cell(rec: dict | None) -> str:
  if rec is None:
    return "-"
  if "pct_dense" not in rec:
    return fmt_rate(rec["samples_per_s"])
  return f"{fmt_rate(rec['samples_per_s'])} ({rec['pct_dense']:.1f}%)"


def write_markdown(path, result: dict) -> None:
  """Writes ``markdown(result)`` to ``path`` atomically (``rnn_jax.common.fileio``)."""
  fileio.write_text(path, markdown(result))

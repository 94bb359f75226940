"""The benchmark's figure: training throughput against batch size, with the matmul peak and the
roofline."""
from __future__ import annotations

from rnn_jax.bench.ceilings import flops_per_sample
from rnn_jax.bench.config import VARIANTS
from rnn_jax.common import fileio


def plot(result: dict, path) -> None:
  """PNG of training throughput against batch size, one line per variant, one panel per
  (T, H), with the matmul peak converted to windows/s and the training roofline drawn in
  (atomic write)."""
  from matplotlib.figure import Figure
  records = result["records"]
  shapes = sorted({(r["T"], r["H"]) for r in records}) or [(0, 0)]
  fig = Figure(figsize=(6.4 * len(shapes), 4.8))
  axes = fig.subplots(1, len(shapes), squeeze=False)[0]
  for ax, (T, H) in zip(axes, shapes):
    _panel(ax, result, T, H)
  dev = result.get("device", {})
  fig.suptitle(f"rnn_jax training throughput on {dev.get('kind', '?')} "
               f"({dev.get('host_cpu', '')})", fontsize=10)
  fig.tight_layout()
  with fileio.atomic_path(path) as tmp:
    fig.savefig(tmp, format="png", dpi=110)


def _panel(ax, result: dict, T: int, H: int) -> None:
  """One (T, H): a line per variant, and the peak as windows/s for both FLOP counts."""
  rows = [r for r in result["records"] if (r["T"], r["H"]) == (T, H)]
  for variant in VARIANTS:
    pts = sorted((r["batch"], r["samples_per_s"]) for r in rows if r["variant"] == variant)
    if pts:
      b, s = zip(*pts)
      ax.plot(b, s, marker="o", ls="--" if variant == "forward" else "-", label=variant)
  pk = sorted((p["batch"], p["gflops"]) for p in result["peaks"]
              if (p["T"], p["H"]) == (T, H))
  if pk and rows:
    D, K = rows[0]["D"], rows[0]["K"]
    b, g = zip(*pk)
    for training, style, label in ((True, "k-", "peak (training FLOPs)"),
                                   (False, "k:", "peak (forward FLOPs)")):
      fps = flops_per_sample(T, H, D, K, training=training)
      ax.plot(b, [x * 1e9 / fps for x in g], style, lw=2, alpha=0.6, label=label)
  roof = sorted((r["batch"], r["training"]["samples_per_s"]) for r in result.get("rooflines", [])
                if (r["T"], r["H"]) == (T, H))
  if roof:
    b, s = zip(*roof)
    ax.plot(b, s, "r-", lw=2, alpha=0.5, label="roofline (training)")
  ax.set_xscale("log", base=2)
  ax.set_yscale("log")
  ax.set_xlabel("batch size B")
  ax.set_ylabel("windows / s (vmap16: all 16 models)")
  ax.set_title(f"T={T}, H={H}")
  ax.grid(True, which="both", alpha=0.3)
  ax.legend(fontsize=8)

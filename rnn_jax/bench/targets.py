"""Issue 11's performance targets, judged from the records of one run: ``verdicts(records)``
is a pure function of the records (no timing), one verdict per target and batch size.

Every verdict is a dict: ``target`` (its name, see ``TARGETS``), ``batch``, ``T``, ``H``,
``variant`` (the record judged: the best JAX training variant where the target says "best"),
``peer`` (what it is compared with, or None), ``measured`` (None when a record it needs is not
in the run), ``required``, ``op`` (``">="`` or ``"<"``), ``unit`` (``"x"``, ``"%"``, ``"s"``),
``met`` (True, False, or None = not measured), ``margin`` (measured - required for ``>=``,
required - measured for ``<``: negative when missed, None when not measured), ``what`` (the
target in words) and ``missing`` (the records a "not measured" verdict lacked).
"""
from __future__ import annotations

# The JAX training variants "the best variant" is chosen from (not vmap16: 16 models; not
# forward: inference; not the peers).
TRAINING = ("autodiff", "autodiff_unroll", "bptt", "fused", "bptt_fused")

# The batch sizes the issue names; the "at every B" targets also judge every other B of a run.
ISSUE_BATCHES = (1, 32, 256, 1024)

# name -> what it checks, in words (each verdict's ``what``)
TARGETS = {
    "vs_flax": "best training variant / flax nn.RNN",
    "vs_torch": "best training variant / PyTorch nn.RNN (best thread setting)",
    "roofline": "best training variant, % of the roofline",
    "bptt_vs_autodiff": "hand BPTT / autodiff (same step)",
    "vmap16_vs_sequential": "vmap16 (16 models) / 16 models one after another (one fused model)",
    "vmap16_vs_fused": "vmap16 (16 models) / one fused model",
    "forward_chain": "inference (forward), % of the chain peak",
    "compile": "compile time of the autodiff training step at T=24 (slowest B)",
}

COMPILE_T = 24
COMPILE_S = 2.0


def verdicts(records: list[dict], grad: str = "autodiff") -> list[dict]:
  """The verdict of every target for every (T, H) of ``records`` (the notes' T=24, H=200 when
  there are none). ``grad`` is the run's ``--grad``: with ``hand`` the ``fused`` variant is the
  hand BPTT itself, so ``bptt_fused`` vs ``fused`` is not a comparison and is left out."""
  groups = sorted({(r["T"], r["H"]) for r in records}) or [(COMPILE_T, 200)]
  out = []
  for T, H in groups:
    cell = {(r["variant"], r["batch"]): r for r in records if (r["T"], r["H"]) == (T, H)}
    every = sorted({b for _, b in cell} | set(ISSUE_BATCHES))
    for B, flax_x, torch_x in ((1, None, 5.0), (32, 1.2, 1.5), (256, 1.15, 1.3),
                               (1024, 1.15, 1.3)):
      if flax_x is not None:
        out.append(_vs_peer(cell, "vs_flax", "flax", B, T, H, flax_x))
      out.append(_vs_peer(cell, "vs_torch", "torch", B, T, H, torch_x))
    for B in (b for b in every if b >= 256):
      best = _best(cell, B)
      measured = best.get("pct_roofline") if best else None
      lacks = _missing(("training variant", best)) or _missing(("pct_roofline", measured))
      out.append(_verdict("roofline", B, T, H, best and best["variant"], None, measured,
                          90.0, ">=", "%", lacks))
    pairs = [("bptt", "autodiff")]
    if grad == "autodiff":
      pairs.append(("bptt_fused", "fused"))
    for B in every:
      for hand, auto in pairs:
        if hand == "bptt" or ((hand, B) in cell and (auto, B) in cell):
          out.append(_ratio(cell, "bptt_vs_autodiff", hand, auto, B, T, H, 1.0))
    out.append(_ratio(cell, "vmap16_vs_sequential", "vmap16", "fused", 1, T, H, 3.0))
    out.append(_ratio(cell, "vmap16_vs_fused", "vmap16", "fused", 32, T, H, 1.0))
    for B in (b for b in every if b >= 32):
      fwd = cell.get(("forward", B))
      out.append(_verdict("forward_chain", B, T, H, "forward", None,
                          fwd["pct_peak"] if fwd else None, 90.0, ">=", "%",
                          _missing(("forward", fwd))))
  out.append(_compile([r for r in records if r["variant"] == "autodiff"
                       and r["T"] == COMPILE_T and r.get("compile_s") is not None]))
  return out


def _best(cell: dict, B: int) -> dict | None:
  """The fastest JAX training record at batch ``B`` (samples/s), or None."""
  recs = [cell[(v, B)] for v in TRAINING if (v, B) in cell]
  return max(recs, key=lambda r: r["samples_per_s"]) if recs else None


def _vs_peer(cell, target, peer, B, T, H, required) -> dict:
  best, other = _best(cell, B), cell.get((peer, B))
  measured = best["samples_per_s"] / other["samples_per_s"] if best and other else None
  return _verdict(target, B, T, H, best and best["variant"], peer, measured, required,
                  missing=_missing(("training variant", best), (peer, other)))


def _ratio(cell, target, variant, peer, B, T, H, required) -> dict:
  a, b = cell.get((variant, B)), cell.get((peer, B))
  measured = a["samples_per_s"] / b["samples_per_s"] if a and b else None
  return _verdict(target, B, T, H, variant, peer, measured, required,
                  missing=_missing((variant, a), (peer, b)))


def _compile(recs: list[dict]) -> dict:
  worst = max(recs, key=lambda r: r["compile_s"]) if recs else None
  return _verdict("compile", worst and worst["batch"], COMPILE_T, worst and worst["H"],
                  "autodiff", None, worst and worst["compile_s"], COMPILE_S, "<", "s",
                  _missing(("autodiff", worst)))


def _missing(*named) -> list[str]:
  """The names whose record is None: what a "not measured" verdict lacked."""
  return [name for name, rec in named if rec is None]


def _verdict(target, batch, T, H, variant, peer, measured, required, op=">=", unit="x",
             missing=()) -> dict:
  if measured is None:
    met = margin = None
  elif op == ">=":
    met, margin = bool(measured >= required), measured - required
  else:
    met, margin = bool(measured < required), required - measured
  return {"target": target, "what": TARGETS[target], "batch": batch, "T": T, "H": H,
          "variant": variant, "peer": peer, "measured": measured, "required": required,
          "op": op, "unit": unit, "met": met, "margin": margin, "missing": list(missing)}


def status(v: dict) -> str:
  """``met``, ``MISSED`` or ``not measured``."""
  return "not measured" if v["met"] is None else "met" if v["met"] else "MISSED"


def fmt_value(x: float, unit: str) -> str:
  """``1.23x``, ``91.2%``, ``0.41 s``."""
  return {"x": f"{x:.2f}x", "%": f"{x:.1f}%", "s": f"{x:.2f} s"}[unit]


def fmt_gap(v: dict) -> str:
  """The margin with its sign (``-0.09x (-7.5%)``, ``-3.2 points``, ``+0.59 s (+29.5%)``)."""
  m = v["margin"]
  if v["unit"] == "%":
    return f"{m:+.1f} points"
  text = f"{m:+.2f}x" if v["unit"] == "x" else f"{m:+.2f} s"
  return text + f" ({100.0 * m / v['required']:+.1f}%)"


def verdict_line(v: dict) -> str:
  """One printed line: ``[met]`` / ``[MISSED]`` / ``[not measured]``, the target and cell,
  measured vs required and the gap (the margin; negative when missed)."""
  cell = " ".join(f"{k}={v[k2]}" for k, k2 in (("B", "batch"), ("T", "T"), ("H", "H"))
                  if v[k2] is not None)
  what = f"{'[' + status(v) + ']':<14s} {v['target']:<20s} {cell:<17s}"
  if v["variant"]:
    what += f" {v['variant']}" + (f" vs {v['peer']}" if v["peer"] else "")
  what, need = what.rstrip(), f"{v['op']} {fmt_value(v['required'], v['unit'])}"
  if v["met"] is None:
    return f"  {what}: required {need} (no " + " or ".join(v["missing"]) + " record in this run)"
  return (f"  {what}: {fmt_value(v['measured'], v['unit'])}, required {need}, "
          f"gap {fmt_gap(v)}")

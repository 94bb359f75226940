"""Issue 11's targets judged from constructed records (``rnn_jax.bench.targets``), their
printed lines, and the markdown tables of a result (``report.markdown``, the script's
``--markdown`` / ``--from-json``). Nothing here times anything."""
from __future__ import annotations

import io
import json

import pytest

from conftest import load_script
from rnn_jax import bench as bm
from rnn_jax.bench import report
from rnn_jax.common import cli


def rec(variant, batch, samples, T=24, H=200, **extra):
  """A record with the fields the verdicts read (percentages 50% unless given)."""
  r = {"variant": variant, "batch": batch, "T": T, "H": H, "samples_per_s": float(samples),
       "pct_peak": 50.0, "pct_dense": 10.0, "pct_roofline": 50.0,
       "compile_s": None if variant == "torch" else 0.5}
  r.update(extra)
  return r


def find(vs, target, batch=None, variant=None, **kw):
  """The one verdict of ``target`` (at ``batch``, of ``variant``) in ``vs``."""
  hits = [v for v in vs if v["target"] == target and (batch is None or v["batch"] == batch)
          and (variant is None or v["variant"] == variant)
          and all(v[k] == x for k, x in kw.items())]
  assert len(hits) == 1, hits
  return hits[0]


def test_the_best_jax_training_variant_is_compared_with_flax_and_torch():
  # vmap16 and forward are faster but are not training variants of one model
  records = [rec("autodiff", 32, 100), rec("autodiff_unroll", 32, 90), rec("bptt", 32, 130),
             rec("fused", 32, 120), rec("bptt_fused", 32, 125), rec("vmap16", 32, 10_000),
             rec("forward", 32, 50_000), rec("flax", 32, 100), rec("torch", 32, 80)]
  vs = bm.verdicts(records)
  flax, torch = find(vs, "vs_flax", 32), find(vs, "vs_torch", 32)
  assert (flax["variant"], flax["peer"], flax["measured"]) == ("bptt", "flax", 1.3)
  assert flax["met"] is True and flax["margin"] == pytest.approx(0.1)
  assert (torch["variant"], torch["measured"], torch["met"]) == ("bptt", 130 / 80, True)
  assert flax["required"] == 1.2 and torch["required"] == 1.5


def test_a_ratio_at_the_target_is_met_and_below_it_missed():
  vs = bm.verdicts([rec("fused", 32, 120), rec("flax", 32, 100), rec("torch", 32, 81)])
  assert find(vs, "vs_flax", 32)["met"] is True  # exactly 1.2x: >= is met
  missed = find(vs, "vs_torch", 32)  # 1.48x < 1.5x
  assert missed["met"] is False and missed["margin"] == pytest.approx(120 / 81 - 1.5)
  line = bm.verdict_line(missed)
  assert line.lstrip().startswith("[MISSED]") and "1.48x, required >= 1.50x, gap -0.02x" in line


def test_the_issues_thresholds_per_batch_size():
  records = []
  for B in (1, 32, 256, 1024):
    records += [rec("fused", B, 100), rec("flax", B, 100), rec("torch", B, 100)]
  vs = bm.verdicts(records)
  assert [(v["batch"], v["required"]) for v in vs if v["target"] == "vs_flax"] == [
      (32, 1.2), (256, 1.15), (1024, 1.15)]
  assert [(v["batch"], v["required"]) for v in vs if v["target"] == "vs_torch"] == [
      (1, 5.0), (32, 1.5), (256, 1.3), (1024, 1.3)]


def test_a_missing_peer_is_not_measured():
  vs = bm.verdicts([rec("autodiff", 32, 100), rec("flax", 32, 50)])  # torch not installed
  v = find(vs, "vs_torch", 32)
  assert v["met"] is None and v["measured"] is None and v["margin"] is None
  assert v["missing"] == ["torch"] and v["variant"] == "autodiff"
  assert bm.verdict_line(v).lstrip().startswith("[not measured]")
  assert "no torch record" in bm.verdict_line(v)
  assert find(vs, "vs_flax", 32)["met"] is True
  # no training variant at all at B=256: not measured either
  assert find(vs, "vs_flax", 256)["missing"] == ["training variant", "flax"]


def test_roofline_at_large_batches_uses_the_best_variants_share():
  records = [rec("autodiff", B, 100, pct_roofline=80.0) for B in (32, 256, 4096)]
  records += [rec("bptt", B, 110, pct_roofline=95.0) for B in (32, 256)]
  vs = bm.verdicts(records)
  assert [v["batch"] for v in vs if v["target"] == "roofline"] == [256, 1024, 4096]
  at256, at4096 = find(vs, "roofline", 256), find(vs, "roofline", 4096)
  assert (at256["variant"], at256["measured"], at256["met"]) == ("bptt", 95.0, True)
  assert (at4096["variant"], at4096["measured"], at4096["met"]) == ("autodiff", 80.0, False)
  assert at4096["margin"] == -10.0 and at4096["unit"] == "%"
  assert find(vs, "roofline", 1024)["met"] is None


def test_hand_bptt_against_autodiff_at_every_batch_and_fused_pair_when_both_ran():
  records = [rec("autodiff", B, 100) for B in (2, 32)] + [rec("bptt", 2, 100), rec("bptt", 32, 90)]
  records += [rec("fused", 32, 200), rec("bptt_fused", 32, 210), rec("fused", 2, 300)]
  vs = bm.verdicts(records)
  pairs = [(v["batch"], v["variant"], v["met"]) for v in vs if v["target"] == "bptt_vs_autodiff"]
  assert pairs == [(1, "bptt", None), (2, "bptt", True), (32, "bptt", False),
                   (32, "bptt_fused", True), (256, "bptt", None), (1024, "bptt", None)]
  # with --grad hand the fused variant is the hand BPTT itself: no fused pair
  hand = bm.verdicts(records, grad="hand")
  assert [v["variant"] for v in hand if v["target"] == "bptt_vs_autodiff"].count("bptt_fused") == 0


def test_vmap16_is_compared_with_the_fused_rate_of_one_model():
  # samples/s of vmap16 count all 16 models' windows; 16 fused models one after another train
  # at one fused model's rate, so the ratio is vmap16 / fused (not / the fastest variant)
  records = [rec("vmap16", 1, 300), rec("fused", 1, 100), rec("bptt", 1, 1000),
             rec("vmap16", 32, 99), rec("fused", 32, 100)]
  vs = bm.verdicts(records)
  seq, one = find(vs, "vmap16_vs_sequential"), find(vs, "vmap16_vs_fused")
  assert (seq["batch"], seq["peer"], seq["measured"], seq["met"]) == (1, "fused", 3.0, True)
  assert (one["batch"], one["measured"], one["met"]) == (32, 0.99, False)


def test_inference_against_the_chain_peak_from_b32_up():
  records = [rec("forward", B, 1000, pct_peak=p) for B, p in
             ((1, 10.0), (32, 90.0), (256, 89.9), (4096, 120.0))]
  vs = bm.verdicts(records)
  got = [(v["batch"], v["met"]) for v in vs if v["target"] == "forward_chain"]
  assert got == [(32, True), (256, False), (1024, None), (4096, True)]


def test_compile_time_is_the_slowest_autodiff_step_at_t24():
  records = [rec("autodiff", 1, 10, compile_s=1.2), rec("autodiff", 32, 10, compile_s=1.9),
             rec("bptt", 32, 10, compile_s=9.0), rec("autodiff", 32, 10, T=4, compile_s=9.0)]
  v = find(bm.verdicts(records), "compile")
  assert (v["batch"], v["T"], v["measured"], v["met"], v["op"]) == (32, 24, 1.9, True, "<")
  at_limit = find(bm.verdicts([rec("autodiff", 32, 10, compile_s=2.0)]), "compile")
  assert at_limit["met"] is False and at_limit["margin"] == 0.0  # "under 2 s": strict
  assert find(bm.verdicts([rec("autodiff", 32, 10, T=4)]), "compile")["met"] is None


def test_each_window_and_hidden_size_is_judged_apart():
  records = [rec("fused", 32, 130, H=8), rec("flax", 32, 100, H=8),
             rec("fused", 32, 100, H=200), rec("flax", 32, 100, H=200)]
  vs = [v for v in bm.verdicts(records) if v["target"] == "vs_flax" and v["batch"] == 32]
  assert [(v["H"], v["met"]) for v in vs] == [(8, True), (200, False)]


def test_no_records_gives_every_target_not_measured():
  vs = bm.verdicts([])
  assert {v["target"] for v in vs} == set(bm.TARGETS)
  assert all(v["met"] is None for v in vs)


def _result(records):
  report.add_ratios(records)
  return {"device": {"kind": "cpu", "platform": "cpu", "host_cpu": "test CPU", "host_cores": 2},
          "versions": {"jax": "0.0", "flax": "0.0", "torch": None},
          "started": "2000-01-01T00:00:00+00:00", "elapsed_s": 3.0, "config": {"grad": "autodiff"},
          "records": records, "verdicts": bm.verdicts(records)}


RECORDS = [rec("autodiff", 1, 1234.4, pct_dense=1.23), rec("autodiff", 32, 20000, pct_dense=12.0),
           rec("flax", 32, 25000, pct_dense=15.0), rec("forward", 1, 99999.6, pct_dense=0.5)]


def test_markdown_has_a_row_per_variant_a_column_per_batch_and_the_verdicts():
  text = bm.markdown(_result([dict(r) for r in RECORDS]))
  lines = text.splitlines()
  assert lines[0].startswith("Run started 2000-01-01T00:00:00+00:00 on cpu")
  header = lines.index("| variant | B=1 | B=32 |")
  assert lines[header + 1:header + 5] == [
      "|---|---:|---:|",
      "| `autodiff` | 1,234 (1.2%) | 20,000 (12.0%) |",
      "| `flax` | - | 25,000 (15.0%) |",
      "| `forward` | 100,000 (0.5%) | - |"]
  assert "| vs_flax | 32 | 24 | 200 | `autodiff` vs `flax` | 0.80x | >= 1.20x | -0.40x (-33.3%) " \
         "| **MISSED** |" in lines
  assert "| vs_torch | 32 | 24 | 200 | `autodiff` vs `torch` | - | >= 1.50x | - | not measured |" \
         in lines
  assert sum(line.startswith("| ") and line.endswith(" |") for line in lines) == \
      1 + 3 + 1 + len(bm.verdicts(RECORDS))


def test_markdown_computes_the_verdicts_of_a_result_without_them():
  result = _result([dict(r) for r in RECORDS])
  assert bm.markdown(dict(result, verdicts=None)) == bm.markdown(result)


def test_write_markdown_is_atomic(tmp_path):
  path = tmp_path / "bench.md"
  path.write_text("old")
  bm.write_markdown(path, _result([dict(r) for r in RECORDS]))
  assert path.read_text() == bm.markdown(_result([dict(r) for r in RECORDS]))
  assert [p.name for p in tmp_path.iterdir()] == ["bench.md"]


def test_summary_prints_one_verdict_line_each_after_the_table():
  result = _result([dict(r) for r in RECORDS])
  out = io.StringIO()
  bm.summary(result, out)
  lines = out.getvalue().splitlines()
  start = next(i for i, line in enumerate(lines) if line.startswith("targets of issue 11"))
  assert lines[start - 1].lstrip().startswith("forward ")  # the table's last row
  body = lines[start + 1:-1]
  assert body == [bm.verdict_line(v) for v in result["verdicts"]]
  assert lines[-1] == "total 3 s"
  assert all(line.split()[0] in ("[met]", "[MISSED]", "[not") for line in body)


def test_from_json_writes_the_markdown_of_a_saved_run(tmp_path):
  result = _result([dict(r) for r in RECORDS])
  (tmp_path / "bench.json").write_text(json.dumps(dict(result, verdicts=None)))
  argv = ["--from-json", str(tmp_path / "bench.json"), "--markdown", str(tmp_path / "b.md")]
  assert load_script("benchmark.py").main(argv) == 0
  assert (tmp_path / "b.md").read_text() == bm.markdown(result)


@pytest.mark.parametrize("argv", [
    ["--from-json", "bench.json"], ["--from-json", "missing.json", "--markdown", "b.md"],
    ["--from-json", "bad.json", "--markdown", "b.md"],
    ["--from-json", "bench.json", "--markdown", "MISSING/b.md"],
], ids=lambda a: " ".join(a))
def test_from_json_errors_exit_2_with_one_line(argv, tmp_path, capsys, monkeypatch):
  monkeypatch.chdir(tmp_path)
  (tmp_path / "bench.json").write_text(json.dumps(_result([dict(r) for r in RECORDS])))
  (tmp_path / "bad.json").write_text("{not json")
  assert load_script("benchmark.py").main(argv) == 2
  err = capsys.readouterr().err
  assert err.startswith("error: ") and err.count("\n") == 1, err
  assert not (tmp_path / "b.md").exists()

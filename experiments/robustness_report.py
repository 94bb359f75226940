"""Writes docs/robustness.md: every bad input and fault of tests/robustness_cases.py, run now.

    python experiments/robustness_report.py              # about 2 minutes on 2 idle cores
    python experiments/robustness_report.py --out FILE

The table is generated from the tests' own cases by running them: each bad input is run
in-process through its script's entry point (rnn_jax.cli.main, as the command line runs it) in
a fresh directory, and its row shows the exit status and the line the user sees on stderr;
each fault (a SIGKILL of a real training process, a Ctrl-C, a diverging loss, an unwritable
--out, damaged checkpoints, numerically extreme inputs) is run and its row shows what happened.
tests/test_robustness.py and tests/test_faults.py run the same cases and fail when a row of
docs/robustness.md no longer says what its case gives, so the doc stays true: after changing
a message, run this script again. Exit status 0 when every case keeps its contract, 1 when
some do not (their rows say FAILS, and the doc is still written).
"""
from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
import traceback
from pathlib import Path

from rnn_jax.verify import cases as rc

REPO = Path(__file__).resolve().parents[1]

DOC = REPO / "docs" / "robustness.md"
SCRIPTS = ("train_occupancy.py", "forecast.py", "train_letters.py", "benchmark.py")
# Flags most cases of a script share, left out of the doc's "arguments" column.
COMMON = {"train_occupancy.py": (" ".join(rc.TINY + ("--out", "out")), " ".join(rc.GENERIC),
                                 "--capacity 60"),
          "train_letters.py": (" ".join(rc.LETTERS_TINY),),
          "benchmark.py": (" ".join(rc.BENCH_TINY),), "forecast.py": ()}
SECTIONS = {"faults": "Faults", "numerical": "Numerical robustness"}


def cell(text: str) -> str:
  """``text`` safe inside a Markdown table cell."""
  return " ".join(str(text).split()).replace("|", "\\|")


def code(text: str) -> str:
  text = cell(text)
  return f"`` {text} ``" if "`" in text else f"`{text}`"


def arguments(case: rc.BadInput) -> str:
  shown = f" {' '.join(case.argv)} "
  for common in COMMON[case.script]:
    shown = shown.replace(f" {common} ", " ")
  return shown.strip() or "(only those)"


def stderr_cell(outcome: rc.Outcome) -> str:
  text = outcome.stderr.strip()
  if not text:
    return "(nothing on stderr)"
  if len(outcome.lines) == 1:
    return code(text)
  return f"({len(outcome.lines)} lines) " + code(" / ".join(outcome.lines[-3:]))


def bad_input_row(case: rc.BadInput, outcome: rc.Outcome) -> str:
  """The doc's row for ``case``; tests compare it with the doc (for cases that are exact)."""
  problems = rc.problems(case, outcome)
  verdict = f" **FAILS: {cell('; '.join(problems))}**" if problems else ""
  return (f"| `{case.id}` | {cell(case.problem)} | {code(arguments(case))} | {outcome.rc} | "
          f"{stderr_cell(outcome)}{verdict} |")


def row_prefix(case_id: str) -> str:
  return f"| `{case_id}` |"


def fault_prefix(obs: rc.Observation) -> str:
  """The part of a fault's row that does not depend on timing (tests compare it)."""
  return f"{row_prefix(obs.id)} {cell(obs.fault)} | {cell(obs.expected)} |"


def fault_row(obs: rc.Observation) -> str:
  n = len(obs.checks)
  verdict = (f" **FAILS: {cell(', '.join(obs.failed))}**" if obs.failed
             else f" ({n} check{'s hold' if n > 1 else ' holds'})")
  return f"{fault_prefix(obs)} {cell(obs.observed)}{verdict} |"


def run_bad_inputs(base: Path, log=print) -> list[tuple[rc.BadInput, rc.Outcome]]:
  run = rc.trained_run(base / "assets")
  results = []
  for case in rc.BAD_INPUTS:
    try:
      outcome = rc.run_bad_input(case, base / case.id, run if case.prepare else None)
    except Exception as err:  # noqa: BLE001  a traceback the user would see: report it
      last = traceback.format_exception_only(type(err), err)[-1].strip()
      outcome = rc.Outcome("exception", "", f"Traceback (most recent call last): ... {last}", [])
    results.append((case, outcome))
    log(f"  {case.id}: exit {outcome.rc}")
  return results


def run_faults(base: Path, log=print) -> list[tuple[rc.Fault, list[rc.Observation]]]:
  results = []
  for fault in rc.FAULTS:
    started = time.perf_counter()
    try:
      observations = fault.run(base / fault.name)
    except Exception as err:  # noqa: BLE001
      last = traceback.format_exception_only(type(err), err)[-1].strip()
      observations = [rc.Observation(i, fault.name, "", f"the procedure raised {last}",
                                     {"ran": False}) for i in fault.ids]
    results.append((fault, observations))
    log(f"  {fault.name}: {time.perf_counter() - started:.0f} s")
  return results


def render(bad: list[tuple[rc.BadInput, rc.Outcome]],
           faults: list[tuple[rc.Fault, list[rc.Observation]]]) -> str:
  per_script = collections.Counter(case.script for case, _ in bad)
  n_obs = {key: sum(len(obs) for f, obs in faults if f.section == key) for key in SECTIONS}
  failing = ([case.id for case, o in bad if rc.problems(case, o)]
             + [o.id for _, obs in faults for o in obs if o.failed])
  lines = [
      "# Robustness: what bad input and faults produce",
      "",
      "Generated by `python experiments/robustness_report.py` from the cases in",
      "`tests/robustness_cases.py`, which `tests/test_robustness.py` and `tests/test_faults.py`",
      "run; the tests fail when a row here no longer says what its case gives. Do not edit by",
      "hand: change the cases or the code, then run the script again.",
      "",
      f"Covered: **{len(bad)} bad-input cases** ("
      + ", ".join(f"{per_script[s]} for `{s}`" for s in SCRIPTS) + f"), **{n_obs['faults']} "
      f"fault cases** and **{n_obs['numerical']} numerical cases**.",
      "",
      ("Every case keeps its contract." if not failing else
       f"**{len(failing)} cases do not keep their contract yet:** "
       + ", ".join(f"`{i}`" for i in failing) + "."),
      "",
      "## Bad input",
      "",
      "The contract (issue 4): exit status 2, exactly one line on stderr, `error: <message>`,",
      "naming the file and the line, column or argument and what was expected; no traceback;",
      "and the working directory exactly as before (no output directory or file left behind).",
      "Each case runs in a fresh directory holding its input files (paths below are relative to",
      "it); `forecast.py` cases get a copy of a tiny trained run as `run/`, damaged as the",
      "problem says. A few cases also run as real processes in the tests, which check that",
      "the process prints the same line.",
      "",
  ]
  for script in SCRIPTS:
    rows = [(c, o) for c, o in bad if c.script == script]
    lines += [f"### `{script}` ({len(rows)} cases)", ""]
    if COMMON[script]:
      lines += ["Cases also pass " + " and ".join(f"`{c}`" for c in COMMON[script])
                + (" where the arguments do not say otherwise" if len(COMMON[script]) > 1
                   else "") + ".", ""]
    lines += ["| case | problem | arguments | exit | stderr |", "|---|---|---|---|---|"]
    lines += [bad_input_row(c, o) for c, o in rows]
    lines.append("")
  for key, title in SECTIONS.items():
    lines += [f"## {title}", ""]
    if key == "faults":
      lines += [
          "Training runs use H=8 on a small CSV (8 days of 10-minute readings). The SIGKILL",
          "cases kill real `train_occupancy.py` processes one after another, each resuming",
          "the run the previous one left, then a Ctrl-C, then a `--resume` to the end that",
          "is compared with an uninterrupted process running the same command.",
          ""]
    lines += ["| case | fault | expected | observed |", "|---|---|---|---|"]
    lines += [fault_row(o) for f, obs in faults if f.section == key for o in obs]
    lines.append("")
  return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--out", type=Path, default=DOC, help="where to write (default: %(default)s)")
  args = parser.parse_args(argv)
  from rnn_jax.common import fileio
  with tempfile.TemporaryDirectory(prefix="rnn_jax_robustness_") as tmp:
    base = Path(tmp)
    print("bad inputs:")
    bad = run_bad_inputs(base / "bad")
    print("faults:")
    faults = run_faults(base / "faults")
  text = render(bad, faults)
  args.out.parent.mkdir(parents=True, exist_ok=True)
  fileio.write_text(args.out, text)
  failing = ([c.id for c, o in bad if rc.problems(c, o)]
             + [o.id for _, obs in faults for o in obs if o.failed])
  print(f"wrote {args.out}: {len(bad)} bad inputs, "
        f"{sum(len(obs) for _, obs in faults)} fault and numerical cases"
        + (f"; {len(failing)} do not keep their contract: {', '.join(failing)}" if failing
           else "; every case keeps its contract"))
  return 1 if failing else 0


if __name__ == "__main__":
  sys.exit(main())

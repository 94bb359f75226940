"""Writes docs/robustness.md: every bad input and fault of the robustness tests, run now.

    python tests/robustness/write_doc.py              # from the checkout; about 2 minutes
    python tests/robustness/write_doc.py --out FILE

Each bad input (robustness_cases.BAD_INPUTS) is run in-process through its script's ``main`` in
a fresh directory, and its row shows the exit status and the line the user sees on stderr; each
fault (robustness_faults.FAULTS) is run and its row shows what happened. test_robustness.py and
test_faults.py build the same rows (``bad_input_row``, ``fault_prefix``) and fail when the doc no
longer holds them, so after changing a message, run this again. Exit status 0 when every case
keeps its contract, 1 when some do not (their rows say FAILS, and the doc is still written).
"""
from __future__ import annotations

import collections
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
if __name__ == "__main__":          # run as a file: the checkout's rnn_jax and the tests' modules
  sys.path[:0] = [str(HERE.parents[1]), str(HERE.parent), str(HERE)]

from rnn_jax.common import cli, fileio  # noqa: E402

import robustness_cases as cases  # noqa: E402
from robustness_cases import (BAD_INPUTS, BENCH_TINY, GENERIC, LETTERS_TINY, SCRIPTS,  # noqa: E402
                              TINY, BadInput, Outcome, trained_run)
from robustness_faults import FAULTS, Fault, Observation  # noqa: E402

DOC = HERE.parents[1] / "docs" / "robustness.md"

# Flags most cases of a script share, left out of the doc's "arguments" column.
COMMON = {"train_occupancy.py": (" ".join(TINY + ("--out", "out")), " ".join(GENERIC),
                                 "--capacity 60"),
          "train_letters.py": (" ".join(LETTERS_TINY),),
          "benchmark.py": (" ".join(BENCH_TINY),), "forecast.py": ()}
SECTIONS = {"faults": "Faults", "numerical": "Numerical robustness"}


def cell(text: str) -> str:
  """``text`` safe inside a Markdown table cell."""
  return " ".join(str(text).split()).replace("|", "\\|")


def code(text: str) -> str:
  text = cell(text)
  return f"`` {text} ``" if "`" in text else f"`{text}`"


def arguments(case: BadInput) -> str:
  shown = f" {' '.join(case.argv)} "
  for common in COMMON[case.script]:
    shown = shown.replace(f" {common} ", " ")
  return shown.strip() or "(only those)"


def stderr_cell(outcome: Outcome) -> str:
  text = outcome.stderr.strip()
  if not text:
    return "(nothing on stderr)"
  if len(outcome.lines) == 1:
    return code(text)
  return f"({len(outcome.lines)} lines) " + code(" / ".join(outcome.lines[-3:]))


def bad_input_row(case: BadInput, outcome: Outcome) -> str:
  """The doc's row for ``case``; tests compare it with the doc (for cases that are exact)."""
  problems = cases.violations(case, outcome)
  verdict = f" **FAILS: {cell('; '.join(problems))}**" if problems else ""
  return (f"| `{case.id}` | {cell(case.problem)} | {code(arguments(case))} | {outcome.rc} | "
          f"{stderr_cell(outcome)}{verdict} |")


def row_prefix(case_id: str) -> str:
  return f"| `{case_id}` |"


def fault_prefix(obs: Observation) -> str:
  """The part of a fault's row that does not depend on timing (tests compare it)."""
  return f"{row_prefix(obs.id)} {cell(obs.fault)} | {cell(obs.expected)} |"


def fault_row(obs: Observation) -> str:
  n = len(obs.checks)
  verdict = (f" **FAILS: {cell(', '.join(obs.failed))}**" if obs.failed
             else f" ({n} check{'s hold' if n > 1 else ' holds'})")
  return f"{fault_prefix(obs)} {cell(obs.observed)}{verdict} |"


def run_bad_inputs(base: Path, log=print) -> list[tuple[BadInput, Outcome]]:
  run = trained_run(base / "assets")
  results = []
  for case in BAD_INPUTS:
    try:
      outcome = cases.run_case(case, base / case.id, run if case.prepare else None)
    except Exception as err:  # noqa: BLE001  a traceback the user would see: report it
      last = traceback.format_exception_only(type(err), err)[-1].strip()
      outcome = Outcome("exception", "", f"Traceback (most recent call last): ... {last}", [])
    results.append((case, outcome))
    log(f"  {case.id}: exit {outcome.rc}")
  return results


def run_faults(base: Path, log=print) -> list[tuple[Fault, list[Observation]]]:
  results = []
  for fault in FAULTS:
    started = time.perf_counter()
    try:
      observations = fault.run(base / fault.name)
    except Exception as err:  # noqa: BLE001
      last = traceback.format_exception_only(type(err), err)[-1].strip()
      observations = [Observation(i, fault.name, "", f"the procedure raised {last}",
                                     {"ran": False}) for i in fault.ids]
    results.append((fault, observations))
    log(f"  {fault.name}: {time.perf_counter() - started:.0f} s")
  return results


def render(bad: list[tuple[BadInput, Outcome]],
           faults: list[tuple[Fault, list[Observation]]]) -> str:
  per_script = collections.Counter(case.script for case, _ in bad)
  n_obs = {key: sum(len(obs) for f, obs in faults if f.section == key) for key in SECTIONS}
  failing = ([case.id for case, o in bad if cases.violations(case, o)]
             + [o.id for _, obs in faults for o in obs if o.failed])
  lines = [
      "# Robustness: what bad input and faults produce",
      "",
      "Generated by `python tests/robustness/write_doc.py` from the cases in `tests/robustness/`",
      "(robustness_cases.py, robustness_faults.py), which `test_robustness.py` and",
      "`test_faults.py` there run; the tests fail when a row here no longer says what its case",
      "gives. Do not edit by hand: change the cases or the code, then run the script again.",
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
      "The contract: exit status 2, exactly one line on stderr, `error: <message>`,",
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


def write(out: Path = DOC) -> int:
  """Runs every bad input and fault (about 2 minutes on 2 idle cores), writes the doc to
  ``out`` and prints a summary. Returns the exit status: 0 when every case keeps its contract,
  1 when some do not (their rows say FAILS, and the doc is still written)."""
  with tempfile.TemporaryDirectory(prefix="rnn_jax_robustness_") as tmp:
    base = Path(tmp)
    print("bad inputs:")
    bad = run_bad_inputs(base / "bad")
    print("faults:")
    observed = run_faults(base / "faults")
  text = render(bad, observed)
  out.parent.mkdir(parents=True, exist_ok=True)
  fileio.write_text(out, text)
  failing = ([c.id for c, o in bad if cases.violations(c, o)]
             + [o.id for _, obs in observed for o in obs if o.failed])
  print(f"wrote {out}: {len(bad)} bad inputs, "
        f"{sum(len(obs) for _, obs in observed)} fault and numerical cases"
        + (f"; {len(failing)} do not keep their contract: {', '.join(failing)}" if failing
           else "; every case keeps its contract"))
  return 1 if failing else 0


@cli.entry_point
def main(argv: list[str] | None = None) -> int:
  parser = cli.ArgumentParser(prog="write_doc.py", description=__doc__.split("\n")[0])
  parser.add_argument("--out", type=Path, default=DOC, help="where to write (default: %(default)s)")
  return write(parser.parse_args(argv).out)


if __name__ == "__main__":
  sys.exit(main())

"""Bad input to every script: exit 2, one line naming what was wrong, no traceback, nothing left.

The cases are one table (robustness_cases.BAD_INPUTS); docs/robustness.md is generated from them
by write_doc.py, and every test here also checks that the doc's row for its case is what the case
gives today. Cases call the script's ``main(argv)`` in-process (``load_script``, importing JAX
once) in a fresh directory; a few run as real processes to prove the exit status and the absence
of a traceback end to end.
"""
from __future__ import annotations

import collections

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st

from rnn_jax import data
from rnn_jax.common.errors import InputError

import robustness_cases as cases
import robustness_faults as faults
import write_doc as report
from conftest import ROBUSTNESS_STALE as STALE


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A tiny trained run (H=8, one epoch), copied and damaged by the forecast.py cases."""
  return cases.shared_run()


# --------------------------------------------------------------------------------------------
# The table itself


def test_cases_are_unique_and_cover_every_script():
  ids = [c.id for c in cases.BAD_INPUTS]
  assert len(ids) == len(set(ids)), [i for i, n in collections.Counter(ids).items() if n > 1]
  assert {c.script for c in cases.BAD_INPUTS} == set(cases.SCRIPTS)
  assert all(c.expect for c in cases.BAD_INPUTS)
  # The bad inputs every script must refuse, case by case.
  required = [
      "occ-missing-file", "occ-directory", "occ-empty-file", "occ-header-only", "occ-not-utf8",
      "occ-binary", "occ-gym-columns-absent", "occ-column-absent", "occ-duplicate-column",
      "occ-non-numeric", "occ-negative-strict", "occ-nan", "occ-infinite", "occ-bad-timestamp",
      "occ-mixed-offsets", "occ-above-capacity-strict", "occ-frozen-strict",
      "occ-max-flat-hours-negative", "occ-capacity-zero", "occ-capacity-negative",
      "occ-too-few-readings", "occ-empty-val-split", "occ-empty-test-split", "occ-window-zero",
      "occ-horizon-zero", "occ-batch-zero", "occ-lr-not-number", "occ-seeds-zero",
      "occ-unknown-feature", "fc-run-missing", "fc-run-no-checkpoint", "fc-checkpoint-truncated",
      "fc-features-incompatible", "fc-window-incompatible", "let-missing-file", "let-directory",
      "let-empty-file", "let-header-only", "let-not-utf8", "let-binary", "let-batch-zero",
      "let-lr-not-number", "bench-batch-zero", "bench-seq-len-zero", "bench-lr-not-number"]
  assert not set(required) - set(ids), set(required) - set(ids)


def test_doc_lists_every_case_and_nothing_else(doc_lines):
  in_doc = [line.split("`")[1] for line in doc_lines if line.startswith("| `")]
  fault_ids = [i for f in faults.FAULTS for i in f.ids]
  assert sorted(in_doc) == sorted([c.id for c in cases.BAD_INPUTS] + fault_ids), STALE
  counts = collections.Counter(c.script for c in cases.BAD_INPUTS)
  assert f"**{len(cases.BAD_INPUTS)} bad-input cases**" in "\n".join(doc_lines), STALE
  for script, n in counts.items():
    assert f"### `{script}` ({n} cases)" in doc_lines, STALE


def test_write_doc_refuses_a_bad_argument_in_one_line(capsys):
  """write_doc.py parses with rnn_jax.common.cli: exit 2, one line."""
  assert report.main(["--bogus"]) == 2
  assert capsys.readouterr().err == ("error: write_doc.py: unrecognized arguments: "
                                     "--bogus (see --help)\n")


# --------------------------------------------------------------------------------------------
# Every case, in-process


@pytest.mark.parametrize("case", cases.BAD_INPUTS, ids=lambda c: c.id)
def test_bad_input(case, tmp_path, request, doc_lines):
  run = request.getfixturevalue("trained") if case.prepare else None
  outcome = cases.run_case(case, tmp_path / "work", run)
  assert not cases.violations(case, outcome), cases.violations(case, outcome)
  row = report.bad_input_row(case, outcome)
  in_doc = (row in doc_lines if case.exact else
            any(line.startswith(report.row_prefix(case.id)) for line in doc_lines))
  if not in_doc:
    pytest.fail(f"{STALE}; its row for this case would be:\n{row}")


# --------------------------------------------------------------------------------------------
# End to end: real processes print the same one line, exit 2, no traceback, leave nothing


E2E = ("occ-not-utf8", "fc-checkpoint-truncated", "let-bad-label", "bench-unknown-variant")


def test_real_processes_exit_2_with_the_same_line(tmp_path, trained):
  """One case per script as ``python experiments/<script> ...`` (default platform, so a
  warning JAX prints when it starts would show up here), the four processes side by side."""
  by_id = {c.id: c for c in cases.BAD_INPUTS}
  procs = {}
  for id in E2E:
    case = by_id[id]
    work = tmp_path / id
    cases.make_workdir(case, work, trained if case.prepare else None)
    procs[id] = (case, work, cases.snapshot(work),
                 cases.python(case.script, case.argv, work, cpu=False))
  for id, (case, work, before, proc) in procs.items():
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 2, (id, stdout, stderr)
    assert "Traceback" not in stderr, stderr
    assert stderr.count("\n") == 1 and stderr.startswith("error: "), (id, stderr)
    in_process = cases.run_case(case, tmp_path / f"{id}-in-process",
                                trained if case.prepare else None)
    assert stderr == in_process.stderr, (stderr, in_process.stderr)
    assert cases.snapshot(work) == before, id


# --------------------------------------------------------------------------------------------
# Damaged files (extends tests/data/test_readings.py's damage of a generic CSV): the campus gym format
# recognised by itself, offsets, a capacity column, line-level damage, and what comes after
# reading (the grid and the windows).

# 60 readings every 10 minutes (10 hours), offsets as in the gym file, a capacity column.
_GYM = ["number_people,date,weekday,cap"] + [
    f"{k % 50},2024-03-04 {8 + k // 6:02d}:{10 * (k % 6):02d}:0{k % 10}-07:00,0,60"
    for k in range(60)]


@st.composite
def damaged_gym(draw):
  lines = list(_GYM)
  kinds = st.sampled_from(["cut-line", "drop-field", "quote", "bytes", "swap-lines",
                           "permute-columns", "permute-header", "blank", "duplicate-line",
                           "crlf", "cut-file"])
  for _ in range(draw(st.integers(1, 3))):
    if not lines:
      break
    kind = draw(kinds)
    i = draw(st.integers(0, len(lines) - 1))
    if kind == "cut-line":
      lines[i] = lines[i][:draw(st.integers(0, max(len(lines[i]) - 1, 0)))]
    elif kind == "drop-field":
      fields = lines[i].split(",")
      del fields[draw(st.integers(0, len(fields) - 1))]
      lines[i] = ",".join(fields)
    elif kind == "quote":
      pos = draw(st.integers(0, len(lines[i])))
      lines[i] = lines[i][:pos] + '"' + lines[i][pos:]
    elif kind == "bytes":
      pos = draw(st.integers(0, len(lines[i])))
      junk = draw(st.binary(min_size=1, max_size=4)).decode("latin-1")
      lines[i] = lines[i][:pos] + junk + lines[i][pos:]
    elif kind == "swap-lines":
      j = draw(st.integers(0, len(lines) - 1))
      lines[i], lines[j] = lines[j], lines[i]
    elif kind in ("permute-columns", "permute-header"):
      order = draw(st.permutations(range(4)))
      targets = range(len(lines)) if kind == "permute-columns" else [0]
      for j in targets:
        fields = lines[j].split(",")
        if len(fields) == 4:
          lines[j] = ",".join(fields[o] for o in order)
    elif kind == "blank":
      lines.insert(i, "")
    elif kind == "duplicate-line":
      lines.insert(i, lines[i])
    elif kind == "crlf":
      lines = [line + "\r" for line in lines]
    else:
      lines = lines[:i]
  text = "\n".join(lines) + "\n"
  # Mostly UTF-8; sometimes written as Latin-1, so that junk bytes are not UTF-8.
  return text.encode(draw(st.sampled_from(["utf-8", "utf-8", "latin-1"])))


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=damaged_gym(), with_capacity=st.booleans())
def test_damaged_gym_files_load_or_fail_with_one_line(tmp_path, content, with_capacity):
  path = tmp_path / "gym.csv"
  path.write_bytes(content)
  kwargs = {"capacity_column": "cap"} if with_capacity else {}
  try:
    readings = data.read_csv(path, **kwargs)
  except InputError as err:
    assert "\n" not in str(err) and str(path) in str(err), str(err)
    event("read_csv: InputError")
    return
  assert len(readings) >= 1
  assert np.isfinite(readings.value).all() and (readings.value >= 0).all()
  assert (np.diff(readings.time_utc.astype(np.int64)) >= 0).all()
  if with_capacity:
    assert (readings.value <= readings.capacity).all()
  # What was read goes on to the grid and windows, or fails with the one line too.
  try:
    ds = data.make_dataset(readings, data.WindowSpec(window=3, horizons=(1,)))
  except InputError as err:
    assert "\n" not in str(err), str(err)
    event("loaded; make_dataset: InputError")
    return
  event("loaded and made windows")
  for split in data.SPLITS:
    assert np.isfinite(ds[split].xs).all() and ((ds[split].ys >= 0) & (ds[split].ys <= 1)).all()


def test_the_undamaged_gym_sample_loads_and_makes_windows(tmp_path):
  """The hypothesis test's starting point is valid (so its damage is what fails)."""
  path = tmp_path / "gym.csv"
  path.write_text("\n".join(_GYM) + "\n")
  readings = data.read_csv(path)
  assert len(readings) == 60 and readings.format == "campus_gym"
  assert len(data.make_dataset(readings, data.WindowSpec(window=3, horizons=(1,))).train) > 0

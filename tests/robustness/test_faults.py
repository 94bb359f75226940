"""Faults lose nothing: SIGKILL at several moments, Ctrl-C, --resume to the same result, a
non-finite loss, an unwritable --out, damaged checkpoints, leftovers of a killed write; and the
numerically extreme inputs (constant, all-zero and at-capacity windows, huge logits).

Each fault is a procedure listed in robustness_faults.FAULTS that returns observations with named
checks; write_doc.py runs the same procedures for docs/robustness.md, and the test checks that
the doc's row for each observation still describes it.
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from rnn_jax.common.errors import InputError
from rnn_jax.forecasting import forecast
from rnn_jax.train import checkpoint

import robustness_cases as cases
import robustness_faults as faults
import write_doc as report
from conftest import ROBUSTNESS_STALE as STALE


def _marks(fault):
  return [pytest.mark.slow] if fault.subprocesses else []


@pytest.mark.parametrize("fault", [pytest.param(f, marks=_marks(f), id=f.name)
                                   for f in faults.FAULTS])
def test_fault(fault, tmp_path, doc_lines):
  observations = fault.run(tmp_path)
  assert [o.id for o in observations] == list(fault.ids)
  failed = {o.id: (o.failed, o.observed) for o in observations if o.failed}
  assert not failed, failed
  for o in observations:
    prefix = report.fault_prefix(o)
    if not any(line.startswith(prefix) for line in doc_lines):
      pytest.fail(f"{STALE}; its row for {o.id} would start:\n{prefix}")


def test_fault_ids_are_unique_and_distinct_from_bad_inputs():
  ids = [i for f in faults.FAULTS for i in f.ids]
  assert len(ids) == len(set(ids))
  assert not set(ids) & {c.id for c in cases.BAD_INPUTS}


# --------------------------------------------------------------------------------------------
# Damaged checkpoints, at random (the fault ``damaged_checkpoint`` sweeps them in order)


@pytest.fixture(scope="module")
def run_dir():
  return cases.shared_run()


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_checkpoint_loads_or_fails_with_one_line(run_dir, tmp_path_factory, data):
  good = (run_dir / checkpoint.FILENAME).read_bytes()
  damaged = bytearray(good)
  for _ in range(data.draw(st.integers(1, 4))):
    kind = data.draw(st.sampled_from(["cut", "flip", "insert", "delete"]))
    pos = data.draw(st.integers(0, max(len(damaged) - 1, 0)))
    if kind == "cut":
      del damaged[pos:]
    elif kind == "flip" and damaged:
      damaged[pos] ^= 1 << data.draw(st.integers(0, 7))
    elif kind == "insert":
      damaged[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
    elif damaged:
      del damaged[pos:pos + data.draw(st.integers(1, 16))]
  target = tmp_path_factory.mktemp("damaged")
  for name in ("config.json", checkpoint.FILENAME):
    (target / name).write_bytes((run_dir / name).read_bytes())
  (target / checkpoint.FILENAME).write_bytes(bytes(damaged))
  try:
    config, params = forecast.load_run(target)
  except InputError as err:
    assert "\n" not in str(err) and str(target) in str(err), str(err)
  else:
    assert params.U.shape == (8, 8) and params.V.shape == (8, 1)

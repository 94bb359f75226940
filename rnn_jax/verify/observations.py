"""What a fault case records: ``Observation`` rows, and the probes of a run directory they use.

A fault is a procedure (rnn_jax.verify.faults lists them) that returns ``Observation`` rows:
what was done, what must follow, what happened, and named checks that must all hold. The
probes here are shared by several procedures: whether a run's checkpoint loads
(``loadable``), its metrics without wall-clock times (``metric_rows``), and ``one_line`` for
putting a process's output in a table cell.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path


@dataclasses.dataclass
class Observation:
  """One row of the faults table."""
  id: str
  fault: str                   # what was done
  expected: str                # what must follow
  observed: str                # what happened (exit status, the message)
  checks: dict[str, bool]      # named checks; all must hold

  @property
  def failed(self) -> list[str]:
    return [name for name, ok in self.checks.items() if not ok]


def one_line(text: str, limit: int = 300) -> str:
  """``text`` on one line, whitespace collapsed, cut after ``limit`` characters."""
  text = " ".join(text.split())
  return text if len(text) <= limit else text[:limit] + " ..."


def loadable(out: Path) -> tuple[bool, int | None, str]:
  """``(loads, epoch, error)`` for the checkpoint in ``out``: its state and both parameter sets."""
  from rnn_jax.train import checkpoint
  try:
    state = checkpoint.load(out / checkpoint.FILENAME)
    checkpoint.load_params(out / checkpoint.FILENAME)
    checkpoint.load_params(out / checkpoint.FILENAME, best=False)
    return True, int(state["epoch"]), ""
  except Exception as err:  # noqa: BLE001
    return False, None, f"{type(err).__name__}: {err}"


def metric_rows(run: Path) -> list[dict]:
  """The rows of ``run/metrics.jsonl`` without their wall-clock ``elapsed_s``."""
  rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
  for row in rows:
    row.pop("elapsed_s", None)
  return rows

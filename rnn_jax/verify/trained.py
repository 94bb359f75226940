"""A tiny trained run (H=8, one epoch, in-process), for the forecast.py cases and the faults.

``shared_run`` trains it once per process; cases copy it before damaging it.
"""
from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from rnn_jax.verify.bad_inputs import GENERIC, tiny
from rnn_jax.verify.inputs import GOOD
from rnn_jax.verify.runner import call_script


def train_args(csv: str, out: str, *extra: str, epochs: int = 1) -> list[str]:
  """argv of a tiny train_occupancy.py run of the notes' configuration (one model, T=24)."""
  return ["--csv", csv, *GENERIC, "--capacity", "60", *tiny(epochs), "--patience", "0",
          "--out", out, *extra]


_SHARED: dict[str, Path] = {}


def shared_run() -> Path:
  """One tiny trained run per process (``trained_run`` in a temporary directory removed at
  exit). Never modify it: cases copy it before damaging it."""
  if "run" not in _SHARED:
    directory = Path(tempfile.mkdtemp(prefix="rnn_jax_trained_"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    _SHARED["run"] = trained_run(directory)
  return _SHARED["run"]


def trained_run(directory: Path) -> Path:
  """Trains a tiny model (H=8, one epoch) on ``readings_csv()`` in-process: ``directory/run``."""
  directory.mkdir(parents=True, exist_ok=True)
  (directory / "readings.csv").write_bytes(GOOD)
  outcome = call_script("train_occupancy.py", train_args("readings.csv", "run"), directory)
  if outcome.rc != 0:
    raise RuntimeError(f"the tiny training run failed: {outcome.stderr}")
  return directory / "run"

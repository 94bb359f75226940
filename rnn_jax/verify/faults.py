"""The faults rnn_jax is tried with, as data: ``FAULTS``, one ``Fault`` per procedure.

A ``Fault`` is a procedure (a SIGKILL of a real training process, a Ctrl-C, a diverging loss,
an unwritable ``--out``, a numerically extreme input) that returns ``Observation`` rows
(rnn_jax.verify.observations): what was done, what must follow, what happened, and named
checks that must all hold. The procedures live by kind in rnn_jax.verify.interrupts, .damage
and .numerical; tests/verify/test_faults.py runs each, and experiments/robustness_report.py
writes their rows into docs/robustness.md.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

from rnn_jax.verify.damage import damaged_checkpoint, leftover_temp_files, unwritable_out
from rnn_jax.verify.interrupts import ctrl_c_outside_training, kill_and_resume
from rnn_jax.verify.numerical import degenerate_windows, extreme_logits, nonfinite
from rnn_jax.verify.observations import Observation


@dataclasses.dataclass(frozen=True)
class Fault:
  """One fault procedure: ``run(workdir)`` returns the observations named ``ids``."""
  name: str
  ids: tuple[str, ...]         # the observations ``run`` returns, in order
  run: Callable[[Path], list[Observation]]
  subprocesses: int = 0        # real processes it starts (each imports JAX: seconds)
  section: str = "faults"      # "faults" or "numerical" (the doc's section)


FAULTS: tuple[Fault, ...] = (
    Fault("kill_and_resume", ("kill-first-checkpoint", "kill-after-an-epoch", "kill-random-time",
                              "ctrl-c", "resume-equals-uninterrupted"), kill_and_resume,
          subprocesses=6),
    Fault("ctrl_c_outside_training", ("ctrl-c-after-training",), ctrl_c_outside_training),
    Fault("leftover_temp_files", ("leftovers-resume", "leftovers-overwrite",
                                  "leftover-only-overwrite"), leftover_temp_files),
    Fault("nonfinite", ("nonfinite-loss",), nonfinite),
    Fault("unwritable_out", ("out-under-a-file", "out-in-proc", "out-disk-full"), unwritable_out),
    Fault("damaged_checkpoint", ("damaged-checkpoint",), damaged_checkpoint),
    Fault("degenerate_windows", ("degenerate-windows",), degenerate_windows,
          section="numerical"),
    Fault("extreme_logits", ("extreme-logits",), extreme_logits, section="numerical"),
)

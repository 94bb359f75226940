"""A live process holding a run directory's lock (rnn_jax.common.rundir.lock), as a run does."""
from __future__ import annotations

import os
import subprocess
import sys

from conftest import REPO

HOLD = """
import sys, time
from pathlib import Path
from rnn_jax.common import rundir
with rundir.lock(Path(sys.argv[1]), staged=sys.argv[2] == "staged"):
  print("held", flush=True)
  time.sleep(600)
"""


def hold_lock(out, staged=False) -> subprocess.Popen:
  """Returns once the process holds ``out``'s lock; ``kill()`` it to let go (SIGKILL)."""
  holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out), "staged" if staged else "-"],
                            stdout=subprocess.PIPE, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
  assert holder.stdout.readline() == "held\n"
  return holder


def snapshot(directory) -> dict:
  """Every file under ``directory``: its bytes and modification time."""
  return {str(p.relative_to(directory)): (p.read_bytes(), p.stat().st_mtime_ns)
          for p in sorted(directory.rglob("*")) if p.is_file()}

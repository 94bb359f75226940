"""Running the scripts of experiments/ for the cases: in-process through rnn_jax.common.cli.main
(``call_script``, ``run_bad_input``), or as a real process (``python``); and checking a bad
input's outcome against its contract (``violations``).

In-process runs import JAX once for all cases; they capture stdout and stderr, take the working
directory's absolute path out of both (paths read as typed) and list every path the run added,
removed or changed.
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Callable
from unittest import mock

from rnn_jax.verify.bad_inputs import BadInput

REPO = Path(__file__).resolve().parents[2]
EXPERIMENTS = REPO / "experiments"
# The function each script hands to rnn_jax.common.cli.main (what its ``__main__`` block runs).
ENTRY = {"train_occupancy.py": "main", "forecast.py": "main", "train_letters.py": "main",
         "benchmark.py": "main"}


@dataclasses.dataclass
class Outcome:
  """What one in-process run of a script gave."""
  rc: int | str                # exit status, or "exception" when one escaped cli.main
  stdout: str
  stderr: str
  changed: list[str]           # paths added, removed or modified in the working directory

  @property
  def lines(self) -> list[str]:
    return self.stderr.splitlines()

  @property
  def message(self) -> str:
    """The one stderr line without its ``error: `` prefix (or the whole stderr)."""
    text = self.stderr.strip()
    return text[len("error: "):] if text.startswith("error: ") and "\n" not in text else text


_MAINS: dict[str, Callable] = {}


def script_main(script: str) -> Callable:
  """The entry function of ``experiments/<script>`` (loaded once with runpy)."""
  if script not in _MAINS:
    module = runpy.run_path(str(EXPERIMENTS / script), run_name=f"rnn_jax_script_{script}")
    _MAINS[script] = module[ENTRY[script]]
  return _MAINS[script]


def snapshot(root: Path) -> dict[str, tuple]:
  """Every path under ``root`` with its kind, size and modification time."""
  out = {}
  for p in sorted(root.rglob("*")):
    st = p.lstat()
    out[str(p.relative_to(root))] = (p.is_dir(), st.st_size if not p.is_dir() else 0,
                                     st.st_mtime_ns if not p.is_dir() else 0)
  return out


def make_workdir(case: BadInput, workdir: Path, run: Path | None) -> None:
  """Creates the case's files (and its prepared run) in the empty ``workdir``."""
  workdir.mkdir(parents=True, exist_ok=True)
  for name, content in case.files:
    path = workdir / name
    if content is None:
      path.mkdir(parents=True)
    else:
      path.parent.mkdir(parents=True, exist_ok=True)
      path.write_bytes(content)
  if case.prepare is not None:
    if run is None:
      raise ValueError(f"{case.id}: needs a trained run (trained_run)")
    case.prepare(workdir, run)


def call_script(script: str, argv, workdir: Path) -> Outcome:
  """Runs ``cli.main(<script's entry>, argv)`` in ``workdir``, capturing its output."""
  main = script_main(script)
  before = snapshot(workdir)
  out, err = io.StringIO(), io.StringIO()
  # sys.argv[0] is argparse's program name in messages: the script's, as when run as a command.
  with contextlib.chdir(workdir), contextlib.redirect_stdout(out), \
      contextlib.redirect_stderr(err), \
      mock.patch.object(sys, "argv", [script, *argv]):
    rc = main(list(argv))
  after = snapshot(workdir)
  changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
  return Outcome(rc, relative(out.getvalue(), workdir), relative(err.getvalue(), workdir), changed)


def relative(text: str, workdir: Path) -> str:
  """``text`` with the working directory's absolute path taken out (paths as typed)."""
  for d in {str(workdir.absolute()), str(workdir.resolve())}:
    text = text.replace(d + os.sep, "").replace(d, ".")
  return text


def run_bad_input(case: BadInput, workdir: Path, run: Path | None = None) -> Outcome:
  """Sets up ``workdir`` for ``case`` and runs it in-process."""
  make_workdir(case, workdir, run)
  return call_script(case.script, case.argv, workdir)


def violations(case: BadInput, outcome: Outcome) -> list[str]:
  """What is wrong with ``outcome`` against the bad-input contract (empty: all good)."""
  found = []
  if outcome.rc != 2:
    found.append(f"exit status {outcome.rc}, expected 2")
  if len(outcome.lines) != 1 or not outcome.stderr.startswith("error: "):
    found.append(f"stderr is not one 'error: ' line: {outcome.stderr!r}")
  if "Traceback" in outcome.stderr:
    found.append("a traceback on stderr")
  missing = [f for f in case.expect if f not in outcome.message]
  if missing:
    found.append(f"message lacks {missing}: {outcome.message!r}")
  if outcome.changed:
    found.append(f"left behind or changed: {outcome.changed}")
  return found


def python(script: str, argv, cwd: Path, *, cpu: bool = True, **kw) -> subprocess.Popen:
  """``python experiments/<script> argv`` in ``cwd`` (on the CPU unless ``cpu=False``)."""
  env = dict(os.environ, PYTHONUNBUFFERED="1")
  if cpu:
    env["JAX_PLATFORMS"] = "cpu"      # the bit-for-bit resume claim is for the CPU
  return subprocess.Popen([sys.executable, str(EXPERIMENTS / script), *argv], cwd=cwd, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)

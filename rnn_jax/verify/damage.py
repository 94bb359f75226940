"""Run directories that cannot be written, damaged checkpoints, and the temporary files a killed
atomic write leaves behind: each gives one line and exit 2, or is recovered from.

``unwritable_out`` stops training from starting (it spies on rnn_jax.train.loop's run);
``damaged_checkpoint`` loads hundreds of damaged copies of a real checkpoint;
``leftover_temp_files`` resumes and overwrites run directories holding half-written files.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np

from rnn_jax.common import fileio
from rnn_jax.verify.inputs import GOOD
from rnn_jax.verify.observations import Observation, one_line
from rnn_jax.verify.runner import call_script
from rnn_jax.verify.trained import shared_run, train_args, trained_run


def unwritable_out(workdir: Path) -> list[Observation]:
  """--out that cannot be written (tests run as root, so chmod would not stop them): under a
  regular file, inside /proc, and a full disk (ENOSPC from fsync, simulated). One line, exit 2,
  before any training, nothing left behind."""
  from rnn_jax.train import loop
  from rnn_jax.train import checkpoint
  workdir.mkdir(parents=True, exist_ok=True)
  (workdir / "readings.csv").write_bytes(GOOD)
  obs = []
  cases = [
      ("out-under-a-file", "--out readings.csv/run: its parent is a regular file",
       "readings.csv/run", None),
      ("out-in-proc", "--out /proc/rnn_jax/run: a file system that refuses new directories, "
       "even to root", "/proc/rnn_jax/run", None),
      ("out-disk-full", "--out run on a full disk (fsync raises ENOSPC, simulated)", "run",
       OSError(28, "No space left on device")),
  ]
  for id, fault, out, error in cases:
    started = []
    real_run = loop._Run.run

    def spy(self, *a, **k):
      started.append(True)
      return real_run(self, *a, **k)

    def fail_fsync(fd):
      raise error

    with contextlib.ExitStack() as stack:
      stack.enter_context(mock.patch.object(loop._Run, "run", spy))
      if error is not None:
        stack.enter_context(mock.patch.object(checkpoint.os, "fsync", fail_fsync))
      o = call_script("train_occupancy.py", train_args("readings.csv", out), workdir)
    obs.append(Observation(
        id, fault, "exit status 2, one line naming the directory and the reason, before any "
        "training; nothing left behind",
        f"exit {o.rc}: {o.stderr.strip()}",
        {"exit status 2": o.rc == 2, "one line": len(o.lines) == 1,
         "names the directory": out in o.stderr, "no training started": not started,
         "nothing left behind": not o.changed and not Path("/proc/rnn_jax").exists()}))
  return obs


def damaged_checkpoint(workdir: Path) -> list[Observation]:
  """A real checkpoint cut off at every length (step 7 bytes) and with 200 random byte changes:
  every copy is refused with one InputError line naming the file (the checksum catches changes
  inside the arrays that msgpack cannot notice), never loaded and never another exception."""
  from rnn_jax.train import checkpoint
  from rnn_jax.forecasting import forecast
  from rnn_jax.common.errors import InputError
  run = shared_run()
  good = (run / checkpoint.FILENAME).read_bytes()
  rng = np.random.default_rng(0)
  variants = [good[:k] for k in range(0, len(good), 7)]
  for _ in range(200):
    b = bytearray(good)
    for pos in rng.integers(0, len(b), rng.integers(1, 4)):
      b[pos] = (b[pos] + int(rng.integers(1, 256))) % 256       # always a different byte
    variants.append(bytes(b))
  counts = {"loaded": 0, "InputError": 0}
  other = []
  target = workdir / "damaged"
  shutil.copytree(run, target)
  for data in variants:
    (target / checkpoint.FILENAME).write_bytes(data)
    try:
      forecast.load_run(target)
      counts["loaded"] += 1
    except InputError as err:
      counts["InputError"] += 1
      if "\n" in str(err) or str(target) not in str(err):
        other.append(f"not one line naming the file: {err!r}")
    except Exception as err:  # noqa: BLE001
      other.append(f"{type(err).__name__}: {err}")
  return [Observation(
      "damaged-checkpoint", f"forecast's load_run on {len(variants)} damaged copies of a real "
      "checkpoint (cut off at every 7th byte; 1-3 random bytes changed)",
      "each is refused with one InputError line naming the file (the SHA-256 checksum catches "
      "what msgpack cannot notice); none loads; no other exception",
      f"{counts['loaded']} loaded, {counts['InputError']} one-line InputErrors, "
      f"{len(other)} other" + (f" (first: {one_line(other[0], 200)})" if other else ""),
      {"every copy refused": counts["loaded"] == 0, "one line naming the file": not other})]


def _leftover(directory: Path, name: str, data: bytes = b"\x93partial") -> str:
  """A temporary file exactly as fileio.atomic_path names it, as a SIGKILL mid-write leaves it."""
  fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
  os.write(fd, data)
  os.close(fd)
  return Path(tmp).name


def leftover_temp_files(workdir: Path) -> list[Observation]:
  """Temporary files that a SIGKILL in the middle of an atomic write leaves behind (fileio's
  ``.<name>.<random>.tmp``, checkpoint.check_writable's probe) must not make a run directory
  unusable: ``--resume`` continues it and ``--overwrite`` replaces it."""
  run = trained_run(workdir)
  obs = []
  for id, flags, fault, expected in (
      ("leftovers-resume", ("--resume",), "--resume (--epochs 2) in a run directory holding a "
       "half-written .checkpoint.msgpack.*.tmp and .rnn_jax_write_probe",
       "exit status 0: the run continues"),
      ("leftovers-overwrite", ("--overwrite",), "--overwrite of a run directory holding a "
       "half-written .checkpoint.msgpack.*.tmp and .rnn_jax_write_probe",
       "exit status 0: the run is replaced and the leftovers are gone")):
    left = [_leftover(run, "checkpoint.msgpack"), fileio.WRITE_PROBE]
    (run / fileio.WRITE_PROBE).write_bytes(b"\0" * 64)
    o = call_script("train_occupancy.py", train_args("readings.csv", "run", *flags, epochs=2),
                    workdir)
    gone = not any((run / name).exists() for name in left)
    checks = {"exit status 0": o.rc == 0}
    if id == "leftovers-overwrite":
      checks["leftovers removed"] = gone
    obs.append(Observation(id, fault, expected,
                           f"exit {o.rc}" + (f": {o.stderr.strip()}" if o.stderr.strip() else "")
                           + ("; leftovers removed" if gone else "; leftovers still there"),
                           checks))
  # Killed while config.json, the first file of a run, was being written: only its temp file.
  fresh = workdir / "fresh"
  fresh.mkdir()
  name = _leftover(fresh, "config.json", b'{"source": ')
  o = call_script("train_occupancy.py", train_args("readings.csv", "fresh", "--overwrite"),
                  workdir)
  obs.append(Observation(
      "leftover-only-overwrite", "--overwrite of a directory holding only a half-written "
      ".config.json.*.tmp (a run killed while writing its first file)",
      "exit status 0: the run is made there",
      f"exit {o.rc}" + (f": {o.stderr.strip()}" if o.stderr.strip() else ""),
      {"exit status 0": o.rc == 0, "leftover removed": not (fresh / name).exists()}))
  return obs

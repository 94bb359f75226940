"""A real multi-process data-parallel run: two processes on localhost joined by
``jax.distributed.initialize``, each with its own two CPU devices, against one plain process.

Both processes run ``experiments/train_occupancy.py`` with ``--coordinator``/``--num-processes``/
``--process-id`` (the commands ``multiprocess_commands`` builds, as the README gives them). JAX's
CPU client then spans the 4 devices of both processes and its cross-process collectives are
gloo's (``jax_cpu_collectives_implementation``, "gloo" by default in jax 0.10), so every
step's gradient all-reduce crosses the process boundary. The test checks that

* both processes exit 0 and the parameters process 0 saved after 2 epochs (22 optimizer steps)
  equal those of the same command in one process on one device, to float32 rounding;
* only process 0 writes a run directory: process 1, given its own ``--out``, leaves it empty
  (which also shows the two were joined: an unjoined process 1 is process 0 of its own run and
  would write there).

The three processes run side by side (about 50 s on a busy 2-core machine), hence ``slow``.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rnn_jax.train import checkpoint

from conftest import REPO

SCRIPT = REPO / "experiments" / "train_occupancy.py"
TIMEOUT_S = 240      # per process; a process whose peer died waits for the coordinator's deadline

# 4 days of 10-minute readings: 374 training windows of T=24, 11 steps of 32 per epoch.
TRAIN_FLAGS = ("--time-column", "time", "--value-column", "people", "--capacity", "60",
               "--hidden-size", "8", "--epochs", "2", "--patience", "0", "--batch-size", "32",
               "--devices", "0", "--no-plots", "--no-progress")


def write_readings(path: Path, days: int = 4) -> Path:
  """A smooth daily cycle with a faster ripple, people in 0..60, every 10 minutes."""
  i = np.arange(days * 144)
  people = np.clip(np.round(30 + 25 * np.sin(2 * np.pi * i / 144)
                            + 5 * np.sin(2 * np.pi * i / 37)), 0, 60).astype(int)
  t0 = np.datetime64("2021-03-01T00:00")
  rows = [f"{t0 + np.timedelta64(10 * int(k), 'm')},{p}" for k, p in zip(i, people)]
  path.write_text("time,people\n" + "\n".join(rows) + "\n", encoding="utf-8")
  return path


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def multiprocess_commands(csv: Path, outs: list[Path], port: int, devices_per_process: int = 2
                          ) -> list[tuple[dict, list[str]]]:
  """``(extra environment, argv)`` of each process of the run, process 0 first."""
  env = {"XLA_FLAGS": f"--xla_force_host_platform_device_count={devices_per_process}"}
  return [(env, [sys.executable, str(SCRIPT), "--csv", str(csv), *TRAIN_FLAGS, "--out", str(out),
                 "--coordinator", f"127.0.0.1:{port}", "--num-processes", str(len(outs)),
                 "--process-id", str(i)]) for i, out in enumerate(outs)]


def run_all(commands: list[tuple[dict, list[str]]]) -> list[subprocess.CompletedProcess]:
  """Starts every command at once; waits for all (killing the rest if one fails)."""
  base = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_ENABLE_X64")}
  base.update(JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO))
  procs = [subprocess.Popen(argv, cwd=REPO, env={**base, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True) for env, argv in commands]
  done = []
  try:
    for proc in procs:
      out, _ = proc.communicate(timeout=TIMEOUT_S)
      done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, None))
      if proc.returncode != 0:
        break
  finally:
    for proc in procs:
      if proc.poll() is None:
        proc.kill()
        proc.communicate()
  return done


@pytest.mark.slow
def test_two_processes_train_the_single_process_model(tmp_path):
  csv = write_readings(tmp_path / "readings.csv")
  outs = [tmp_path / "process0", tmp_path / "process1"]
  single = tmp_path / "single"
  commands = multiprocess_commands(csv, outs, free_port())
  commands.append(({}, [sys.executable, str(SCRIPT), "--csv", str(csv), *TRAIN_FLAGS,
                        "--out", str(single)]))
  results = run_all(commands)
  for name, result in zip(("process 0", "process 1", "single process"), results):
    assert result.returncode == 0, f"{name} exited {result.returncode}:\n{result.stdout[-3000:]}"
  assert len(results) == 3

  # only process 0 wrote a run directory
  assert sorted(p.name for p in outs[0].iterdir()) == sorted(p.name for p in single.iterdir())
  assert (outs[0] / checkpoint.FILENAME).is_file()
  assert not outs[1].exists()   # not even created

  joined = checkpoint.load_params(outs[0] / checkpoint.FILENAME)
  alone = checkpoint.load_params(single / checkpoint.FILENAME)
  for name, a, b in zip(alone._fields, joined, alone):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6, err_msg=name)
  assert np.asarray(joined.c).any()       # training did move the parameters (c starts at 0)

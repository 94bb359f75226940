"""Interrupted training: SIGKILL of a real training process at several moments, Ctrl-C during
and after training, and ``--resume`` to the same result as an uninterrupted run.

``kill_and_resume`` chains real ``train_occupancy.py`` processes (each resumes the run the
previous one left) beside one uninterrupted reference process; ``ctrl_c_outside_training``
runs the script in-process as ``__main__`` with a KeyboardInterrupt where the baselines are fit.
"""
from __future__ import annotations

import contextlib
import io
import json
import random
import runpy
import signal
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import numpy as np

from rnn_jax.verify.inputs import GOOD
from rnn_jax.verify.observations import Observation, loadable, metric_rows, one_line
from rnn_jax.verify.runner import EXPERIMENTS, call_script, python, relative
from rnn_jax.verify.trained import train_args

FAULT_EPOCHS = 30
# What every SIGKILL stage must leave (the doc's "expected" column).
KILL_EXPECTED = ("the previous checkpoint loads (checkpoint.load, load_params); its epoch never "
                 "goes back; leftover temporary files block neither --resume nor --overwrite")


def _epoch_of(ckpt: Path) -> int | None:
  """The checkpoint's epoch, or None when it does not exist yet (InputError: a broken one)."""
  from rnn_jax.train import checkpoint
  if not ckpt.exists():
    return None
  return int(checkpoint.load(ckpt)["epoch"])


def _wait_for(proc: subprocess.Popen, ckpt: Path, above: int | None, timeout: float = 300
              ) -> int | None:
  """Polls until the checkpoint exists with an epoch above ``above`` (or the process ends)."""
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline and proc.poll() is None:
    try:
      e = _epoch_of(ckpt)
    except Exception:       # noqa: BLE001  a broken checkpoint: the caller's check reports it
      e = None
    if e is not None and (above is None or e > above):
      return e
    time.sleep(0.005)
  return None


def _leftovers(out: Path) -> list[str]:
  from rnn_jax.forecasting import occupancy
  return sorted(p.name for p in out.iterdir() if p.name not in occupancy.RUN_FILES)


def _overwrite_allowed(out: Path) -> tuple[bool, str]:
  """Whether a fresh ``--overwrite`` run would be let into ``out`` (checked, nothing trained)."""
  from rnn_jax.forecasting import occupancy
  from rnn_jax.common.errors import InputError
  try:
    occupancy.check_out(out, resume=False, overwrite=True)
    return True, ""
  except InputError as err:
    return False, str(err)


def _fault_args(out: str, *extra: str) -> list[str]:
  """The training command of ``kill_and_resume``: 30 epochs of batch 8 into ``out``."""
  return train_args("readings.csv", out, *extra, epochs=FAULT_EPOCHS) + ["--batch-size", "8"]


def kill_and_resume(workdir: Path, seed: int = 0) -> list[Observation]:
  """SIGKILL a real training process at several moments, Ctrl-C it, resume it to the end, and
  compare with an uninterrupted run of the same command (parameters bit for bit, results.json,
  metrics.jsonl up to wall-clock times).

  Training: H=8, 30 epochs of 97 steps (batch 8) on ``readings_csv()``: an epoch takes tens of
  milliseconds after the first one compiles, and a checkpoint is written after each.
  """
  rng = random.Random(seed)
  workdir.mkdir(parents=True, exist_ok=True)
  (workdir / "readings.csv").write_bytes(GOOD)
  reference = python("train_occupancy.py", _fault_args("reference"), workdir)  # beside the chain
  try:
    obs = []
    e0 = _kill_stage(obs, workdir, "kill-first-checkpoint", "SIGKILL as soon as the first "
                     "checkpoint appears (epoch 0, written before training while the epoch "
                     "program compiles)", _fault_args("run"), None)
    e1 = _kill_stage(obs, workdir, "kill-after-an-epoch", "--resume, SIGKILL as soon as the "
                     "checkpoint of the next epoch appears", _fault_args("run", "--resume"), e0)
    e2 = _kill_stage(obs, workdir, "kill-random-time", "--resume, SIGKILL at a random moment "
                     "within 3 epochs after the next checkpoint (mid-epoch or mid-write)",
                     _fault_args("run", "--resume"), e1, random_delay=(rng, seed))
    obs.append(_ctrl_c_stage(workdir, e2))
    obs.append(_resume_to_the_end(workdir, reference))
    return obs
  finally:
    if reference.poll() is None:   # the chain failed early: stop the reference too
      reference.kill()
      reference.communicate()


def _kill_stage(obs: list[Observation], workdir: Path, id: str, fault: str, argv,
                wait_above: int | None, random_delay: tuple[random.Random, int] | None = None
                ) -> int | None:
  """Starts ``argv``, SIGKILLs it once a checkpoint above ``wait_above`` appears (or, with
  ``random_delay=(rng, seed)``, at a random moment within 3 epochs after the next one), and
  appends what the run directory holds afterwards. Returns the epoch it then loads at."""
  from rnn_jax.train import checkpoint
  out = workdir / "run"
  ckpt = out / checkpoint.FILENAME
  proc = python("train_occupancy.py", argv, workdir)
  seen = _wait_for(proc, ckpt, wait_above)
  when = "as it appeared"
  if random_delay and seen is not None:   # a random moment within the next 3 epochs
    rng, seed = random_delay
    t0 = time.monotonic()
    seen = _wait_for(proc, ckpt, seen) or seen
    delay = rng.uniform(0.0, 3 * (time.monotonic() - t0))
    time.sleep(delay)
    when = f"+{delay * 1000:.0f} ms (random, seed {seed})"
  alive = proc.poll() is None
  proc.kill()
  proc.communicate()
  ok, epoch, err = loadable(out)
  left = _leftovers(out)
  allowed, why = _overwrite_allowed(out)
  obs.append(Observation(
      id, fault, KILL_EXPECTED,
      f"killed {'while running' if alive else 'after it ended (too late)'}, checkpoint at "
      f"epoch {seen} {when}; afterwards it loads at epoch {epoch}"
      + (f"; leftovers {left}" if left else "; no leftovers") + (f" ({err})" if err else "")
      + ("" if allowed else f"; --overwrite refused: {why}"),
      {"killed while running": alive, "checkpoint loadable": ok,
       "epoch never goes back": epoch is not None and seen is not None and epoch >= seen,
       "--overwrite not blocked by leftovers": allowed}))
  return epoch


def _ctrl_c_stage(workdir: Path, after: int | None) -> Observation:
  """Ctrl-C: a real SIGINT to the process once an epoch past ``after`` (the last kill) is saved."""
  from rnn_jax.train import checkpoint
  out = workdir / "run"
  proc = python("train_occupancy.py", _fault_args("run", "--resume"), workdir)
  seen = _wait_for(proc, out / checkpoint.FILENAME, after)
  alive = proc.poll() is None
  proc.send_signal(signal.SIGINT)
  stdout, stderr = proc.communicate(timeout=300)
  ok, epoch, err = loadable(out)
  said = [line for line in stdout.splitlines() if "Interrupted" in line]
  return Observation(
      "ctrl-c", "--resume, SIGINT (Ctrl-C) once another epoch is saved",
      "exit status 130 after saving the last complete epoch; the message says how to resume",
      f"exit {proc.returncode}: {one_line(said[0]) if said else one_line(stdout + stderr)}",
      {"sent while training": alive and seen is not None,
       "exit status 130": proc.returncode == 130,
       "says how to resume": bool(said) and "--resume" in said[0],
       "names the saved epoch": bool(said) and epoch is not None and f"epoch {epoch}" in said[0],
       "checkpoint loadable": ok, "no traceback": "Traceback" not in stderr})


def _resume_to_the_end(workdir: Path, reference: subprocess.Popen) -> Observation:
  """Resume to the end and compare with the uninterrupted reference."""
  proc = python("train_occupancy.py", _fault_args("run", "--resume"), workdir)
  stdout, stderr = proc.communicate(timeout=600)
  ref_out, ref_err = reference.communicate(timeout=600)
  done = proc.returncode == 0 and reference.returncode == 0
  same = _same_as_reference(workdir / "run", workdir / "reference") if done else {}
  return Observation(
      "resume-equals-uninterrupted", "--resume to the end after the three kills and the Ctrl-C",
      "parameters, best parameters and optimizer state equal bit for bit, results.json equal, "
      "metrics.jsonl equal up to wall-clock times, to one uninterrupted run of the same command",
      (f"exit {proc.returncode}; " + ", ".join(f"{k} {'equal' if v else 'DIFFER'}"
                                                for k, v in same.items()))
      if done else f"exit {proc.returncode} / reference {reference.returncode}: "
                   f"{one_line(stderr + ref_err)}",
      {"both runs finished": done, **{f"{k} equal": v for k, v in same.items()}})


def _same_as_reference(out: Path, ref: Path) -> dict[str, bool]:
  """Which of the two finished runs' states, results and metrics are equal."""
  from rnn_jax.train import checkpoint
  same = {}
  a, b = checkpoint.load(out / checkpoint.FILENAME), checkpoint.load(ref / checkpoint.FILENAME)
  for key in ("params", "best_params", "opt_state"):
    la, lb = _leaves(a[key]), _leaves(b[key])
    same[key] = len(la) == len(lb) and all(
        x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y) for x, y in
        zip(la, lb))
  same["epoch"] = int(a["epoch"]) == int(b["epoch"]) == FAULT_EPOCHS
  same["results"] = (json.loads((out / "results.json").read_text())
                     == json.loads((ref / "results.json").read_text()))
  same["metrics"] = (metric_rows(out) == metric_rows(ref))
  return same


def _leaves(tree) -> list[np.ndarray]:
  """The arrays of a checkpoint's nested state dict, in key order."""
  if isinstance(tree, dict):
    return [leaf for k in sorted(tree, key=str) for leaf in _leaves(tree[k])]
  return [np.asarray(tree)]


def ctrl_c_outside_training(workdir: Path) -> list[Observation]:
  """Ctrl-C after the last epoch, while the baselines are fitted (on the gym data that takes a
  while): the script as ``python experiments/train_occupancy.py`` runs it (runpy, as __main__),
  with a KeyboardInterrupt raised where the baselines are fitted."""
  from rnn_jax import evaluation
  workdir.mkdir(parents=True, exist_ok=True)
  (workdir / "readings.csv").write_bytes(GOOD)
  argv = train_args("readings.csv", "run")

  def interrupted(*args, **kwargs):
    raise KeyboardInterrupt

  out, err = io.StringIO(), io.StringIO()
  with contextlib.chdir(workdir), contextlib.redirect_stdout(out), \
      contextlib.redirect_stderr(err), \
      mock.patch.object(sys, "argv", ["train_occupancy.py", *argv]), \
      mock.patch.object(evaluation, "fit_baselines", interrupted):
    try:
      runpy.run_path(str(EXPERIMENTS / "train_occupancy.py"), run_name="__main__")
      rc: int | str = 0
    except SystemExit as exit:
      rc = exit.code if isinstance(exit.code, int) else 1
    except KeyboardInterrupt:
      rc = "none: KeyboardInterrupt escaped the script (Python prints a traceback)"
  text = relative(out.getvalue() + err.getvalue(), workdir)
  said = [line for line in text.splitlines() if "--resume" in line]
  ok, epoch, _ = loadable(workdir / "run")
  resumed = call_script("train_occupancy.py", train_args("readings.csv", "run", "--resume"),
                        workdir)
  return [Observation(
      "ctrl-c-after-training", "SIGINT (KeyboardInterrupt) while the baselines are fitted, after "
      "the last checkpoint",
      "exit status 130, no traceback; the message says the checkpoint is kept and to use "
      "--resume, which then finishes the evaluation",
      f"exit {rc}" + (f": {one_line(said[0])}" if said else "")
      + f"; then --resume exits {resumed.rc}",
      {"exit status 130": rc == 130, "says --resume": bool(said),
       "checkpoint loadable": ok and epoch == 1, "--resume finishes": resumed.rc == 0
       and (workdir / "run" / "results.json").is_file()})]

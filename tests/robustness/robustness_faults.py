"""The faults rnn_jax is tried with, as data: ``FAULTS``, one ``Fault`` per procedure.

A fault is a procedure (a SIGKILL of a real training process, a Ctrl-C, a diverging loss, an
unwritable ``--out``, damaged checkpoints, a numerically extreme input) that returns
``Observation`` rows: what was done, what must follow, what happened, and named checks that must
all hold. test_faults.py runs each; write_doc.py writes their rows into docs/robustness.md.

Interrupts: ``kill_and_resume`` chains real ``train_occupancy.py`` processes (each resumes the
run the previous one left) beside one uninterrupted reference process; ``ctrl_c_outside_training``
calls the script's ``main`` with a KeyboardInterrupt where the baselines are fit. Damage:
``unwritable_out`` (training must not start: ``rnn_jax.train.fit`` is never called),
``damaged_checkpoint`` (hundreds of damaged copies of a real checkpoint), ``leftover_temp_files``
(run directories holding half-written files). Numerical: ``nonfinite`` (a loss that overflows),
``degenerate_windows`` and ``extreme_logits``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np

from rnn_jax import evaluation, train
from rnn_jax.common import fileio
from rnn_jax.common.errors import InputError
from rnn_jax.core import bptt, model
from rnn_jax.forecasting import forecast, occupancy
from rnn_jax.train import checkpoint

from robustness_cases import (GOOD, call_script, python, readings_csv, shared_run, train_args,
                              trained_run)


# --------------------------------------------------------------------------- observations


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


# --------------------------------------------------------------------------- interrupts

FAULT_EPOCHS = 30
# What every SIGKILL stage must leave (the doc's "expected" column).
KILL_EXPECTED = ("the previous checkpoint loads (checkpoint.load, load_params); its epoch never "
                 "goes back; leftover temporary files block neither --resume nor --overwrite")


def _epoch_of(ckpt: Path) -> int | None:
  """The checkpoint's epoch, or None when it does not exist yet (InputError: a broken one)."""
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
  return sorted(p.name for p in out.iterdir() if p.name not in occupancy.RUN_FILES)


def _overwrite_allowed(out: Path) -> tuple[bool, str]:
  """Whether a fresh ``--overwrite`` run would be let into ``out`` (checked, nothing trained)."""
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
  while): the script's ``main``, which ``python experiments/train_occupancy.py`` exits with,
  with a KeyboardInterrupt raised where the baselines are fitted."""
  workdir.mkdir(parents=True, exist_ok=True)
  (workdir / "readings.csv").write_bytes(GOOD)

  def interrupted(*args, **kwargs):
    raise KeyboardInterrupt

  with mock.patch.object(evaluation, "fit_baselines", interrupted):
    try:
      o = call_script("train_occupancy.py", train_args("readings.csv", "run"), workdir)
      rc, text = o.rc, o.stdout + o.stderr
    except KeyboardInterrupt:
      rc, text = "none: KeyboardInterrupt escaped main (Python prints a traceback)", ""
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


# --------------------------------------------------------------------------- damage


def unwritable_out(workdir: Path) -> list[Observation]:
  """--out that cannot be written (tests run as root, so chmod would not stop them): under a
  regular file, inside /proc, and a full disk (ENOSPC from os.fsync, simulated). One line, exit
  2, before any training (``rnn_jax.train.fit`` and ``fit_many`` never called), nothing left
  behind."""
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

    def spy(name):
      real = getattr(train, name)
      return lambda *a, **k: (started.append(name), real(*a, **k))[1]

    def fail_fsync(fd):
      raise error

    with contextlib.ExitStack() as stack:
      for name in ("fit", "fit_many"):     # what the occupancy run trains with
        stack.enter_context(mock.patch.object(train, name, spy(name)))
      if error is not None:
        stack.enter_context(mock.patch.object(os, "fsync", fail_fsync))
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


# --------------------------------------------------------------------------- numerical


def nonfinite(workdir: Path) -> list[Observation]:
  """A learning rate that makes the loss overflow: exit 1, the message names epoch and step and
  the cures, the last good checkpoint stays and holds finite parameters."""
  workdir.mkdir(parents=True, exist_ok=True)
  (workdir / "readings.csv").write_bytes(GOOD)
  argv = train_args("readings.csv", "run", "--optimizer", "sgd", "--lr", "1e6", "--clip", "0",
                    epochs=3)
  o = call_script("train_occupancy.py", argv, workdir)
  said = [line for line in o.stdout.splitlines() if "non-finite" in line]
  ok, epoch, err = loadable(workdir / "run")
  finite = ok and all(np.isfinite(np.asarray(a)).all() for a in
                      checkpoint.load_params(workdir / "run" / checkpoint.FILENAME))
  msg = said[0] if said else o.stdout + o.stderr   # printed whole in the doc
  at = re.search(r"at epoch (\d+), step (\d+) of (\d+)", msg)
  return [Observation(
      "nonfinite-loss", "--optimizer sgd --lr 1e6 --clip 0: the loss overflows",
      "exit status 1; the message names the epoch and step, keeps the last good checkpoint and "
      "suggests --lr, --clip and --init irnn; no results.json",
      f"exit {o.rc}: {one_line(msg, 1000)}",
      {"exit status 1": o.rc == 1, "names epoch and step": at is not None,
       "suggests the cures": all(c in msg for c in ("--lr", "--clip", "--init irnn")),
       "last good checkpoint kept (the epoch before)": ok and at is not None
       and epoch == int(at.group(1)) - 1 and f"checkpoint (epoch {epoch})" in msg,
       "its parameters are finite": finite,
       "no results.json": not (workdir / "run" / "results.json").exists(),
       "nothing on stderr": o.stderr == ""})]


def _stretches(i: np.ndarray, capacity: int = 60) -> np.ndarray:
  """A daily rhythm with whole windows all zero (day 2), at capacity (day 4, 10:00-16:00),
  constant (day 6, 08:00-14:00) and, at the end of the file, 6 hours at capacity."""
  hours = (i % 144) / 6
  day = i // 144
  v = np.round(0.4 * capacity + 0.35 * capacity * np.sin(2 * np.pi * (hours - 9) / 24))
  v = np.where(day == 2, 0, v)
  v = np.where((day == 4) & (hours >= 10) & (hours < 16), capacity, v)
  v = np.where((day == 6) & (hours >= 8) & (hours < 14), 17, v)
  v[-36:] = capacity
  return v


def degenerate_windows(workdir: Path) -> list[Observation]:
  """Training and forecasting on windows that are all zero, all at capacity or constant."""
  workdir.mkdir(parents=True, exist_ok=True)
  n = 10 * 144
  files = {"stretches.csv": readings_csv(n, value=_stretches),
           "zeros.csv": readings_csv(60, value=lambda i: 0 * i),
           "full.csv": readings_csv(60, value=lambda i: 0 * i + 60),
           "constant.csv": readings_csv(60, value=lambda i: 0 * i + 17)}
  for name, content in files.items():
    (workdir / name).write_bytes(content)
  o = call_script("train_occupancy.py", train_args("stretches.csv", "run", epochs=2), workdir)
  checks = {"trains (exit 0)": o.rc == 0}
  observed = [f"training exit {o.rc}"]
  if o.rc == 0:
    metrics = metric_rows(workdir / "run")
    checks["losses finite"] = all(np.isfinite(r[k]) for r in metrics
                                  for k in ("train_loss", "val_loss"))
    results = json.loads((workdir / "run" / "results.json").read_text())
    maes = [v for s in results["splits"].values() for v in s["model"]["mae"]]
    checks["model MAE finite"] = bool(np.isfinite(maes).all())
    for name in ("stretches.csv", "zeros.csv", "full.csv", "constant.csv"):
      f = call_script("forecast.py", ["--run", "run", "--csv", name, "--json"], workdir)
      people = [x["value"] for x in json.loads(f.stdout)["forecasts"]] if f.rc == 0 else []
      checks[f"forecast on {name} finite, within 0..60"] = (
          f.rc == 0 and len(people) == 3 and all(0 <= p <= 60 for p in people))
      observed.append(f"{name}: " + (", ".join(f"{p:.1f}" for p in people) if people
                                     else f"exit {f.rc} {f.stderr.strip()}"))
  return [Observation(
      "degenerate-windows", "train 2 epochs on a file whose windows include all-zero, "
      "at-capacity and constant stretches; forecast on windows that are all 0, all 60 (the "
      "capacity) and all 17",
      "finite losses and MAE; every forecast finite and within 0..capacity",
      "; ".join(observed), checks)]


def extreme_logits(workdir: Path) -> list[Observation]:
  """The loss at logits from 1e-3 to 1e30 in size against targets exactly 0 and 1, float32 and
  float64: finite, and the hand BPTT gradient equals autodiff's (tests/core/test_bptt.py checks
  +-1000 in depth; this extends the sizes to float32's range)."""
  scales = np.asarray([1e-3, 1.0, 1e2, 1e4, 1e8, 1e15, 1e30])
  rng = np.random.default_rng(0)
  H, D, K = 4, 1, 2
  arrays = dict(U=rng.normal(0, 0.5, (H, H)), V=rng.normal(0, 1, (H, D)), b=np.full(H, 0.1),
                W=rng.normal(0, 0.5, (K, H)))
  xs = np.linspace(0.1, 1.0, 2 * 3 * D).reshape(2, 3, D)
  ys = np.asarray([[0.0, 1.0], [1.0, 0.0]])       # one right, one wrong at every scale
  checks, worst = {}, 0.0
  previous = jax.config.read("jax_enable_x64")
  jax.config.update("jax_enable_x64", True)
  try:
    for dtype in ("float32", "float64"):
      def both(c, dtype=dtype):
        p = model.RNNParams(**{k: jnp.asarray(v, dtype) for k, v in arrays.items()}, c=c)
        x, y = jnp.asarray(xs, dtype), jnp.asarray(ys, dtype)
        return bptt.loss_and_grads(p, x, y), jax.value_and_grad(model.loss)(p, x, y)
      cs = jnp.asarray(np.stack([scales, -scales], 1), dtype)          # c = [s, -s]
      (h_loss, h_grads, *_), (a_loss, a_grads) = jax.jit(jax.vmap(both))(cs)
      for i, scale in enumerate(scales):
        hand = [np.asarray(g[i], np.float64) for g in h_grads]
        auto = [np.asarray(g[i], np.float64) for g in a_grads]
        finite = (np.isfinite(float(h_loss[i])) and np.isfinite(float(a_loss[i]))
                  and all(np.isfinite(g).all() for g in hand + auto))
        rel = max(float(np.max(np.abs(h - a))) / max(1.0, float(np.max(np.abs(a))))
                  for h, a in zip(hand, auto))
        worst = max(worst, rel)
        tol = 1e-5 if dtype == "float32" else 1e-12
        checks[f"{dtype} |logit| {scale:g}: finite, hand = autodiff"] = finite and rel <= tol
  finally:
    jax.config.update("jax_enable_x64", previous)
  return [Observation(
      "extreme-logits", "logits of +-1e-3 .. +-1e30 (float32 and float64) against targets "
      "exactly 0 and 1, one right and one wrong",
      "the loss and its gradient are finite; the hand BPTT equals autodiff",
      f"all finite and equal: {all(checks.values())}; largest relative |hand - autodiff| "
      f"{worst:.1g}", checks)]


# --------------------------------------------------------------------------- the table


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

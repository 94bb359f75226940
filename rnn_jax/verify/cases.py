"""The bad inputs and faults rnn_jax is tried with, as data: one table for the tests and the doc.

tests/test_robustness.py runs every ``BadInput`` (in-process, a few also as real subprocesses)
and tests/test_faults.py every ``Fault``; experiments/robustness_report.py runs the very same
cases and writes docs/robustness.md from what they actually print, so the doc stays true
(tests/test_robustness.py checks that the doc's message for every case is the message the case
gives today).

A ``BadInput`` is one command line of one script (experiments/*.py), run in a fresh working
directory that holds ``files`` (and, with ``prepare``, a copy of a tiny trained run). Its
contract (issue 4): exit status 2, exactly one line on stderr, ``error: <message>``, naming the
file and the row, column or argument and what was expected (``expect``: fragments of the
message), no traceback, and the working directory exactly as before (no output directory or
file left behind).

A ``Fault`` is a procedure (a SIGKILL of a real training process, a Ctrl-C, a diverging loss,
an unwritable ``--out``, a numerically extreme input) that returns ``Observation`` rows: what
was done, what must follow, what happened, and named checks that must all hold.
"""
from __future__ import annotations

import atexit
import contextlib
import dataclasses
import io
import json
import os
import random
import re
import runpy
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable
from unittest import mock

import numpy as np

REPO = Path(__file__).resolve().parents[2]
EXPERIMENTS = REPO / "experiments"
# The function each script hands to rnn_jax.cli.main (what ``if __name__ == "__main__"`` runs).
ENTRY = {"train_occupancy.py": "main", "forecast.py": "main", "train_letters.py": "run",
         "benchmark.py": "run"}


# --------------------------------------------------------------------------------------------
# Small input files


def readings_csv(n: int = 8 * 144, *, capacity: int = 60, seed: int = 0,
                 start: str = "2024-03-04T00:00", header: str = "time,people",
                 value: Callable[[np.ndarray], np.ndarray] | None = None,
                 extra: str = "") -> bytes:
  """``n`` readings every 10 minutes (ISO times, no offset), a daily rhythm in 0..capacity.

  8 days give 777 / 144 / 144 train / val / test windows of the default 24 + 6 steps.
  ``value(i)`` (i = reading index) replaces the rhythm; ``extra`` is appended to every row.
  """
  i = np.arange(n)
  if value is None:
    rng = np.random.default_rng(seed)
    hours = (i % 144) / 6
    v = 0.4 * capacity + 0.35 * capacity * np.sin(2 * np.pi * (hours - 9) / 24)
    v = np.clip(np.round(v + rng.normal(0, 3, n)), 0, capacity)
  else:
    v = np.asarray(value(i), np.float64)
  t0 = np.datetime64(start, "m")
  rows = [f"{t0 + np.timedelta64(10 * k, 'm')},{v[k]:g}{extra}" for k in range(n)]
  return (header + "\n" + "\n".join(rows) + "\n").encode()


def letters_csv(n: int = 60) -> bytes:
  """``n`` rows of the UCI letter-recognition format: a capital letter and 16 integers."""
  rng = np.random.default_rng(0)
  letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
  return "".join(letters[k % 26] + "," + ",".join(str(v) for v in rng.integers(0, 16, 16)) + "\n"
                 for k in range(n)).encode()


GOOD = readings_csv()
ROWS = GOOD.decode().splitlines()          # header + 1152 rows; ROWS[k] is line k + 1


def with_line(line: int, text: str) -> bytes:
  """GOOD with line ``line`` (1 = header) replaced by ``text``."""
  rows = list(ROWS)
  rows[line - 1] = text
  return ("\n".join(rows) + "\n").encode()


# --------------------------------------------------------------------------------------------
# Bad input


@dataclasses.dataclass(frozen=True)
class BadInput:
  """One bad command line: exit 2, one line on stderr containing every ``expect`` fragment."""
  id: str
  script: str                       # a file in experiments/
  problem: str                      # what is wrong, in words (the doc's first column)
  argv: tuple[str, ...]             # relative paths: run in the case's working directory
  expect: tuple[str, ...]           # fragments of the message (after "error: ")
  files: tuple[tuple[str, bytes | None], ...] = ()   # name -> bytes; None: a directory
  prepare: Callable[[Path, Path], None] | None = None  # (workdir, trained run) -> None
  exact: bool = True                # False: the message depends on the machine (device count)


GENERIC = ("--time-column", "time", "--value-column", "people")
TINY = ("--hidden", "8", "--epochs", "1", "--batch-size", "64", "--no-progress", "--no-plots")


def occ(csv: str = "readings.csv", *extra: str, capacity: str | None = "60") -> tuple:
  """argv of train_occupancy.py on ``csv`` with the generic columns, a tiny model, --out out."""
  argv = ("--csv", csv, *GENERIC) + (("--capacity", capacity) if capacity is not None else ())
  return argv + TINY + ("--out", "out") + tuple(extra)


def occ_case(id, problem, content, expect, *extra, capacity="60", csv="readings.csv",
             columns=True, **kw) -> BadInput:
  """A train_occupancy.py case on ``content`` saved as readings.csv (None: no file)."""
  files = (("readings.csv", content),) if content is not None else ()
  argv = occ(csv, *extra, capacity=capacity)
  if not columns:                           # no --time-column/--value-column: the gym format
    argv = ("--csv", csv) + argv[2 + len(GENERIC):]
  return BadInput(id, "train_occupancy.py", problem, argv, expect, files, **kw)


def occ_arg(id, problem, extra, expect, **kw) -> BadInput:
  return BadInput(id, "train_occupancy.py", problem, occ("readings.csv", *extra), expect,
                  (("readings.csv", GOOD),), **kw)


# ---- forecast.py: run directories made from a tiny trained run (see ``trained_run``)


def copy_run(workdir: Path, run: Path, *, drop: tuple[str, ...] = (),
             edit: Callable[[dict], None] | None = None,
             checkpoint: Callable[[bytes], bytes] | None = None) -> None:
  """A copy of ``run`` as ``workdir/run``, without ``drop``, config.json edited in place."""
  dst = workdir / "run"
  shutil.copytree(run, dst)
  for name in drop:
    (dst / name).unlink()
  if edit is not None:
    cfg = json.loads((dst / "config.json").read_text())
    edit(cfg)
    (dst / "config.json").write_text(json.dumps(cfg, indent=2))
  if checkpoint is not None:
    path = dst / "checkpoint.msgpack"
    path.write_bytes(checkpoint(path.read_bytes()))


def _set(section: str, key: str, value) -> Callable[[dict], None]:
  def edit(cfg):
    cfg[section][key] = value
  return edit


def fc_case(id, problem, expect, *, csv="readings.csv", files=None, extra=(), **copy) -> BadInput:
  argv = ("--run", "run") + (("--csv", csv) if csv else ()) + tuple(extra)
  files = files if files is not None else (("readings.csv", GOOD),)
  return BadInput(id, "forecast.py", problem, argv, expect, files,
                  lambda w, r: copy_run(w, r, **copy))


LETTERS_TINY = ("--hidden", "4", "--epochs", "1", "--batch-size", "4", "--no-progress",
                "--out", "out")


def let_case(id, problem, content, expect, *extra, csv="letters.csv") -> BadInput:
  files = (("letters.csv", content),) if content is not None else ()
  argv = (("--csv", csv) if csv else ()) + LETTERS_TINY + tuple(extra)
  return BadInput(id, "train_letters.py", problem, argv, expect, files)


BENCH_TINY = ("--batch-sizes", "2", "--seq-lens", "3", "--hidden-sizes", "4", "--variants",
              "autodiff", "--seconds", "0.01", "--repeats", "1", "--json", "bench.json")


def bench_case(id, problem, extra, expect, files=()) -> BadInput:
  return BadInput(id, "benchmark.py", problem, BENCH_TINY + tuple(extra), expect, files)


_HALF = lambda b: b[:len(b) // 2]           # noqa: E731  a checkpoint cut off mid-write

BAD_INPUTS: tuple[BadInput, ...] = (
    # ---- train_occupancy.py: the file
    occ_case("occ-missing-file", "--csv names no file", None, ("nope.csv", "no such file"),
             csv="nope.csv"),
    BadInput("occ-directory", "train_occupancy.py", "--csv names a directory",
             occ("adir"), ("adir", "is a directory"), (("adir", None),)),
    occ_case("occ-empty-file", "empty file", b"", ("readings.csv", "is empty")),
    occ_case("occ-header-only", "a header and no rows", b"time,people\n",
             ("readings.csv", "no data rows")),
    occ_case("occ-not-utf8", "Latin-1 bytes (not UTF-8) on line 3",
             GOOD.replace(ROWS[2].encode(), ROWS[2].encode() + b"\xe9", 1),
             ("readings.csv", "line 3", "not UTF-8")),
    occ_case("occ-binary", "binary garbage", bytes(range(256)) * 8, ("readings.csv", "binary")),
    occ_case("occ-gym-columns-absent", "no --time-column/--value-column and not the gym format",
             GOOD.replace(b"time,people", b"when,count", 1),
             ("readings.csv", "'number_people'", "found columns 'when', 'count'"), capacity=None,
             columns=False),
    BadInput("occ-column-absent", "train_occupancy.py",
             "--value-column names a column the file lacks",
             ("--csv", "readings.csv", "--time-column", "time", "--value-column", "visitors",
              "--capacity", "60") + TINY + ("--out", "out"),
             ("readings.csv", "no column 'visitors'", "found columns 'time', 'people'"),
             (("readings.csv", GOOD),)),
    occ_case("occ-duplicate-column", "the same column named twice",
             readings_csv(header="time,people,people", extra=",0"),
             ("readings.csv", "line 1", "'people' appears twice")),
    occ_case("occ-wrong-field-count", "a row with a field too many", with_line(5, ROWS[4] + ",7"),
             ("readings.csv", "line 5", "3 fields", "header (line 1) has 2")),
    occ_case("occ-non-numeric", "a reading that is not a number",
             with_line(7, ROWS[6].split(",")[0] + ",lots"),
             ("readings.csv", "line 7", "'lots'", "column 'people'", "expected a finite number")),
    occ_case("occ-negative", "a negative reading", with_line(8, ROWS[7].split(",")[0] + ",-3"),
             ("readings.csv", "line 8", "'-3'", "negative", "expected a number >= 0")),
    occ_case("occ-nan", "a NaN reading", with_line(9, ROWS[8].split(",")[0] + ",NaN"),
             ("readings.csv", "line 9", "is NaN", "expected a finite number")),
    occ_case("occ-infinite", "an infinite reading", with_line(10, ROWS[9].split(",")[0] + ",inf"),
             ("readings.csv", "line 10", "infinite", "expected a finite number")),
    occ_case("occ-bad-timestamp", "a timestamp that is not a date",
             with_line(11, "yesterday," + ROWS[10].split(",")[1]),
             ("readings.csv", "line 11", "'yesterday'", "column 'time'", "not a date and time")),
    occ_case("occ-mixed-offsets", "naive and offset-aware timestamps mixed",
             with_line(12, ROWS[11].split(",")[0] + "+01:00," + ROWS[11].split(",")[1]),
             ("readings.csv", "line 12", "has a UTC offset", "expected all timestamps with "
              "offsets or all without")),
    occ_case("occ-above-capacity", "a reading above --capacity",
             with_line(13, ROWS[12].split(",")[0] + ",61"),
             ("readings.csv", "line 13", "61", "above the given capacity 60",
              "expected readings <= capacity")),
    occ_case("occ-capacity-zero", "--capacity 0", GOOD, ("capacity", "> 0", "got 0"),
             capacity="0"),
    occ_case("occ-capacity-negative", "--capacity -5", GOOD, ("capacity", "> 0", "-5"),
             capacity="-5"),
    occ_case("occ-capacity-column-zero", "a row's capacity column is 0",
             readings_csv(extra=",60", header="time,people,cap").replace(b",60\n", b",0\n", 1),
             ("readings.csv", "line 2", "column 'cap'", "zero", "> 0"), "--capacity-column",
             "cap", capacity=None),
    occ_case("occ-all-zero-gym",
             "campus gym format (no column flags, no --capacity), every reading 0",
             readings_csv(header="date,number_people", value=lambda i: 0 * i),
             ("readings.csv", "cannot fit the capacity", "give a capacity"), capacity=None,
             columns=False),
    occ_case("occ-too-few-readings", "20 readings: too few for one window of 24 + 6",
             readings_csv(20), ("readings.csv", "too few readings", "needs 30 consecutive",
                                "0 usable windows")),
    occ_case("occ-gap-everywhere", "a reading every 40 minutes: every window crosses a gap",
             b"time,people\n" + b"".join(
                 f"{np.datetime64('2024-03-04T00:00') + np.timedelta64(40 * k, 'm')},5\n".encode()
                 for k in range(300)),
             ("readings.csv", "too few readings", "longest run without a gap is 1 bins")),
    occ_case("occ-empty-val-split", "--splits leave validation without a window",
             readings_csv(200), ("readings.csv", "split 'val'", "no usable window",
                                 "needs 30 consecutive"), "--splits", "0.8,0.1,0.1"),
    occ_case("occ-empty-test-split", "--splits leave test without a window",
             GOOD, ("readings.csv", "split 'test'", "no usable window"),
             "--splits", "0.49,0.49,0.02"),
    occ_case("occ-unknown-timezone", "--timezone is not an IANA name", GOOD,
             ("timezone", "'Mars/Olympus'", "IANA"), "--timezone", "Mars/Olympus"),
    # ---- train_occupancy.py: arguments
    occ_arg("occ-window-zero", "--window 0", ("--window", "0"), ("window", ">= 1", "0")),
    occ_arg("occ-window-negative", "--window -3", ("--window", "-3"), ("window", ">= 1", "-3")),
    occ_arg("occ-horizon-zero", "--horizons 1,0", ("--horizons", "1,0"), ("horizons", ">= 1")),
    occ_arg("occ-horizon-negative", "--horizons -6", ("--horizons", "-6"), ("horizons", ">= 1")),
    occ_arg("occ-batch-zero", "--batch-size 0", ("--batch-size", "0"),
            ("--batch-size", "positive integer", "0")),
    occ_arg("occ-lr-not-number", "--lr fast", ("--lr", "fast"),
            ("--lr", "expected a number", "'fast'")),
    occ_arg("occ-lr-nan", "--lr nan", ("--lr", "nan"), ("--lr", "finite")),
    occ_arg("occ-seeds-zero", "--seeds 0", ("--seeds", "0"), ("--seeds", "positive integer")),
    occ_arg("occ-unknown-feature", "--features occupancy,weather",
            ("--features", "occupancy,weather"), ("features", "'weather'", "occupancy, calendar")),
    occ_arg("occ-epochs-fraction", "--epochs 1.5", ("--epochs", "1.5"),
            ("--epochs", "integer", "'1.5'")),
    occ_arg("occ-step-not-divisor", "--step-minutes 7", ("--step-minutes", "7"),
            ("step_minutes", "divisor of 1440")),
    occ_arg("occ-unknown-flag", "a misspelt flag (--hiden)", ("--hiden", "8"),
            ("unrecognized arguments: --hiden 8",)),
    occ_arg("occ-too-many-devices", "--devices 4096, more than the machine has",
            ("--devices", "4096"), ("--devices", "4096 devices", "available"), exact=False),
    # ---- train_occupancy.py: the output directory
    occ_arg("occ-out-is-file", "--out names an existing file", ("--out", "readings.csv"),
            ("--out readings.csv", "not a directory")),
    occ_arg("occ-out-under-file", "--out lies under a regular file (cannot be created)",
            ("--out", "readings.csv/run"), ("readings.csv/run", "cannot write",
                                            "Not a directory")),
    occ_arg("occ-out-has-run", "--out holds a run already, no --overwrite or --resume", (),
            ("--out out", "a run already exists", "--overwrite"),
            prepare=lambda w, r: shutil.copytree(r, w / "out")),
    occ_arg("occ-resume-nothing", "--resume with no run in --out", ("--resume",),
            ("--out out", "--resume needs a run there")),
    occ_arg("occ-resume-other-data", "--resume with different window settings",
            ("--resume", "--window", "12"), ("--out out", "different data or window settings"),
            prepare=lambda w, r: shutil.copytree(r, w / "out")),
    occ_arg("occ-resume-truncated-checkpoint", "--resume of a run whose checkpoint is cut off",
            ("--resume",), ("out/checkpoint.msgpack", "truncated or damaged"),
            prepare=lambda w, r: (shutil.copytree(r, w / "out"), (w / "out" / "checkpoint.msgpack")
                                  .write_bytes(_HALF((r / "checkpoint.msgpack").read_bytes())))),
    occ_arg("occ-resume-other-training", "--resume with a different --lr than the run's",
            ("--resume", "--lr", "0.01"), ("out/checkpoint.msgpack", "lr=0.001", "lr=0.01",
                                           "resume with the same settings"),
            prepare=lambda w, r: shutil.copytree(r, w / "out")),
    occ_arg("occ-resume-and-overwrite", "--resume and --overwrite together",
            ("--resume", "--overwrite"), ("--resume and --overwrite", "at most one")),

    # ---- forecast.py
    BadInput("fc-no-run-flag", "forecast.py", "no --run", ("--csv", "readings.csv"),
             ("--run", "required"), (("readings.csv", GOOD),)),
    BadInput("fc-run-missing", "forecast.py", "--run names no directory",
             ("--run", "run", "--csv", "readings.csv"), ("--run run", "no such run directory"),
             (("readings.csv", GOOD),)),
    BadInput("fc-run-empty", "forecast.py", "--run names an empty directory",
             ("--run", "run", "--csv", "readings.csv"), ("--run run", "no config.json"),
             (("readings.csv", GOOD), ("run", None))),
    fc_case("fc-run-no-checkpoint", "half-written run: config.json but no checkpoint (killed "
            "before the first epoch)", ("--run run", "no checkpoint.msgpack"),
            drop=("checkpoint.msgpack", "results.json", "metrics.jsonl")),
    fc_case("fc-checkpoint-truncated", "half-written run: checkpoint cut off in the middle",
            ("run/checkpoint.msgpack", "truncated or damaged"), checkpoint=_HALF),
    fc_case("fc-checkpoint-empty", "half-written run: checkpoint of 0 bytes",
            ("run/checkpoint.msgpack", "empty"), checkpoint=lambda b: b""),
    BadInput("fc-config-truncated", "forecast.py", "half-written run: config.json cut off",
             ("--run", "run", "--csv", "readings.csv"),
             ("run/config.json", "not a readable rnn_jax run config"),
             (("readings.csv", GOOD),),
             lambda w, r: (copy_run(w, r), (w / "run" / "config.json").write_bytes(
                 b'{\n  "source": {\n    "csv": "readings.csv",\n    "time_col'))),
    fc_case("fc-config-of-letters", "--run is a train_letters.py run",
            ("run/config.json", "not a readable rnn_jax run config"),
            edit=lambda cfg: (cfg.clear(), cfg.update(script="experiments/train_letters.py",
                                                      train={"hidden": 8}))),
    fc_case("fc-features-incompatible", "config.json asks for calendar features, the checkpoint "
            "was trained without", ("--run run", "checkpoint V has shape [8, 1]", "needs [8, 5]",
                                    "incompatible run"),
            edit=_set("windows", "features", ["occupancy", "calendar"])),
    fc_case("fc-hidden-incompatible", "config.json says --hidden 16, the checkpoint has 8",
            ("--run run", "checkpoint U has shape [8, 8]", "incompatible run"),
            edit=_set("train", "hidden", 16)),
    fc_case("fc-window-incompatible", "config.json says --window 12, the checkpoint was trained "
            "on windows of 24", ("--run run", "12", "24", "incompatible run"),
            edit=_set("windows", "window", 12)),
    fc_case("fc-csv-missing", "--csv names no file", ("nope.csv", "no such file"),
            csv="nope.csv"),
    fc_case("fc-csv-too-short", "--csv has fewer readings than one window",
            ("short.csv", "no complete window", "needs 24 consecutive"), csv="short.csv",
            files=(("short.csv", readings_csv(10)),)),
    fc_case("fc-csv-negative", "--csv has a negative reading",
            ("readings.csv", "line 8", "negative"),
            files=(("readings.csv", with_line(8, ROWS[7].split(",")[0] + ",-3")),)),
    fc_case("fc-csv-other-columns", "--csv lacks the run's time column",
            ("other.csv", "no column 'time'", "found columns 'when', 'count'"), csv="other.csv",
            files=(("other.csv", GOOD.replace(b"time,people", b"when,count", 1)),)),
    fc_case("fc-csv-not-utf8", "--csv is not UTF-8",
            ("readings.csv", "line 3", "not UTF-8"),
            files=(("readings.csv", GOOD.replace(ROWS[2].encode(), ROWS[2].encode() + b"\xff",
                                                 1)),)),

    # ---- train_letters.py
    let_case("let-missing-file", "--csv names no file", None, ("letters.csv", "no such file")),
    BadInput("let-directory", "train_letters.py", "--csv names a directory",
             ("--csv", "adir") + LETTERS_TINY, ("adir", "is a directory"), (("adir", None),)),
    let_case("let-empty-file", "empty file", b"", ("letters.csv", "empty file")),
    let_case("let-header-only", "a header and no rows",
             b"Letter," + ",".join(str(k) for k in range(1, 17)).encode() + b"\n",
             ("letters.csv", "header only", "no data rows")),
    let_case("let-not-utf8", "Latin-1 bytes on line 2",
             letters_csv(3).replace(b"\n", b"\xe9\n", 2).replace(b"\xe9\n", b"\n", 1),
             ("letters.csv", "line 2", "not UTF-8")),
    let_case("let-binary", "binary garbage", bytes(range(256)) * 8, ("letters.csv",)),
    let_case("let-wrong-field-count", "a row with 3 fields",
             letters_csv(5) + b"C,1,2\n", ("letters.csv", "line 6", "3 fields", "expected 17")),
    let_case("let-bad-label", "a label that is not a capital letter",
             letters_csv(5) + b"ab," + b",".join([b"1"] * 16) + b"\n",
             ("letters.csv", "line 6", "column 1", "'ab'", "capital letter A-Z")),
    let_case("let-nan-feature", "a NaN feature",
             letters_csv(5) + b"A," + b",".join([b"1"] * 15) + b",nan\n",
             ("letters.csv", "line 6", "column 17", "'nan'", "finite number")),
    let_case("let-too-few-rows", "3 rows: a split would be empty", letters_csv(3),
             ("letters.csv", "3 rows give an empty split")),
    let_case("let-batch-zero", "--batch-size 0", letters_csv(), ("--batch-size", "positive"),
             "--batch-size", "0"),
    let_case("let-lr-not-number", "--lr fast", letters_csv(), ("--lr", "expected a number"),
             "--lr", "fast"),
    let_case("let-hidden-zero", "--hidden 0", letters_csv(), ("--hidden", "positive"),
             "--hidden", "0"),
    let_case("let-batch-above-rows", "--batch-size above the training rows", letters_csv(),
             ("--batch-size 500", "larger than the 48 training rows"), "--batch-size", "500"),
    let_case("let-out-under-file", "--out lies under a regular file", letters_csv(),
             ("--out letters.csv/run", "not a directory"), "--out", "letters.csv/run"),

    # ---- benchmark.py (no data file: its inputs are arguments and the output paths)
    bench_case("bench-batch-zero", "--batch-sizes 0", ("--batch-sizes", "0"),
               ("--batch-sizes", ">= 1")),
    bench_case("bench-seq-len-zero", "--seq-lens 0 (window of 0 steps)", ("--seq-lens", "0"),
               ("--seq-lens", ">= 1")),
    bench_case("bench-hidden-negative", "--hidden-sizes -3", ("--hidden-sizes", "-3"),
               ("--hidden-sizes", ">= 1")),
    bench_case("bench-lr-not-number", "--lr fast", ("--lr", "fast"),
               ("--lr", "expected a number", "'fast'")),
    bench_case("bench-unknown-variant", "--variants autodiff,magic",
               ("--variants", "autodiff,magic"), ("--variants", "'magic'", "expected names")),
    bench_case("bench-seconds-zero", "--seconds 0", ("--seconds", "0"),
               ("--seconds", "positive")),
    bench_case("bench-json-no-dir", "--json in a directory that does not exist",
               ("--json", "missing/bench.json"), ("--json", "missing", "does not exist")),
    bench_case("bench-json-is-dir", "--json names a directory", ("--json", "adir"),
               ("--json", "adir", "is a directory"), files=(("adir", None),)),
    bench_case("bench-unknown-flag", "an unknown flag (--threads)", ("--threads", "8"),
               ("unrecognized arguments",)),
)


# --------------------------------------------------------------------------------------------
# Running a bad input


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


@contextlib.contextmanager
def chdir(path: Path):
  previous = os.getcwd()
  os.chdir(path)
  try:
    yield
  finally:
    os.chdir(previous)


def call_script(script: str, argv, workdir: Path) -> Outcome:
  """Runs ``rnn_jax.cli.main(<script's entry>, argv)`` in ``workdir``, capturing its output."""
  main = script_main(script)
  from rnn_jax.common import cli
  before = snapshot(workdir)
  out, err = io.StringIO(), io.StringIO()
  # sys.argv[0] is argparse's program name in messages: the script's, as when run as a command.
  with chdir(workdir), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
      mock.patch.object(sys, "argv", [script, *argv]):
    rc = cli.main(main, list(argv))
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


def problems(case: BadInput, outcome: Outcome) -> list[str]:
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


def command(case: BadInput) -> str:
  """The case's command line as a user would type it (for the doc)."""
  import shlex
  return " ".join(["python", f"experiments/{case.script}", *map(shlex.quote, case.argv)])


# --------------------------------------------------------------------------------------------
# A tiny trained run (for forecast.py cases and the faults)


def train_args(csv: str, out: str, *extra: str, epochs: int = 1) -> list[str]:
  return ["--csv", csv, *GENERIC, "--capacity", "60", "--hidden", "8", "--epochs", str(epochs),
          "--batch-size", "64", "--patience", "0", "--no-progress", "--no-plots", "--out", out,
          *extra]


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


# --------------------------------------------------------------------------------------------
# Faults


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


@dataclasses.dataclass(frozen=True)
class Fault:
  name: str
  ids: tuple[str, ...]         # the observations ``run`` returns, in order
  run: Callable[[Path], list[Observation]]
  subprocesses: int = 0        # real processes it starts (each imports JAX: seconds)
  section: str = "faults"      # "faults" or "numerical" (the doc's section)


def _one_line(text: str, limit: int = 300) -> str:
  text = " ".join(text.split())
  return text if len(text) <= limit else text[:limit] + " ..."


def python(script: str, argv, cwd: Path, *, cpu: bool = True, **kw) -> subprocess.Popen:
  """``python experiments/<script> argv`` in ``cwd`` (on the CPU unless ``cpu=False``)."""
  env = dict(os.environ, PYTHONUNBUFFERED="1")
  if cpu:
    env["JAX_PLATFORMS"] = "cpu"      # the bit-for-bit resume claim is for the CPU
  return subprocess.Popen([sys.executable, str(EXPERIMENTS / script), *argv], cwd=cwd, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


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
  from rnn_jax.tasks import occupancy
  return sorted(p.name for p in out.iterdir() if p.name not in occupancy.RUN_FILES)


def _loadable(out: Path) -> tuple[bool, int | None, str]:
  from rnn_jax.train import checkpoint
  try:
    state = checkpoint.load(out / checkpoint.FILENAME)
    checkpoint.load_params(out / checkpoint.FILENAME)
    checkpoint.load_params(out / checkpoint.FILENAME, best=False)
    return True, int(state["epoch"]), ""
  except Exception as err:  # noqa: BLE001
    return False, None, f"{type(err).__name__}: {err}"


def _overwrite_allowed(out: Path) -> tuple[bool, str]:
  """Whether a fresh ``--overwrite`` run would be let into ``out`` (checked, nothing trained)."""
  from rnn_jax.tasks import occupancy
  from rnn_jax.common.errors import InputError
  try:
    occupancy.check_out(out, resume=False, overwrite=True)
    return True, ""
  except InputError as err:
    return False, str(err)


FAULT_EPOCHS = 30


def kill_and_resume(workdir: Path, seed: int = 0) -> list[Observation]:
  """SIGKILL a real training process at several moments, Ctrl-C it, resume it to the end, and
  compare with an uninterrupted run of the same command (parameters bit for bit, results.json,
  metrics.jsonl up to wall-clock times).

  Training: H=8, 30 epochs of 97 steps (batch 8) on ``readings_csv()``: an epoch takes tens of
  milliseconds after the first one compiles, and a checkpoint is written after each.
  """
  from rnn_jax.train import checkpoint
  rng = random.Random(seed)
  workdir.mkdir(parents=True, exist_ok=True)
  (workdir / "readings.csv").write_bytes(GOOD)
  args = lambda out, *extra: train_args("readings.csv", out, *extra,  # noqa: E731
                                         epochs=FAULT_EPOCHS) + ["--batch-size", "8"]
  out = workdir / "run"
  ckpt = out / checkpoint.FILENAME
  reference = python("train_occupancy.py", args("reference"), workdir)   # alongside the chain
  try:
    obs = []
    expected = ("the previous checkpoint loads (checkpoint.load, load_params); its epoch never "
                "goes back; leftover temporary files block neither --resume nor --overwrite")

    def kill_stage(id, fault, argv, wait_above, random_delay=False):
      proc = python("train_occupancy.py", argv, workdir)
      seen = _wait_for(proc, ckpt, wait_above)
      when = "as it appeared"
      if random_delay and seen is not None:   # a random moment within the next 3 epochs
        t0 = time.monotonic()
        seen = _wait_for(proc, ckpt, seen) or seen
        delay = rng.uniform(0.0, 3 * (time.monotonic() - t0))
        time.sleep(delay)
        when = f"+{delay * 1000:.0f} ms (random, seed {seed})"
      alive = proc.poll() is None
      proc.kill()
      proc.communicate()
      ok, epoch, err = _loadable(out)
      left = _leftovers(out)
      allowed, why = _overwrite_allowed(out)
      obs.append(Observation(
          id, fault, expected,
          f"killed {'while running' if alive else 'after it ended (too late)'}, checkpoint at "
          f"epoch {seen} {when}; afterwards it loads at epoch {epoch}"
          + (f"; leftovers {left}" if left else "; no leftovers") + (f" ({err})" if err else "")
          + ("" if allowed else f"; --overwrite refused: {why}"),
          {"killed while running": alive, "checkpoint loadable": ok,
           "epoch never goes back": epoch is not None and seen is not None and epoch >= seen,
           "--overwrite not blocked by leftovers": allowed}))
      return epoch

    e0 = kill_stage("kill-first-checkpoint", "SIGKILL as soon as the first checkpoint appears "
                    "(epoch 0, written before training while the epoch program compiles)",
                    args("run"), None)
    e1 = kill_stage("kill-after-an-epoch", "--resume, SIGKILL as soon as the checkpoint of the "
                    "next epoch appears", args("run", "--resume"), e0)
    e2 = kill_stage("kill-random-time", "--resume, SIGKILL at a random moment within 3 epochs "
                    "after the next checkpoint (mid-epoch or mid-write)",
                    args("run", "--resume"), e1, random_delay=True)

    # Ctrl-C: a real SIGINT to the process once an epoch past the last kill is saved.
    proc = python("train_occupancy.py", args("run", "--resume"), workdir)
    seen = _wait_for(proc, ckpt, e2)
    alive = proc.poll() is None
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=300)
    ok, epoch, err = _loadable(out)
    said = [line for line in stdout.splitlines() if "Interrupted" in line]
    obs.append(Observation(
        "ctrl-c", "--resume, SIGINT (Ctrl-C) once another epoch is saved",
        "exit status 130 after saving the last complete epoch; the message says how to resume",
        f"exit {proc.returncode}: {_one_line(said[0]) if said else _one_line(stdout + stderr)}",
        {"sent while training": alive and seen is not None,
         "exit status 130": proc.returncode == 130,
         "says how to resume": bool(said) and "--resume" in said[0],
         "names the saved epoch": bool(said) and epoch is not None and f"epoch {epoch}" in said[0],
         "checkpoint loadable": ok, "no traceback": "Traceback" not in stderr}))

    # Resume to the end and compare with the uninterrupted reference.
    proc = python("train_occupancy.py", args("run", "--resume"), workdir)
    stdout, stderr = proc.communicate(timeout=600)
    ref_out, ref_err = reference.communicate(timeout=600)
    done = proc.returncode == 0 and reference.returncode == 0
    same = {}
    if done:
      a, b = checkpoint.load(ckpt), checkpoint.load(workdir / "reference" / checkpoint.FILENAME)
      for key in ("params", "best_params", "opt_state"):
        la, lb = _leaves(a[key]), _leaves(b[key])
        same[key] = len(la) == len(lb) and all(
            x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y) for x, y in
            zip(la, lb))
      same["epoch"] = int(a["epoch"]) == int(b["epoch"]) == FAULT_EPOCHS
      same["results"] = (json.loads((out / "results.json").read_text())
                         == json.loads((workdir / "reference" / "results.json").read_text()))
      same["metrics"] = (_metrics(out) == _metrics(workdir / "reference"))
    obs.append(Observation(
        "resume-equals-uninterrupted", "--resume to the end after the three kills and the Ctrl-C",
        "parameters, best parameters and optimizer state equal bit for bit, results.json equal, "
        "metrics.jsonl equal up to wall-clock times, to one uninterrupted run of the same command",
        (f"exit {proc.returncode}; " + ", ".join(f"{k} {'equal' if v else 'DIFFER'}"
                                                  for k, v in same.items()))
        if done else f"exit {proc.returncode} / reference {reference.returncode}: "
                     f"{_one_line(stderr + ref_err)}",
        {"both runs finished": done, **{f"{k} equal": v for k, v in same.items()}}))
    return obs
  finally:
    if reference.poll() is None:   # the chain failed early: stop the reference too
      reference.kill()
      reference.communicate()


def _leaves(tree) -> list[np.ndarray]:
  """The arrays of a checkpoint's nested state dict, in key order."""
  if isinstance(tree, dict):
    return [leaf for k in sorted(tree, key=str) for leaf in _leaves(tree[k])]
  return [np.asarray(tree)]


def _metrics(run: Path) -> list[dict]:
  rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
  for row in rows:
    row.pop("elapsed_s", None)
  return rows


def nonfinite(workdir: Path) -> list[Observation]:
  """A learning rate that makes the loss overflow: exit 1, the message names epoch and step and
  the cures, the last good checkpoint stays and holds finite parameters."""
  from rnn_jax.train import checkpoint
  workdir.mkdir(parents=True, exist_ok=True)
  (workdir / "readings.csv").write_bytes(GOOD)
  argv = train_args("readings.csv", "run", "--optimizer", "sgd", "--lr", "1e6", "--clip", "0",
                    epochs=3)
  o = call_script("train_occupancy.py", argv, workdir)
  said = [line for line in o.stdout.splitlines() if "non-finite" in line]
  ok, epoch, err = _loadable(workdir / "run")
  finite = ok and all(np.isfinite(np.asarray(a)).all() for a in
                      checkpoint.load_params(workdir / "run" / checkpoint.FILENAME))
  msg = said[0] if said else o.stdout + o.stderr   # printed whole in the doc
  at = re.search(r"at epoch (\d+), step (\d+) of (\d+)", msg)
  return [Observation(
      "nonfinite-loss", "--optimizer sgd --lr 1e6 --clip 0: the loss overflows",
      "exit status 1; the message names the epoch and step, keeps the last good checkpoint and "
      "suggests --lr, --clip and --init irnn; no results.json",
      f"exit {o.rc}: {_one_line(msg, 1000)}",
      {"exit status 1": o.rc == 1, "names epoch and step": at is not None,
       "suggests the cures": all(c in msg for c in ("--lr", "--clip", "--init irnn")),
       "last good checkpoint kept (the epoch before)": ok and at is not None
       and epoch == int(at.group(1)) - 1 and f"checkpoint (epoch {epoch})" in msg,
       "its parameters are finite": finite,
       "no results.json": not (workdir / "run" / "results.json").exists(),
       "nothing on stderr": o.stderr == ""})]


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
  """A real checkpoint cut off at every length (step 7 bytes) and with 200 random byte flips:
  checkpoint.load gives the checkpoint or one InputError line, never another exception."""
  from rnn_jax.train import checkpoint
  from rnn_jax.tasks import occupancy
  from rnn_jax.common.errors import InputError
  run = shared_run()
  good = (run / checkpoint.FILENAME).read_bytes()
  rng = np.random.default_rng(0)
  variants = [good[:k] for k in range(0, len(good), 7)]
  for _ in range(200):
    b = bytearray(good)
    for pos in rng.integers(0, len(b), rng.integers(1, 4)):
      b[pos] = int(rng.integers(0, 256))
    variants.append(bytes(b))
  counts = {"loaded": 0, "InputError": 0}
  other = []
  target = workdir / "damaged"
  shutil.copytree(run, target)
  for data in variants:
    (target / checkpoint.FILENAME).write_bytes(data)
    try:
      occupancy.load_run(target)
      counts["loaded"] += 1
    except InputError as err:
      counts["InputError"] += 1
      if "\n" in str(err):
        other.append(f"multi-line: {err!r}")
    except Exception as err:  # noqa: BLE001
      other.append(f"{type(err).__name__}: {err}")
  return [Observation(
      "damaged-checkpoint", f"forecast's load_run on {len(variants)} damaged copies of a real "
      "checkpoint (cut off at every 7th byte; 1-3 random bytes changed)",
      "each either loads (a change that msgpack cannot notice) or is one InputError line naming "
      "the file; no other exception",
      f"{counts['loaded']} loaded, {counts['InputError']} one-line InputErrors, "
      f"{len(other)} other" + (f" (first: {_one_line(other[0], 200)})" if other else ""),
      {"only loads or InputError": not other})]


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
    metrics = _metrics(workdir / "run")
    checks["losses finite"] = all(np.isfinite(r[k]) for r in metrics
                                  for k in ("train_loss", "val_loss"))
    results = json.loads((workdir / "run" / "results.json").read_text())
    maes = [v for s in results["splits"].values() for v in s["model"]["mae"]]
    checks["model MAE finite"] = bool(np.isfinite(maes).all())
    for name in ("stretches.csv", "zeros.csv", "full.csv", "constant.csv"):
      f = call_script("forecast.py", ["--run", "run", "--csv", name, "--json"], workdir)
      people = [x["people"] for x in json.loads(f.stdout)["forecasts"]] if f.rc == 0 else []
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
  float64: finite, and the hand BPTT gradient equals autodiff's (tests/test_bptt.py checks
  +-1000 in depth; this extends the sizes to float32's range)."""
  import jax
  import jax.numpy as jnp
  from rnn_jax.core import bptt, model
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
    left = [_leftover(run, "checkpoint.msgpack"), ".rnn_jax_write_probe"]
    (run / ".rnn_jax_write_probe").write_bytes(b"\0" * 64)
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
  with chdir(workdir), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
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
  ok, epoch, _ = _loadable(workdir / "run")
  resumed = call_script("train_occupancy.py", train_args("readings.csv", "run", "--resume"),
                        workdir)
  return [Observation(
      "ctrl-c-after-training", "SIGINT (KeyboardInterrupt) while the baselines are fitted, after "
      "the last checkpoint",
      "exit status 130, no traceback; the message says the checkpoint is kept and to use "
      "--resume, which then finishes the evaluation",
      f"exit {rc}" + (f": {_one_line(said[0])}" if said else "")
      + f"; then --resume exits {resumed.rc}",
      {"exit status 130": rc == 130, "says --resume": bool(said),
       "checkpoint loadable": ok and epoch == 1, "--resume finishes": resumed.rc == 0
       and (workdir / "run" / "results.json").is_file()})]


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

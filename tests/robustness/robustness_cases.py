"""The bad command lines every script in experiments/ is tried with, and how a case is run.

A ``BadInput`` is one command line of one script, run in a fresh working directory that holds
``files`` (and, with ``prepare``, a copy of a tiny trained run). Its contract: exit status 2,
exactly one line on stderr, ``error: <message>``, naming the file and the row, column or
argument and what was expected (``expect``: fragments of the message), no traceback, and the
working directory exactly as before (no output directory or file left behind). ``run_case``
calls the script's ``main(argv)`` in-process (``load_script``); ``violations`` lists how an
outcome breaks the contract. The builders (``occ_case``, ``fc_case``, ``let_case``,
``bench_case``) keep the table to one entry per case: each adds the flags most cases of its
script share (``TINY``, ``GENERIC``, ``LETTERS_TINY``, ``BENCH_TINY``, which the doc leaves out
of its "arguments" column). ``GOOD`` is the readings file most cases start from (8 days of
10-minute readings), ``with_line`` a copy with one line replaced.
"""
from __future__ import annotations

import atexit
import contextlib
import dataclasses
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable
from unittest import mock

import numpy as np

from conftest import REPO, load_script

SCRIPTS = ("train_occupancy.py", "forecast.py", "train_letters.py", "benchmark.py")


# --------------------------------------------------------------------------- input files

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


# --------------------------------------------------------------------------- the cases


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


# The cases run the notes' configuration (one model, T=24, readings only), tiny: they are about
# what bad input and faults produce, not about the forecaster.
def tiny(epochs: int = 1) -> tuple:
  """The flags of the tiny model every case and fault trains, for ``epochs`` epochs."""
  return ("--preset", "notes", "--hidden-size", "8", "--epochs", str(epochs), "--batch-size",
          "64", "--no-progress", "--no-plots")


TINY = tiny()


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


# ---- forecast.py: run directories made from a tiny trained run (``trained_run``)


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


LETTERS_TINY = ("--hidden-size", "4", "--epochs", "1", "--batch-size", "4", "--no-progress",
                "--out", "out")


def let_case(id, problem, content, expect, *extra, csv="letters.csv") -> BadInput:
  files = (("letters.csv", content),) if content is not None else ()
  argv = (("--csv", csv) if csv else ()) + LETTERS_TINY + tuple(extra)
  return BadInput(id, "train_letters.py", problem, argv, expect, files)


BENCH_TINY = ("--batch-sizes", "2", "--windows", "3", "--hidden-sizes", "4", "--variants",
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
    occ_case("occ-negative-strict", "a negative reading, with --strict (without it the "
             "reading is masked as a gap)", with_line(8, ROWS[7].split(",")[0] + ",-3"),
             ("readings.csv", "line 8", "'-3'", "negative", "expected a number >= 0",
              "without --strict such readings are masked as gaps"), "--strict"),
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
    occ_case("occ-above-capacity-strict", "a reading above --capacity, with --strict "
             "(without it the reading is masked as a gap)",
             with_line(13, ROWS[12].split(",")[0] + ",61"),
             ("readings.csv", "line 13", "61", "above the given capacity 60",
              "expected readings <= capacity", "without --strict"), "--strict"),
    occ_case("occ-frozen-strict", "the reading stays 30 for 30 hours (a frozen sensor), with "
             "--strict (without it the stretch is masked as a gap)",
             readings_csv(value=lambda i: np.where((i >= 3 * 144 + 48) & (i < 4 * 144 + 84), 30,
                                                   20 + i % 7)),
             ("readings.csv", "lines 482..661", "reading 30 in column 'people' stays unchanged "
              "for 29.8 hours (180 readings)", "--max-flat-hours 12",
              "without --strict such stretches are masked as gaps"), "--strict"),
    occ_arg("occ-max-flat-hours-negative", "--max-flat-hours -1", ("--max-flat-hours", "-1"),
            ("--max-flat-hours", "expected a finite number >= 0 (0 = off)", "-1")),
    BadInput("occ-panel-missing", "train_occupancy.py", "--panel names no file",
             ("--panel", "nope.json") + TINY + ("--out", "out"),
             ("--panel nope.json", "no such file", "JSON panel spec")),
    occ_arg("occ-global-model-one-series", "--global-model with one --csv",
            ("--global-model",), ("--global-model", "expected several series")),
    occ_arg("occ-folds-one", "--folds 1 (a backtest needs two cutoffs or more)",
            ("--folds", "1"), ("--folds", "integer >= 2", "0 or none: no backtest", "got 1")),
    occ_arg("occ-folds-not-integer", "--folds three", ("--folds", "three"),
            ("--folds", "integer >= 2", "'three'")),
    occ_arg("occ-folds-resume", "--folds with --resume", ("--folds", "2", "--resume"),
            ("--folds", "not available with --resume", "drop one of them")),
    occ_arg("occ-folds-levels", "--folds with --task levels", ("--folds", "2", "--task", "levels"),
            ("--folds with --task levels", "expected --task horizons")),
    BadInput("occ-folds-global-model", "train_occupancy.py",
             "--folds with --global-model (--csv of two files)",
             ("--csv", "readings.csv", "other.csv", *GENERIC) + TINY
             + ("--out", "out", "--folds", "2", "--global-model"),
             ("--folds", "not available with --global-model"),
             (("readings.csv", GOOD), ("other.csv", GOOD))),
    BadInput("occ-folds-panel-gap", "train_occupancy.py",
             "--folds 2 with --csv of two files, the second with an outage over most of fold "
             "1's test block: nothing is trained",
             ("--csv", "readings.csv", "gap.csv", *GENERIC) + TINY
             + ("--out", "out", "--folds", "2"),
             ("series 'gap'", "--folds 2: fold 1 (test block", "gap.csv", "no usable window"),
             (("readings.csv", GOOD),
              ("gap.csv", ("\n".join(ROWS[:821] + ROWS[980:]) + "\n").encode()))),
    occ_arg("occ-folds-out-has-backtest", "--folds 2, --out holds a backtest already, no "
            "--overwrite", ("--folds", "2"),
            ("--out out", "holds a backtest (cross_validation.csv)", "--overwrite"),
            prepare=lambda w, r: ((w / "out").mkdir(),
                                  (w / "out" / "cross_validation.csv").write_text("ds,y\n"))),
    occ_arg("occ-folds-too-many", "--folds 5 on 8 days: fold 1 would train on less than a "
            "test block", ("--folds", "5"),
            ("--folds 5", "fold 1 would train on 114 of the grid's 1152 bins",
             "fewer than a test block's 173", "--folds 4 or fewer")),
    occ_case("occ-folds-gap", "--folds 2, an outage over most of fold 1's test block (readings "
             "820..978 missing)",
             ("\n".join(ROWS[:821] + ROWS[980:]) + "\n").encode(),
             ("--folds 2: fold 1 (test block 2024-03-09T14:20:00Z to 2024-03-10T19:10:00Z)",
              "readings.csv", "split 'test'", "no usable window"),
             "--folds", "2"),
    BadInput("occ-panel-bad-series", "train_occupancy.py",
             "--csv with two files, the second without readings: nothing is trained",
             ("--csv", "readings.csv", "empty.csv", *GENERIC) + TINY + ("--out", "out"),
             ("series 'empty'", "empty.csv", "is empty"),
             (("readings.csv", GOOD), ("empty.csv", b""))),
    occ_case("occ-capacity-zero", "--capacity 0", GOOD, ("--capacity", "> 0", "got 0"),
             capacity="0"),
    occ_case("occ-capacity-negative", "--capacity -5", GOOD, ("--capacity", "> 0", "-5"),
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
    occ_arg("occ-window-zero", "--window 0", ("--window", "0"),
            ("--window", "positive integer", "0")),
    occ_arg("occ-window-negative", "--window -3", ("--window", "-3"),
            ("--window", "positive integer", "-3")),
    occ_arg("occ-horizon-zero", "--horizons 1,0", ("--horizons", "1,0"),
            ("--horizons", "positive integer", "0")),
    occ_arg("occ-horizon-negative", "--horizons -6", ("--horizons", "-6"),
            ("--horizons", "positive integer", "-6")),
    occ_arg("occ-batch-zero", "--batch-size 0", ("--batch-size", "0"),
            ("--batch-size", "positive integer", "0")),
    occ_arg("occ-lr-not-number", "--lr fast", ("--lr", "fast"),
            ("--lr", "expected a number", "'fast'")),
    occ_arg("occ-lr-nan", "--lr nan", ("--lr", "nan"), ("--lr", "finite")),
    occ_arg("occ-seeds-zero", "--seeds 0", ("--seeds", "0"), ("--seeds", "positive integer")),
    occ_arg("occ-preset-unknown", "--preset nots", ("--preset", "nots"),
            ("--preset", "invalid choice", "'nots'")),
    occ_arg("occ-interval-one", "--interval 1 (a level of 100%)", ("--interval", "1"),
            ("--interval", "strictly between 0 and 1", "got 1.0")),
    occ_arg("occ-unit-blank", "--unit ' '", ("--unit", " "), ("--unit", "expected a name")),
    occ_arg("occ-loss-unknown", "--loss mse", ("--loss", "mse"),
            ("--loss", "'mse'", "bce", "pinball")),
    occ_arg("occ-pinball-levels", "--loss pinball with --task levels (quantiles of a class)",
            ("--loss", "pinball", "--task", "levels"),
            ("--loss pinball", "--task horizons", "--task levels")),
    occ_arg("occ-unknown-feature", "--features occupancy,weather",
            ("--features", "occupancy,weather"),
            ("--features", "'weather'", "occupancy, calendar")),
    occ_arg("occ-epochs-fraction", "--epochs 1.5", ("--epochs", "1.5"),
            ("--epochs", "integer", "'1.5'")),
    occ_arg("occ-step-not-divisor", "--step-minutes 7", ("--step-minutes", "7"),
            ("--step-minutes", "divisor of 1440")),
    occ_arg("occ-precision-unknown", "--precision fp16 (not a matmul precision)",
            ("--precision", "fp16"),
            ("--precision", "highest, tf32, bf16, default", "'fp16'")),
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
            ("--resume", "--lr", "0.01"), ("out/checkpoint.msgpack", "lr=0.1", "lr=0.01",
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
                                                      train={"hidden_size": 8}))),
    fc_case("fc-features-incompatible", "config.json asks for calendar features, the checkpoint "
            "was trained without", ("--run run", "checkpoint V has shape [8, 1]", "needs [8, 5]",
                                    "incompatible run"),
            edit=_set("windows", "features", ["occupancy", "calendar"])),
    fc_case("fc-hidden-incompatible", "config.json says --hidden-size 16, the checkpoint has 8",
            ("--run run", "checkpoint U has shape [8, 8]", "incompatible run"),
            edit=_set("train", "hidden_size", 16)),
    fc_case("fc-window-incompatible", "config.json says --window 12, the checkpoint was trained "
            "on windows of 24", ("--run run", "12", "24", "incompatible run"),
            edit=_set("windows", "window", 12)),
    fc_case("fc-csv-missing", "--csv names no file", ("nope.csv", "no such file"),
            csv="nope.csv"),
    fc_case("fc-csv-too-short", "--csv has fewer readings than one window",
            ("short.csv", "no complete window", "needs 24 consecutive"), csv="short.csv",
            files=(("short.csv", readings_csv(10)),)),
    fc_case("fc-csv-negative-strict", "--csv has a negative reading and the run was trained "
            "with --strict", ("readings.csv", "line 8", "negative", "without --strict"),
            files=(("readings.csv", with_line(8, ROWS[7].split(",")[0] + ",-3")),),
            edit=_set("source", "strict", True)),
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
    let_case("let-hidden-zero", "--hidden-size 0", letters_csv(), ("--hidden-size", "positive"),
             "--hidden-size", "0"),
    let_case("let-batch-above-rows", "--batch-size above the training rows", letters_csv(),
             ("--batch-size 500", "larger than the 48 training rows"), "--batch-size", "500"),
    let_case("let-out-under-file", "--out lies under a regular file", letters_csv(),
             ("--out letters.csv/run", "not a directory"), "--out", "letters.csv/run"),

    # ---- benchmark.py (no data file: its inputs are arguments and the output paths)
    bench_case("bench-batch-zero", "--batch-sizes 0", ("--batch-sizes", "0"),
               ("--batch-sizes", "positive integers", "0")),
    bench_case("bench-seq-len-zero", "--windows 0 (window of 0 steps)", ("--windows", "0"),
               ("--windows", "positive integers", "0")),
    bench_case("bench-hidden-negative", "--hidden-sizes -3", ("--hidden-sizes", "-3"),
               ("--hidden-sizes", "positive integers", "-3")),
    bench_case("bench-lr-not-number", "--lr fast", ("--lr", "fast"),
               ("--lr", "expected a number", "'fast'")),
    bench_case("bench-unknown-variant", "--variants autodiff,magic",
               ("--variants", "autodiff,magic"), ("--variants", "'magic'", "expected names")),
    bench_case("bench-precision-unknown", "--precision fp16 (not a matmul precision)",
               ("--precision", "fp16"), ("--precision", "highest, tf32, bf16, default",
                                         "'fp16'")),
    bench_case("bench-seconds-zero", "--seconds 0", ("--seconds", "0"),
               ("--seconds", "positive")),
    bench_case("bench-json-no-dir", "--json in a directory that does not exist",
               ("--json", "missing/bench.json"), ("--json", "missing", "does not exist")),
    bench_case("bench-json-is-dir", "--json names a directory", ("--json", "adir"),
               ("--json", "adir", "is a directory"), files=(("adir", None),)),
    bench_case("bench-unknown-flag", "an unknown flag (--threads)", ("--threads", "8"),
               ("unrecognized arguments",)),
)


# --------------------------------------------------------------------------- running a case


@dataclasses.dataclass
class Outcome:
  """What one in-process run of a script gave."""
  rc: int | str                # exit status, or "exception" when one escaped main
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
  """``main`` of ``experiments/<script>`` (``load_script``, once per process)."""
  if script not in _MAINS:
    _MAINS[script] = load_script(script).main
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
  """Runs the script's ``main(argv)`` in ``workdir``, capturing its output."""
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


def run_case(case: BadInput, workdir: Path, run: Path | None = None) -> Outcome:
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
  return subprocess.Popen([sys.executable, str(REPO / "experiments" / script), *argv], cwd=cwd,
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


# --------------------------------------------------------------------------- a tiny trained run


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

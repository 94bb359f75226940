"""Run directories (rnn_jax.common.rundir): the --out checks, leftovers, staging, config.json."""
from __future__ import annotations

import json

import pytest

from rnn_jax.common.errors import InputError
from rnn_jax.common.versions import versions
from rnn_jax.common import rundir
from common.lock_holder import hold_lock

RUN_FILES = ("config.json", "metrics.jsonl", "checkpoint.msgpack")
NEEDS = ("config.json", "checkpoint.msgpack")


def check(out, resume=False, overwrite=False):
  return rundir.check_out(out, resume=resume, overwrite=overwrite, run_files=RUN_FILES,
                          resume_needs=NEEDS)


def make_run(out, *names):
  out.mkdir(parents=True, exist_ok=True)
  for name in names:
    (out / name).write_text("x")
  return out


def listing(path):
  return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


@pytest.mark.parametrize("name, leftover", [
    (".rnn_jax_write_probe", True), (".config.json.ab12cd.tmp", True),
    (".checkpoint.msgpack.x.tmp", True), (".notes.txt.x.tmp", False), ("config.json", False),
    (".config.json.x", False)])
def test_is_leftover(name, leftover):
  assert rundir.is_leftover(name, RUN_FILES) is leftover


def test_check_out_allows_new_and_empty(tmp_path):
  assert check(tmp_path / "new") == tmp_path / "new"
  (tmp_path / "empty").mkdir()
  assert check(tmp_path / "empty") == tmp_path / "empty"
  assert not (tmp_path / "new").exists()


def test_check_out_messages(tmp_path):
  out = make_run(tmp_path / "run", *RUN_FILES)
  with pytest.raises(InputError, match=r"^--resume and --overwrite: expected at most one"):
    check(out, resume=True, overwrite=True)
  with pytest.raises(InputError, match=r"a run already exists there \(checkpoint.msgpack, "
                                       r"config.json, metrics.jsonl\); pass --overwrite"):
    check(out)
  (tmp_path / "file").write_text("x")
  with pytest.raises(InputError, match="exists and is not a directory"):
    check(tmp_path / "file")
  half = make_run(tmp_path / "half", "config.json")
  with pytest.raises(InputError, match=r"--resume needs a run there \(config.json and "
                                       r"checkpoint.msgpack\); found \['config.json'\]"):
    check(half, resume=True)
  with pytest.raises(InputError, match="found nothing"):
    check(tmp_path / "none", resume=True)
  assert check(out, resume=True) == out


def test_check_out_overwrite_only_replaces_runs(tmp_path):
  out = make_run(tmp_path / "run", *RUN_FILES, ".metrics.jsonl.k.tmp", ".rnn_jax_write_probe")
  assert check(out, overwrite=True) == out
  (out / "notes.txt").write_text("mine")
  with pytest.raises(InputError, match="--overwrite only replaces rnn_jax runs, but the "
                                       "directory also holds notes.txt"):
    check(out, overwrite=True)


def test_clear_run_keeps_other_files(tmp_path):
  out = make_run(tmp_path / "run", *RUN_FILES, ".config.json.k.tmp", ".rnn_jax_write_probe",
                 "notes.txt")
  rundir.clear_run(out, RUN_FILES)
  assert listing(out) == ["notes.txt"]


def test_check_new_out_messages(tmp_path):
  rundir.check_new_out(tmp_path / "a" / "b", overwrite=False)   # nothing there: fine
  assert listing(tmp_path) == []
  run = make_run(tmp_path / "run", "config.json")
  with pytest.raises(InputError, match="already exists; pass --overwrite to replace that run"):
    rundir.check_new_out(run, overwrite=False)
  rundir.check_new_out(run, overwrite=True)
  other = make_run(tmp_path / "other", "notes.txt")
  with pytest.raises(InputError, match=r"not a run directory \(no config.json\); refusing"):
    rundir.check_new_out(other, overwrite=True)
  (tmp_path / "file").write_text("x")
  with pytest.raises(InputError, match="exists and is not a directory"):
    rundir.check_new_out(tmp_path / "file", overwrite=True)
  with pytest.raises(InputError, match="file is not a directory"):
    rundir.check_new_out(tmp_path / "file" / "run", overwrite=False)


def test_staging_renames_into_place_when_complete(tmp_path):
  out = tmp_path / "deep" / "run"
  with rundir.staging(out) as tmp:
    assert tmp.parent == out.parent and tmp.name.startswith(".run.")
    (tmp / "config.json").write_text("new")
    assert not out.exists()
  assert listing(tmp_path) == ["deep", "deep/run", "deep/run/config.json"]
  with rundir.staging(out) as tmp:                 # replaces the run only once complete
    (tmp / "results.json").write_text("newer")
    assert (out / "config.json").read_text() == "new"
  assert listing(tmp_path) == ["deep", "deep/run", "deep/run/results.json"]


def test_staging_failure_leaves_nothing_behind(tmp_path):
  with pytest.raises(RuntimeError, match="boom"):
    with rundir.staging(tmp_path / "a" / "b" / "run") as tmp:
      (tmp / "config.json").write_text("x")
      raise RuntimeError("boom")
  assert listing(tmp_path) == []                   # the created parents are gone too
  old = make_run(tmp_path / "run", "config.json")
  with pytest.raises(KeyboardInterrupt):
    with rundir.staging(old):
      raise KeyboardInterrupt
  assert listing(tmp_path) == ["run", "run/config.json"]


def test_staging_that_cannot_start_is_an_input_error(tmp_path):
  (tmp_path / "file").write_text("x")
  with pytest.raises(InputError, match=r"--out .*file/run: cannot create it"):
    with rundir.staging(tmp_path / "file" / "run"):
      pass
  assert listing(tmp_path) == ["file"]


def test_config_round_trip_with_versions_last(tmp_path):
  path = rundir.write_config(tmp_path, {"train": {"lr": 0.1}, "data": {"rows": 3}})
  assert path == tmp_path / "config.json"
  saved = json.loads(path.read_text())
  assert list(saved) == ["train", "data", "versions"] and saved["versions"] == versions()
  assert rundir.read_config(tmp_path) == saved
  assert rundir.read_config(tmp_path, lambda cfg: cfg["train"]["lr"]) == 0.1


def test_read_config_messages(tmp_path):
  with pytest.raises(InputError, match="^--run .*nope: no such run directory$"):
    rundir.read_config(tmp_path / "nope")
  with pytest.raises(InputError, match=r"no config.json \(not a run directory, or the run was "
                                       r"never started\)"):
    rundir.read_config(tmp_path)
  (tmp_path / "config.json").write_text("{truncated")
  with pytest.raises(InputError, match=r"config.json: not a readable rnn_jax run config "
                                       r"\(JSONDecodeError: "):
    rundir.read_config(tmp_path)
  (tmp_path / "config.json").write_text("{}")
  with pytest.raises(InputError, match=r"not a readable rnn_jax run config \(KeyError: 'x'\)"):
    rundir.read_config(tmp_path, lambda cfg: cfg["x"])


@pytest.mark.parametrize("staged", [False, True])
def test_lock_refuses_while_held_and_a_killed_holder_leaves_no_stale_lock(tmp_path, staged):
  out = make_run(tmp_path / "run", *RUN_FILES)
  holder = hold_lock(out, staged)
  try:
    with pytest.raises(InputError, match=r"^--out .*run: another run is writing there now "
                                         r"\(it holds .*lock\); wait for it to end"):
      with rundir.lock(out, staged=staged):
        pytest.fail("entered a lock another process holds")
  finally:
    holder.kill()
    holder.wait()
  lock_file = tmp_path / ".run.lock" if staged else out / ".lock"
  assert lock_file.exists()                 # SIGKILL left the file, but not the lock
  assert check(out, overwrite=True) == out  # and the file is no obstacle to --out
  with rundir.lock(out, staged=staged):
    assert lock_file.exists()
  assert not lock_file.exists() and listing(out) == sorted(RUN_FILES)


def test_lock_of_a_refused_new_run_leaves_nothing(tmp_path):
  with pytest.raises(InputError, match="bad"):
    with rundir.lock(tmp_path / "a" / "run"):
      raise InputError("bad")
  assert listing(tmp_path) == []

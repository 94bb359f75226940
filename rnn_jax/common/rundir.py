"""Run directories: whether ``--out`` may be used, leftovers of killed writes, staging, config.json.

A run directory is made one of two ways, each checked before anything is created:

* In place (the occupancy run, which checkpoints and resumes): ``check_out`` allows a new or
  empty directory, ``--resume`` of a run there, or ``--overwrite`` of a directory holding only
  an rnn_jax run's files; ``clear_run`` then removes the old run's files. Every file is written
  atomically (rnn_jax.common.fileio), so a write killed midway leaves only a hidden temporary
  file (``is_leftover``), which blocks neither ``--resume`` nor ``--overwrite``.
* Staged (the letters run, short and never resumed): ``check_new_out`` refuses an existing
  ``--out`` unless ``--overwrite`` is given and it is a run; ``staging`` assembles the run in a
  hidden directory beside ``--out`` and renames it into place when complete, so a refused or
  failed run leaves nothing behind and ``--out`` is never half-written.

Either way, a live run holds an exclusive ``fcntl.flock`` lock (``lock``) on a lock file for the
whole run, and every other run on the same ``--out`` (``--overwrite`` and ``--resume``
included) is refused while it lives. The OS releases the lock when the process exits or is
killed (SIGKILL included), so a killed run leaves no stale lock.

``write_config`` saves config.json with the library versions
(rnn_jax.common.versions.versions()) beside every result; ``read_config`` reads it back,
checked.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from rnn_jax.common import fileio
from rnn_jax.common.errors import InputError
from rnn_jax.common.versions import versions

CONFIG = "config.json"
LOCK = ".lock"   # in a run directory made in place: held by the run writing it (``lock``)


# --------------------------------------------------------------------------- in place

def is_leftover(name: str, run_files: Sequence[str]) -> bool:
  """A temporary file of rnn_jax.common.fileio (``.<run file>.<random>.tmp``) left by a killed write,
  or the probe of checkpoint.check_writable."""
  return name == fileio.WRITE_PROBE or (
      name.endswith(".tmp") and any(name.startswith(f".{f}.") for f in run_files))


def existing_files(out: Path) -> list[str]:
  """The names in directory ``out`` but its lock file, sorted; none when it is not a directory."""
  return sorted(p.name for p in out.iterdir() if p.name != LOCK) if out.is_dir() else []


def check_out(out: str | os.PathLike, *, resume: bool, overwrite: bool,
              run_files: Sequence[str], resume_needs: Sequence[str]) -> Path:
  """Decides whether ``--out`` may be used for a run of ``run_files``, without creating anything.

  ``resume_needs``: the files ``--resume`` requires there. Raises InputError naming ``--out``.
  """
  out = Path(out)
  if resume and overwrite:
    raise InputError("--resume and --overwrite: expected at most one of them")
  if out.exists() and not out.is_dir():
    raise InputError(f"--out {out}: exists and is not a directory")
  existing = existing_files(out)
  if resume:
    if not all((out / name).is_file() for name in resume_needs):
      raise InputError(f"--out {out}: --resume needs a run there ({' and '.join(resume_needs)}"
                       f"); found {existing or 'nothing'}")
  elif existing and not overwrite:
    raise InputError(f"--out {out}: a run already exists there ({', '.join(existing[:4])}"
                     f"{', ...' if len(existing) > 4 else ''}); pass --overwrite to replace it "
                     "or --resume to continue it")
  elif existing and overwrite:
    unknown = [name for name in existing
               if name not in run_files and not is_leftover(name, run_files)]
    if unknown:
      raise InputError(f"--out {out}: --overwrite only replaces rnn_jax runs, but the "
                       f"directory also holds {', '.join(unknown[:4])}")
  return out


def clear_run(out: Path, run_files: Sequence[str]) -> None:
  """Removes the files of a previous run (and leftovers of killed writes) from ``out``."""
  for path in out.iterdir():
    if path.name in run_files or is_leftover(path.name, run_files):
      path.unlink()


@contextlib.contextmanager
def lock(out: Path, *, staged: bool = False) -> Iterator[None]:
  """Holds the lock file of run directory ``out`` locked with ``fcntl.flock`` while the block
  runs (creating it and its directory); InputError naming ``--out`` when a live run holds it.

  The lock file is ``out/.lock`` for a run made in place, and ``.<name>.lock`` beside ``out``
  for a staged one (``out`` itself is swapped when the run is complete). flock locks belong
  to the open file, so the OS drops the lock when its process dies: a killed run never leaves
  ``out`` locked (its lock file stays, unlocked, and is ignored). The holder removes the file
  before it lets go; a run that opened the file just before that sees it is gone (its inode
  is no longer the path's) and opens the new one. When the block fails, directories made here
  and left empty are removed again.
  """
  lock_file = out.parent / f".{out.name}.lock" if staged else out / LOCK
  where = lock_file.absolute().parent
  created = [p for p in reversed((where, *where.parents)) if not p.exists()]   # outermost first
  while True:
    try:
      where.mkdir(parents=True, exist_ok=True)
      fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as err:
      _remove_created(created)
      raise InputError(f"--out {out}: cannot create it ({err.strerror or err})") from None
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
      os.close(fd)
      raise InputError(f"--out {out}: another run is writing there now (it holds {lock_file});"
                       " wait for it to end or choose another --out") from None
    with contextlib.suppress(FileNotFoundError):
      if os.path.samestat(os.fstat(fd), os.stat(lock_file)):
        break
    os.close(fd)
  done = False
  try:
    yield
    done = True
  finally:
    with contextlib.suppress(FileNotFoundError):
      lock_file.unlink()
    os.close(fd)
    if not done:
      _remove_created(created)


# --------------------------------------------------------------------------- staged

def check_new_out(out: Path, overwrite: bool) -> None:
  """Decides whether a staged run may be written to ``out``, without creating anything.

  ``out`` must not exist, or be a run directory (holding config.json, or empty) and
  ``overwrite`` given; its nearest existing parent must be a writable directory.
  """
  if out.exists() or out.is_symlink():
    if not out.is_dir():
      raise InputError(f"--out {out}: exists and is not a directory")
    if not overwrite:
      raise InputError(f"--out {out}: already exists; pass --overwrite to replace that run or "
                       "choose another directory")
    if any(out.iterdir()) and not (out / CONFIG).is_file():
      raise InputError(f"--out {out}: exists and is not a run directory (no {CONFIG}); "
                       "refusing to replace it")
  for parent in out.absolute().parents:
    if parent.exists():
      if not parent.is_dir():
        raise InputError(f"--out {out}: {parent} is not a directory")
      if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"--out {out}: cannot create it, {parent} is not writable")
      break


def _remove_created(created: list[Path]) -> None:
  for parent in reversed(created):
    with contextlib.suppress(OSError):
      parent.rmdir()


@contextlib.contextmanager
def staging(out: Path) -> Iterator[Path]:
  """A hidden directory beside ``out``; renamed onto it on success, removed on any failure.

  Parent directories created for it are removed again on failure. An existing ``out`` is
  swapped out only once the new run is complete.
  """
  created = [parent for parent in reversed(out.absolute().parents) if not parent.exists()]
  try:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)   # mkdtemp's 0700 would hide the run from the group
  except OSError as err:
    _remove_created(created)
    raise InputError(f"--out {out}: cannot create it ({err.strerror or err})") from None
  try:
    yield tmp
    if out.exists():
      old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
      os.replace(out, old / out.name)
      os.replace(tmp, out)
      shutil.rmtree(old)
    else:
      os.replace(tmp, out)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    _remove_created(created)
    raise


# --------------------------------------------------------------------------- config.json

def write_config(directory: str | os.PathLike, config: dict[str, Any]) -> Path:
  """Writes ``config`` and, last, ``"versions": versions()`` to ``directory``/config.json."""
  path = Path(directory) / CONFIG
  fileio.write_json(path, {**config, "versions": versions()})
  return path


def read_config(run: str | os.PathLike, parse: Callable[[dict], Any] = lambda cfg: cfg) -> Any:
  """``parse(config.json)`` of run directory ``run``; InputError naming the file otherwise.

  ``parse`` turns the JSON object into settings; its ValueError, KeyError or TypeError is
  reported as an unreadable config, like a file that is not JSON.
  """
  path = Path(run) / CONFIG
  if not Path(run).is_dir():
    raise InputError(f"--run {run}: no such run directory")
  if not path.is_file():
    raise InputError(f"--run {run}: no {CONFIG} (not a run directory, or the run was never "
                     "started)")
  try:
    return parse(json.loads(path.read_text(encoding="utf-8")))
  except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
    raise InputError(f"{path}: not a readable rnn_jax run config ({type(err).__name__}: "
                     f"{err})") from None

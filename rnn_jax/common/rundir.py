"""Run directories, checked before anything is created: in place (the occupancy run, which
resumes: ``check_out``, ``clear_run``; a killed write leaves only a temporary file,
``is_leftover``) or staged (the letters run: ``check_new_out``, ``staging``, renamed into place
when complete). Either way a live run holds ``lock`` for its whole life."""
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


def is_leftover(name: str, run_files: Sequence[str]) -> bool:
  """A temporary file of a killed write (``.<run file>.<random>.tmp``) or the write probe."""
  return name == fileio.WRITE_PROBE or (
      name.endswith(".tmp") and any(name.startswith(f".{f}.") for f in run_files))


def check_out(out: str | os.PathLike, *, resume: bool, overwrite: bool,
              run_files: Sequence[str], resume_needs: Sequence[str]) -> Path:
  """Whether ``--out`` may hold a run of ``run_files`` (a new or empty directory, ``--resume``
  of a run with ``resume_needs``, ``--overwrite`` of a run); InputError naming ``--out``."""
  out = Path(out)
  if resume and overwrite:
    raise InputError("--resume and --overwrite: expected at most one of them")
  if out.exists() and not out.is_dir():
    raise InputError(f"--out {out}: exists and is not a directory")
  existing = sorted(p.name for p in out.iterdir() if p.name != LOCK) if out.is_dir() else []
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
  """Holds an exclusive ``fcntl.flock`` on ``out/.lock`` (in place) or ``.<name>.lock`` beside
  ``out`` (staged) while the block runs; InputError naming ``--out`` when a live run holds it.
  The OS drops a flock when its process dies. The holder removes the file before it lets go; a
  run that opened it just before sees its inode is no longer the path's and opens the new one."""
  lock_file = out.parent / f".{out.name}.lock" if staged else out / LOCK
  where = lock_file.absolute().parent
  created = [p for p in reversed((where, *where.parents)) if not p.exists()]   # outermost first
  while True:
    try:
      where.mkdir(parents=True, exist_ok=True)
      fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as err:
      _remove_created(created)
      raise InputError(f"{out}: cannot write the output directory ({err.strerror or err}); "
                       "choose another --out or free some space") from None
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


def check_new_out(out: Path, overwrite: bool) -> None:
  """Whether a staged run may be written to ``out``: it does not exist, or is a run directory
  (config.json, or empty) and ``overwrite`` is given; its nearest existing parent is writable."""
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
  """A hidden directory beside ``out``, renamed onto it on success, removed on any failure."""
  created = [parent for parent in reversed(out.absolute().parents) if not parent.exists()]
  try:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    os.chmod(tmp, 0o777 & ~fileio.umask())   # mkdtemp's 0700 would hide the run from the group
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


def write_config(directory: str | os.PathLike, config: dict[str, Any]) -> Path:
  """Writes ``config`` and, last, ``"versions": versions()`` to ``directory``/config.json."""
  path = Path(directory) / CONFIG
  fileio.write_json(path, {**config, "versions": versions()})
  return path


def read_config(run: str | os.PathLike, parse: Callable[[dict], Any] = lambda cfg: cfg) -> Any:
  """``parse(config.json)`` of run directory ``run``; InputError naming the file otherwise (a
  ValueError, KeyError or TypeError of ``parse`` reads as an unreadable config)."""
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

"""Atomic writes: a temporary file beside the target, fsynced, then renamed onto it (atomic on
POSIX), so a process killed at any moment leaves the previous file or the new one."""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

# check_writable's probe (rnn_jax.train.checkpoint); a directory holding only it is no one's run.
WRITE_PROBE = ".rnn_jax_write_probe"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
  """Yields a temporary path beside ``path`` to write (``fig.savefig(tmp)``); renamed onto
  ``path`` on success, removed on an exception (``path`` untouched)."""
  path = Path(path)
  fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
  os.close(fd)
  tmp = Path(tmp)
  try:
    yield tmp
    with open(tmp, "rb+") as f:
      os.fsync(f.fileno())
    os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes 0600; give the usual mode of a new file
    os.replace(tmp, path)
    _fsync_dir(path.parent)
  finally:
    if tmp.exists():
      tmp.unlink()


def umask() -> int:
  """The process's umask (read by setting it and back)."""
  mask = os.umask(0)
  os.umask(mask)
  return mask


def _fsync_dir(directory: Path) -> None:
  with contextlib.suppress(OSError):
    fd = os.open(directory, os.O_RDONLY)
    try:
      os.fsync(fd)
    finally:
      os.close(fd)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
  """Writes ``data`` to ``path`` atomically."""
  with atomic_path(path) as tmp:
    tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
  """Writes ``text`` (UTF-8) to ``path`` atomically."""
  write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> None:
  """Writes ``obj`` as indented JSON (NaN refused) to ``path`` atomically."""
  write_text(path, json.dumps(obj, indent=2, allow_nan=False) + "\n")


def append_line(path: str | os.PathLike, line: str) -> None:
  """Appends one line and fsyncs (for logs such as metrics.jsonl, read line by line)."""
  with open(path, "a", encoding="utf-8") as f:
    f.write(line.rstrip("\n") + "\n")
    f.flush()
    os.fsync(f.fileno())

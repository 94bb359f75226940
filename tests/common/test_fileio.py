"""Atomic writes: the old file or the new one, never half of one, and no stray temporaries."""
from __future__ import annotations

import json
import os

import pytest

from rnn_jax.common import fileio


def test_write_json_replaces_whole_file_with_usual_mode(tmp_path):
  path = tmp_path / "r.json"
  fileio.write_json(path, {"a": 1})
  fileio.write_json(path, {"b": [1, 2]})
  assert json.loads(path.read_text()) == {"b": [1, 2]}
  assert os.listdir(tmp_path) == ["r.json"]
  mask = os.umask(0)
  os.umask(mask)
  assert path.stat().st_mode & 0o777 == 0o666 & ~mask


def test_failure_inside_leaves_previous_file_and_no_temporary(tmp_path):
  path = tmp_path / "c.bin"
  fileio.write_bytes(path, b"old")
  with pytest.raises(RuntimeError):
    with fileio.atomic_path(path) as tmp:
      tmp.write_bytes(b"half")
      raise RuntimeError("killed")
  assert path.read_bytes() == b"old"
  assert os.listdir(tmp_path) == ["c.bin"]


def test_write_json_refuses_nan_before_touching_the_file(tmp_path):
  path = tmp_path / "r.json"
  fileio.write_json(path, {"a": 1})
  with pytest.raises(ValueError):
    fileio.write_json(path, {"a": float("nan")})
  assert json.loads(path.read_text()) == {"a": 1}


def test_append_line(tmp_path):
  path = tmp_path / "m.jsonl"
  fileio.append_line(path, '{"epoch": 1}')
  fileio.append_line(path, '{"epoch": 2}\n')
  assert path.read_text().splitlines() == ['{"epoch": 1}', '{"epoch": 2}']

"""Helpers shared by the letters tests: letter-recognition CSV rows and files in tmp_path."""
from __future__ import annotations

HEADER = "Letter," + ",".join(str(i) for i in range(1, 17)) + "\n"


def row(letter="A", values=range(16)):
  return letter + "," + ",".join(str(v) for v in values) + "\n"


def write(tmp_path, content, name="letters.csv"):
  path = tmp_path / name
  path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
  return path

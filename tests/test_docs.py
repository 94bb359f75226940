"""The words around the code stay true: every module, function and file that a docstring, a
comment, a doc or the README names exists, and nothing speaks of issue numbers."""
from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from conftest import REPO

SOURCES = sorted({*REPO.glob("rnn_jax/**/*.py"), *REPO.glob("experiments/*.py"),
                  *REPO.glob("tests/**/*.py"), *REPO.glob("docs/*.md"), REPO / "README.md"}
                 - {Path(__file__).resolve()})
DOTTED = re.compile(r"\brnn_jax(?:\.[A-Za-z_]\w*)+(?![\w/])")   # not a format name ("rnn_jax.x/2")
PATH = re.compile(r"(?<![\w/.])(?:rnn_jax|experiments|tests|docs)/[\w/.-]*\w")


def _resolves(name: str) -> bool:
  """``rnn_jax.a.b.c``: the longest importable module prefix, then attributes for the rest."""
  parts = name.split(".")
  for i in range(len(parts), 0, -1):
    try:
      obj = importlib.import_module(".".join(parts[:i]))
    except ImportError:
      continue
    for attr in parts[i:]:
      if not hasattr(obj, attr):
        return False
      obj = getattr(obj, attr)
    return True
  return False


def _names(pattern: re.Pattern) -> list[tuple[str, str]]:
  found = set()
  for path in SOURCES:
    for match in pattern.findall(path.read_text(encoding="utf-8")):
      found.add((match.rstrip("."), str(path.relative_to(REPO))))
  return sorted(found)


@pytest.mark.parametrize("name, where", _names(DOTTED))
def test_every_named_module_or_function_exists(name, where):
  assert _resolves(name), f"{where} names {name}, which does not exist"


@pytest.mark.parametrize("name, where", _names(PATH))
def test_every_named_file_exists(name, where):
  assert (REPO / name).exists(), f"{where} names {name}, which does not exist"


def test_nothing_speaks_of_issue_numbers():
  said = [f"{p.relative_to(REPO)}: {line.strip()}" for p in SOURCES
          for line in p.read_text(encoding="utf-8").splitlines()
          if re.search(r"\bissues? \d|\bissue's\b", line, re.IGNORECASE)]
  assert not said, "\n".join(said)

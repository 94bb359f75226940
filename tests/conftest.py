"""Shared fixtures: float64 on demand and the location of the shared data files."""
from __future__ import annotations

from pathlib import Path

import jax
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def x64():
  """Runs the test with float64 enabled, restoring the previous setting after it."""
  previous = jax.config.read("jax_enable_x64")
  jax.config.update("jax_enable_x64", True)
  try:
    yield
  finally:
    jax.config.update("jax_enable_x64", previous)


def shared_file(name: str) -> Path:
  """A file in ../shared/data beside the repository, or a skip saying where it should be."""
  path = SHARED_DATA / name
  if not path.is_file():
    pytest.skip(f"{name} not found at {path}: the shared data set is not beside this checkout "
                "(see README, 'Data')")
  return path


@pytest.fixture
def gym_csv() -> Path:
  return shared_file("campus_gym.csv")


@pytest.fixture
def letters_csv() -> Path:
  return shared_file("letter_recognition.csv")

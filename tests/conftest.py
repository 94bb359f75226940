"""Shared fixtures: float64 on demand, the experiment scripts as modules, the location of the
shared data files, and a tiny run with quantile outputs."""
from __future__ import annotations

import importlib.util
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


def load_script(name: str):
  """``experiments/<name>`` imported as a module (its ``main``/``run``/``parse`` to call)."""
  spec = importlib.util.spec_from_file_location(f"script_{Path(name).stem}",
                                                REPO / "experiments" / name)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def unfinished_copy(run: Path, tmp_path: Path) -> Path:
  """``tmp_path/partial``: ``run``'s config.json and checkpoint.msgpack only, as a run that was
  stopped before it wrote results.json."""
  partial = tmp_path / "partial"
  partial.mkdir()
  for name in ("config.json", "checkpoint.msgpack"):
    (partial / name).write_bytes((run / name).read_bytes())
  return partial


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


ROBUSTNESS_DOC = REPO / "docs" / "robustness.md"
ROBUSTNESS_STALE = "docs/robustness.md is stale: run `python tests/robustness/write_doc.py`"


@pytest.fixture(scope="module")
def doc_lines():
  """The lines of docs/robustness.md, which the robustness tests keep true."""
  assert ROBUSTNESS_DOC.is_file(), ROBUSTNESS_STALE
  return ROBUSTNESS_DOC.read_text(encoding="utf-8").splitlines()


@pytest.fixture(scope="session")
def pinball_run(tmp_path_factory):
  """``(out, result)`` of a tiny occupancy run with quantile outputs (``--loss pinball``) on the
  synthetic gym: two models, three horizons, nine outputs; plots skipped (the test-week band is
  checked through ``occupancy._plots`` itself). Shared by tests/forecasting."""
  from rnn_jax.data import WindowSpec                 # imported only where the run is used
  from rnn_jax.forecasting import occupancy
  from rnn_jax.train import TrainConfig
  cfg = TrainConfig(hidden_size=8, epochs=2, patience=0, batch_size=256, seeds=2, loss="pinball")
  out = tmp_path_factory.mktemp("runs") / "pinball"
  result = occupancy.run(occupancy.DataSource(), WindowSpec(), cfg, out, progress=False,
                         make_plots=False, log=lambda *a: None)
  return out, result

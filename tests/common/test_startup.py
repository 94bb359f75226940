"""``--help`` and a misspelled flag answer before the heavy libraries load: each script reads
its flags first and imports the run's modules (scikit-learn, matplotlib, JAX) only after them.

Measured on a shared 2-core CPU, wall clock of ``python experiments/<script> --help``:
train_occupancy.py 4.5 s when everything loaded first, 0.4 s now; forecast.py 3.6 s -> 0.07 s;
train_letters.py 1.7 s -> 0.6 s."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO

CHECK = """
import json, runpy, sys
sys.argv = [{script!r}, *{args!r}]
try:
  runpy.run_path({path!r}, run_name="__main__")
except SystemExit as exit:
  code = exit.code
print(json.dumps({{"code": code, "loaded": sorted(
    m for m in ("jax", "sklearn", "matplotlib", "statsforecast") if m in sys.modules)}}))
"""


def _jax_free(module: str) -> bool:
  code = f"import sys, {module}; sys.exit('jax' in sys.modules)"
  return subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


def loaded_by(script: str, *args: str) -> dict:
  code = CHECK.format(script=script, args=list(args), path=str(REPO / "experiments" / script))
  done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                        timeout=120)
  assert done.returncode == 0, done.stderr[-2000:]
  return json.loads(done.stdout.splitlines()[-1])


SCRIPTS = ("train_occupancy.py", "forecast.py", "train_letters.py")


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize("args", [("--help",), ("--no-such-flag",)])
def test_help_and_bad_flags_load_no_heavy_library(script, args):
  result = loaded_by(script, *args)
  assert result["code"] == (0 if args == ("--help",) else 2)
  assert not {"jax", "sklearn", "matplotlib", "statsforecast"} & set(result["loaded"]), result


def test_import_rnn_jax_and_its_settings_load_no_jax():
  assert _jax_free("rnn_jax") and _jax_free("rnn_jax.settings")


def test_the_settings_name_the_gradients_core_offers():
  from rnn_jax import letters, settings
  from rnn_jax.core import gradients, model
  assert settings.GRADS == gradients.METHODS and letters.LettersConfig is settings.LettersConfig
  assert settings.INIT_SCHEMES == model.INIT_SCHEMES

"""A non-editable install (``pip install .``) carries every subpackage: built as a wheel, installed
into a fresh directory and imported from outside the checkout."""
from __future__ import annotations

import os
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import rnn_jax
from conftest import REPO

SUBPACKAGES = sorted(m.name for m in pkgutil.walk_packages(rnn_jax.__path__, "rnn_jax.")
                     if m.ispkg)


def test_the_checkout_has_the_subpackages_this_test_expects():
  assert {"rnn_jax.core", "rnn_jax.common", "rnn_jax.data", "rnn_jax.train",
          "rnn_jax.evaluation", "rnn_jax.bench",
          "rnn_jax.forecasting"} <= set(SUBPACKAGES)


@pytest.mark.slow
def test_pip_install_dot_imports_every_subpackage(tmp_path):
  wheels, target, src = tmp_path / "wheels", tmp_path / "site", tmp_path / "src"
  # A clean copy of the sources: a build/ folder left in the checkout would hide a missing
  # subpackage (setuptools reuses it).
  shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
      ".git", ".venv", ".ci-venv", "build", "dist", "*.egg-info", "runs", "__pycache__", ".gl",
      ".whl"))
  build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                          str(wheels), str(src)], capture_output=True, text=True)
  assert build.returncode == 0, build.stderr[-2000:]
  wheel, = wheels.glob("rnn_jax-*.whl")
  install = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                            "--target", str(target), str(wheel)], capture_output=True, text=True)
  assert install.returncode == 0, install.stderr[-2000:]
  code = ("import importlib, rnn_jax; "
          f"mods = [importlib.import_module(m) for m in {SUBPACKAGES!r}]; "
          "print(*sorted({m.__file__.rsplit('/rnn_jax/', 1)[0] for m in [rnn_jax, *mods]})); "
          "print(len(mods)); "
          "import rnn_jax.bptt; from rnn_jax import bptt, mlp, RNNParams, init_params")
  env = {**os.environ, "PYTHONPATH": str(target)}
  done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                        cwd=tmp_path, env=env)
  assert done.returncode == 0, done.stderr[-2000:]
  *roots, count = done.stdout.split()
  # every subpackage came from the installed wheel, none from the checkout's editable install
  assert [Path(r) for r in roots] == [target] and int(count) == len(SUBPACKAGES), done.stdout

"""A non-editable install works: built as a wheel, installed into a fresh virtual environment,
it carries every subpackage, and every script in experiments/ runs on it from a directory that
is not the checkout."""
from __future__ import annotations

import os
import pkgutil
import shutil
import subprocess
import sys
import sysconfig
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


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
  """The package built as a wheel from a clean copy of the sources and installed (not
  editable) into a fresh virtual environment outside the checkout.

  The environment is made with ``--system-site-packages`` by the interpreter running the tests;
  when that is itself a virtual environment, a .pth file adds its site-packages too, so JAX and
  the rest need no download. A path in a .pth file is appended to sys.path without running the
  .pth files inside it, so the checkout's editable install (an import hook started by such a
  file) stays out: rnn_jax comes from the wheel.
  """
  tmp = tmp_path_factory.mktemp("install")
  wheels, src, venv = tmp / "wheels", tmp / "src", tmp / "venv"
  # A clean copy of the sources: a build/ folder left in the checkout would hide a missing
  # subpackage (setuptools reuses it).
  shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
      ".git", ".venv", ".ci-venv", "build", "dist", "*.egg-info", "runs", "__pycache__", ".gl",
      ".whl"))
  build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                          str(wheels), str(src)], capture_output=True, text=True)
  assert build.returncode == 0, build.stderr[-2000:]
  wheel, = wheels.glob("rnn_jax-*.whl")
  subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip",
                  str(venv)], check=True)
  python = venv / "bin" / "python"
  site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        capture_output=True, text=True, check=True).stdout.strip()
  parent = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
  Path(site, "test_parent_env.pth").write_text("\n".join(sorted(parent)) + "\n")
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  env["JAX_PLATFORMS"] = "cpu"
  install = subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                            str(wheel)], capture_output=True, text=True, env=env)
  assert install.returncode == 0, install.stderr[-2000:]
  shutil.rmtree(src / "rnn_jax")   # the scripts below can only find the installed package
  work = tmp / "elsewhere"
  work.mkdir()
  return {"python": python, "site": Path(site), "experiments": src / "experiments",
          "env": env, "cwd": work}


def run_installed(installed, *args, timeout=600):
  return subprocess.run([installed["python"], *map(str, args)], capture_output=True, text=True,
                        cwd=installed["cwd"], env=installed["env"], timeout=timeout)


@pytest.mark.slow
def test_pip_install_dot_imports_every_subpackage(installed):
  code = ("import importlib, rnn_jax; "
          f"mods = [importlib.import_module(m) for m in {SUBPACKAGES!r}]; "
          "print(*sorted({m.__file__.rsplit('/rnn_jax/', 1)[0] for m in [rnn_jax, *mods]})); "
          "print(len(mods)); "
          "import rnn_jax.bptt; from rnn_jax import bptt, mlp, RNNParams, init_params")
  done = run_installed(installed, "-c", code)
  assert done.returncode == 0, done.stderr[-2000:]
  *roots, count = done.stdout.split()
  # every subpackage came from the installed wheel, none from the checkout's editable install
  assert [Path(r) for r in roots] == [installed["site"]] and int(count) == len(SUBPACKAGES), \
      done.stdout


@pytest.mark.slow
def test_every_script_runs_from_another_directory_on_the_installed_package(installed):
  """--help of every script in experiments/, and a tiny real run of the occupancy training,
  its forecast and the letters training, from a directory that is not the checkout."""
  scripts = sorted(p.name for p in (REPO / "experiments").glob("*.py"))
  assert {"train_occupancy.py", "forecast.py", "train_letters.py", "gradcheck.py",
          "benchmark.py"} <= set(scripts)
  for name in scripts:
    done = run_installed(installed, installed["experiments"] / name, "--help", timeout=120)
    assert done.returncode == 0 and "usage:" in done.stdout, (name, done.stderr[-2000:])
  trained = run_installed(installed, installed["experiments"] / "train_occupancy.py",
                          "--epochs", "1", "--seeds", "1", "--window", "4", "--hidden-size", "4",
                          "--no-progress", "--out", "occupancy")
  assert trained.returncode == 0, trained.stderr[-2000:]
  out = installed["cwd"] / "occupancy"
  assert "run saved in occupancy" in trained.stdout and (out / "results.json").is_file()
  assert (out / "learning_curves.png").is_file()
  forecast = run_installed(installed, installed["experiments"] / "forecast.py", "--run", out)
  assert forecast.returncode == 0, forecast.stderr[-2000:]
  assert forecast.stdout.startswith("newest complete window ends ")
  letters = run_installed(installed, installed["experiments"] / "train_letters.py",
                          "--epochs", "1", "--hidden-size", "4", "--no-progress", "--out",
                          "letters")
  assert letters.returncode == 0, letters.stderr[-2000:]
  assert letters.stdout.startswith("test accuracy ")
  assert (installed["cwd"] / "letters" / "results.json").is_file()

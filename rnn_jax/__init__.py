"""rnn_jax: the derivation notes' recurrent network in JAX, with a hand BPTT verified to the
last digit against autodiff.

The package is layered; each layer imports only the ones above it in this list:

    core/          the notes' math: the cell and its scan, the hand BPTT, the letters MLP
    testing.py     gradient-check helpers: errors, per-step errors, tolerances, random problems
    common/        errors, argument checks, atomic files, run directories, flags, plots
    data/          CSV reading, timestamp repair, grids, windows, splits, synthetic default
    train/         the training loop (optax), checkpoints, data-parallel sharding
    evaluation/    baselines, metrics, conformal intervals
    settings.py    the runs' settings (flags), free of JAX, scikit-learn and matplotlib
    forecasting/   the occupancy run behind experiments/train_occupancy.py, and its forecasts
    letters.py     the letters run behind experiments/train_letters.py
    bench/         throughput, compile time, ceilings, peers (experiments/benchmark.py)

Importing ``rnn_jax`` loads nothing heavy: the names below come from rnn_jax.core (and so
JAX) on first use (PEP 562 ``__getattr__``), so the scripts and their ``--help`` answer before
JAX loads.
"""
import importlib as _importlib
import importlib.abc as _abc
import importlib.util as _util
import sys as _sys

_CORE = {"RNNParams": "model", "ShapeError": "model", "cell": "model", "forward": "model",
         "hidden_states": "model", "init_params": "model", "loss": "model", "predict": "model",
         "loss_fn": "gradients", "value_and_grad": "gradients", "bptt": None, "mlp": None}


def __getattr__(name):
  if name not in _CORE:
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
  module = _CORE[name]
  value = _importlib.import_module(f"rnn_jax.core.{module or name}")
  value = value if module is None else getattr(value, name)
  globals()[name] = value
  return value


def __dir__():
  return sorted(set(globals()) | set(_CORE))


class _Alias(_abc.MetaPathFinder, _abc.Loader):
  """``import rnn_jax.bptt`` and ``import rnn_jax.mlp`` keep working (the flat layout's names):
  they are rnn_jax.core.bptt and rnn_jax.core.mlp."""

  def find_spec(self, name, path=None, target=None):
    if name in (f"{__name__}.bptt", f"{__name__}.mlp"):
      return _util.spec_from_loader(name, self)
    return None

  def create_module(self, spec):
    module = _importlib.import_module("rnn_jax.core." + spec.name.rsplit(".", 1)[1])
    self.real_spec = module.__spec__
    return module

  def exec_module(self, module):
    module.__spec__ = self.real_spec   # the import system stamped the alias's spec on it


if not any(isinstance(f, _Alias) for f in _sys.meta_path):
  _sys.meta_path.append(_Alias())

__all__ = sorted(_CORE)
__version__ = "0.1.0"

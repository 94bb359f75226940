"""rnn_jax: the derivation notes' recurrent network in JAX, with a hand BPTT verified to the
last digit against autodiff. Each layer imports only the ones above it:

    core/          the notes' math: the cell and its scan, the hand BPTT, the letters MLP, the
                   matmul precision a run asks for
    testing.py     gradient-check helpers: errors, per-step errors, tolerances, random problems
    common/        errors, argument checks, atomic files, run directories, flags, plots
    data/          CSV reading, timestamp repair, grids, windows, splits, synthetic default
    train/         the training loop (optax), checkpoints, data-parallel sharding
    evaluation/    baselines, metrics, conformal intervals
    settings.py    the runs' settings (flags), free of JAX, scikit-learn and matplotlib
    forecasting/   the occupancy run behind experiments/train_occupancy.py, and its forecasts
    letters.py     the letters run behind experiments/train_letters.py
    bench/         throughput, compile time, ceilings, peers (experiments/benchmark.py)

The names below load rnn_jax.core (and so JAX) on first use (PEP 562 ``__getattr__``), so
``import rnn_jax`` is light and the scripts' ``--help`` answers before JAX loads.
"""
import importlib as _importlib

_CORE = {"RNNParams": "model", "ShapeError": "model", "cell": "model", "forward": "model",
         "hidden_states": "model", "init_params": "model", "loss": "model", "predict": "model",
         "loss_fn": "gradients", "value_and_grad": "gradients", "bptt": None, "mlp": None}


def __getattr__(name):
  if name not in _CORE:
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
  module = _importlib.import_module(f"rnn_jax.core.{_CORE[name] or name}")
  globals()[name] = value = getattr(module, name) if _CORE[name] else module
  return value


def __dir__():
  return sorted(set(globals()) | set(_CORE))


__all__ = sorted(_CORE)
__version__ = "0.1.0"

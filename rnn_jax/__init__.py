"""rnn_jax: the derivation notes' recurrent network in JAX, with a hand BPTT verified to the
last digit against autodiff.

The package is layered; each layer imports only the ones above it in this list:

    core/          the notes' math: the cell and its scan, the hand BPTT, the letters MLP
    testing.py     gradient-check helpers: errors, per-step errors, tolerances, random problems
    common/        errors, argument checks, atomic files, run directories, flags, plots
    data/          CSV reading, timestamp repair, grids, windows, splits, synthetic default
    train/         the training loop (optax), checkpoints, data-parallel sharding
    evaluation/    baselines, metrics, conformal intervals
    forecasting/   the occupancy run behind experiments/train_occupancy.py, and its forecasts
    letters.py     the letters run behind experiments/train_letters.py
    bench/         throughput, compile time, ceilings, peers (experiments/benchmark.py)
"""
import sys as _sys

from rnn_jax.core import bptt, mlp
from rnn_jax.core.gradients import loss_fn, value_and_grad
from rnn_jax.core.model import (RNNParams, ShapeError, cell, forward, hidden_states, init_params,
                                loss, predict)

# ``import rnn_jax.bptt`` and ``import rnn_jax.mlp`` keep working (public names of the flat layout).
_sys.modules[__name__ + ".bptt"] = bptt
_sys.modules[__name__ + ".mlp"] = mlp

__all__ = ["RNNParams", "ShapeError", "bptt", "cell", "forward", "hidden_states",
           "init_params", "loss", "loss_fn", "mlp", "predict", "value_and_grad"]
__version__ = "0.1.0"

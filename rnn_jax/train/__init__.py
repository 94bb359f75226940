"""Training: optax steps, fused epochs, the host loop, checkpoints, data parallelism.

Modules, from the inside out:

* ``config``: TrainConfig (every setting, one flag each), its checks, make_optimizer.
* ``step``: the pure train step, the fused epoch (one ``lax.scan``), the data order, init_models.
* ``state``: the state between epochs and early stopping as pure functions, the best-so-far commit.
* ``programs``: the compiled functions of a run, cached per shape.
* ``inputs``: the training arrays checked and fingerprinted, the batch against the devices.
* ``snapshot``: the checkpoint record of a run and the checks of ``--resume``.
* ``results``: FitResult, ManyFitResult and their message.
* ``loop``: fit and fit_many, the host loop (progress bar, metrics.jsonl, checkpoints, faults).
* ``checkpoint``: the checkpoint file (msgpack, atomic); ``parallel``: data parallelism.
"""
from rnn_jax.train.config import OPTIMIZERS, TrainConfig, make_optimizer
from rnn_jax.train.inputs import check_inputs
from rnn_jax.train.loop import METRICS, fit, fit_many
from rnn_jax.train.results import CURES, STOPPED, FitResult, ManyFitResult
from rnn_jax.train.step import (all_finite, effective_batch_size, init_models, make_epoch_fn,
                                make_train_step, model_keys, permutation)

__all__ = ["CURES", "METRICS", "OPTIMIZERS", "STOPPED", "FitResult", "ManyFitResult",
           "TrainConfig", "all_finite", "check_inputs", "effective_batch_size", "fit", "fit_many",
           "init_models", "make_epoch_fn", "make_optimizer", "make_train_step", "model_keys", "permutation"]

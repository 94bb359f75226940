"""Training: the loop (``loop``: the step, the fused epoch, fit and fit_many), the checkpoint file
(``checkpoint``), data parallelism (``parallel``)."""
from rnn_jax.settings import OPTIMIZERS, TrainConfig
from rnn_jax.train.loop import (CURES, METRICS, STOPPED, FitResult, ManyFitResult, all_finite,
                                check_inputs, effective_batch_size, fit, fit_many, init_models,
                                make_epoch_fn, make_optimizer, make_train_step, model_keys,
                                permutation)

__all__ = ["CURES", "METRICS", "OPTIMIZERS", "STOPPED", "FitResult", "ManyFitResult",
           "TrainConfig", "all_finite", "check_inputs", "effective_batch_size", "fit", "fit_many",
           "init_models", "make_epoch_fn", "make_optimizer", "make_train_step", "model_keys",
           "permutation"]

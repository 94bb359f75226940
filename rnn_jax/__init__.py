"""rnn_jax: the derivation notes' recurrent network in JAX, with a hand BPTT verified to the
last digit against autodiff."""
from rnn_jax import bptt, mlp
from rnn_jax.gradients import loss_and_grad, loss_fn
from rnn_jax.model import (RNNParams, ShapeError, cell, forward, hidden_states, init_params,
                           loss, predict)

__all__ = ["RNNParams", "ShapeError", "bptt", "cell", "forward", "hidden_states",
           "init_params", "loss", "loss_and_grad", "loss_fn", "mlp", "predict"]
__version__ = "0.1.0"

"""``import rnn_jax.mlp`` (the flat layout's name) is rnn_jax.core.mlp."""
import sys

from rnn_jax.core import mlp

sys.modules[__name__] = mlp

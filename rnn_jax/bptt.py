"""``import rnn_jax.bptt`` (the flat layout's name) is rnn_jax.core.bptt."""
import sys

from rnn_jax.core import bptt

sys.modules[__name__] = bptt

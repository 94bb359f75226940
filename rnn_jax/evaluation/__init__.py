"""Baselines, metrics and the results report."""
from rnn_jax.evaluation.baselines import *  # noqa: F401,F403

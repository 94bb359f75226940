"""Benchmarking: throughput, compile time, ceilings, peers."""
from rnn_jax.bench.suite import *  # noqa: F401,F403

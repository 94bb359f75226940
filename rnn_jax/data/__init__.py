"""Occupancy data: CSV reading, timestamp repair, the regular grid, windows, splits."""
from rnn_jax.data.readings import *  # noqa: F401,F403

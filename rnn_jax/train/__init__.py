"""Training: optax steps, fused epochs, the host loop, checkpoints, data parallelism."""
from rnn_jax.train.loop import *  # noqa: F401,F403

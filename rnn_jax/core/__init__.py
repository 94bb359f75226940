"""The notes' math: nothing here imports from the rest of rnn_jax."""

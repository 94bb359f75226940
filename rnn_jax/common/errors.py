"""The one error type for bad input from a user; scripts turn it into exit status 2 and its one
line on stderr, no traceback (rnn_jax.common.cli.entry_point)."""
from __future__ import annotations


class InputError(ValueError):
  """Bad input from the user. ``str(err)`` is one line naming the file, row or argument."""

  def __init__(self, message: str):
    super().__init__(" ".join(str(message).split()))

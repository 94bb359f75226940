"""What every script in experiments/ shares: exit status 2 and one line for bad input."""
from __future__ import annotations

import argparse
import sys
from typing import Callable

from rnn_jax.errors import InputError


class ArgumentParser(argparse.ArgumentParser):
  """argparse, but a bad argument raises InputError (one line, exit 2) instead of usage + exit."""

  def error(self, message: str):
    raise InputError(f"{self.prog}: {message} (see --help)")


def main(run: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> int:
  """Runs ``run(argv)``; an InputError becomes ``error: <message>`` on stderr and exit 2."""
  try:
    return int(run(argv) or 0)
  except InputError as err:
    print(f"error: {err}", file=sys.stderr)
    return 2

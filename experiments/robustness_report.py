"""Writes docs/robustness.md: every bad input and fault of rnn_jax.verify, run now.

    python experiments/robustness_report.py              # about 2 minutes on 2 idle cores
    python experiments/robustness_report.py --out FILE

The table is generated from the tests' own cases by running them: each bad input is run
in-process through its script's entry point (rnn_jax.cli.main, as the command line runs it) in
a fresh directory, and its row shows the exit status and the line the user sees on stderr;
each fault (a SIGKILL of a real training process, a Ctrl-C, a diverging loss, an unwritable
--out, damaged checkpoints, numerically extreme inputs) is run and its row shows what happened.
tests/verify/test_robustness.py and tests/verify/test_faults.py run the same cases and fail
when a row of docs/robustness.md no longer says what its case gives, so the doc stays true:
after changing a message, run this script again. Exit status 0 when every case keeps its contract, 1 when
some do not (their rows say FAILS, and the doc is still written).
"""
from __future__ import annotations

import sys
from pathlib import Path

from rnn_jax.common import cli
from rnn_jax.verify import report


@cli.entry_point
def main(argv: list[str] | None = None) -> int:
  parser = cli.ArgumentParser(prog="robustness_report.py", description=__doc__.split("\n")[0])
  parser.add_argument("--out", type=Path, default=report.DOC,
                      help="where to write (default: %(default)s)")
  args = parser.parse_args(argv)
  return report.write(args.out)


if __name__ == "__main__":
  sys.exit(main())

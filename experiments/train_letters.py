"""The derivation notes' base case: a 200-unit tanh network learns letters by plain SGD.

    python experiments/train_letters.py --csv ../shared/data/letter_recognition.csv
    python experiments/train_letters.py                  # built-in default: sklearn's digits
    python experiments/train_letters.py --grad autodiff  # jax.value_and_grad, not the notes

Writes config.json, metrics.jsonl (one line per epoch), results.json, params.npz,
learning_curve.png and accuracy.png to --out (default runs/letters) and prints the test
accuracy. The run is assembled in a hidden directory beside --out and renamed into place when
complete, so --out is never half-written; an existing run is replaced only with --overwrite.
Bad input: one line on stderr, exit status 2, nothing written. The work is done by
rnn_jax.letters.run; its settings are rnn_jax.settings.LettersConfig.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rnn_jax.common import cli
from rnn_jax.settings import LettersConfig

DEFAULT_OUT = Path("runs") / "letters"


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, LettersConfig]:
  """Flags: --csv, the fields of rnn_jax.settings.LettersConfig, --out, --overwrite."""
  parser = cli.ArgumentParser(
      prog="train_letters.py",
      description="Train the derivation notes' one-hidden-layer tanh network (sigmoid outputs, "
                  "binary cross-entropy) by plain SGD with the notes' hand gradients, and report "
                  "its test accuracy.")
  parser.add_argument("--csv", type=Path, default=None, metavar="FILE",
                      help="UCI letter-recognition CSV (a capital letter and 16 numbers per "
                           "line, header optional), e.g. ../shared/data/letter_recognition.csv "
                           "(default: scikit-learn's bundled handwritten digits, 1797 8x8 "
                           "images in 10 classes: real data that needs no download)")
  cli.add_config_flags(parser.add_argument_group("training (rnn_jax.settings.LettersConfig)"),
                       LettersConfig)
  parser.add_argument("--out", type=Path, default=DEFAULT_OUT, metavar="DIR",
                      help="run directory to create (default: %(default)s)")
  parser.add_argument("--overwrite", action="store_true",
                      help="replace an existing run directory (one holding config.json)")
  parser.add_argument("--no-progress", action="store_true", help="no progress bar")
  args = parser.parse_args(argv)
  return args, cli.config_from_args(LettersConfig, args).validate()


@cli.entry_point
def main(argv: list[str] | None = None) -> int:
  args, cfg = parse(argv)
  from rnn_jax import letters   # here: --help and bad flags answer before JAX loads
  try:
    letters.run(cfg, args.out, csv=args.csv, overwrite=args.overwrite,
                progress=not args.no_progress)
  except KeyboardInterrupt:
    print("interrupted: nothing written (the run directory is created only when complete)",
          file=sys.stderr)
    return 130
  return 0


if __name__ == "__main__":
  sys.exit(main())

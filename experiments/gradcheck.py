"""Checks the hand-written gradients of both networks against autodiff and finite differences.

    python experiments/gradcheck.py [--window 24] [--hidden-size 200] [--batch-size 32]

Prints, for float32 and float64, the notes' RNN (rnn_jax.bptt) and letters MLP (rnn_jax.mlp),
each parameter's largest absolute and relative error against ``jax.grad`` and against float64
central differences at a point guarded from ReLU's kink (rnn_jax.verify.gradcheck), with the
tolerance of each. Exit status 0 when every error is within its tolerance, 1 when any is not,
2 for a bad argument.
"""
from __future__ import annotations

import argparse
import sys
import time

import jax

from rnn_jax.common import cli
from rnn_jax.verify import gradcheck
from rnn_jax.common.errors import InputError


def _int_at_least(text: str, low: int, what: str) -> int:
  try:
    value = int(text)
  except ValueError:
    value = None
  if value is None or value < low:   # argparse words this as "argument --X: <message>"
    raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
  return value


def positive_int(text: str) -> int:
  return _int_at_least(text, 1, "a positive integer")


def seed_int(text: str) -> int:
  return _int_at_least(text, 0, "a non-negative integer")


def parse(argv):
  p = cli.ArgumentParser(prog="gradcheck.py", description=__doc__.split("\n\n")[0])
  size = lambda flag, default, what: p.add_argument(
      flag, type=positive_int, default=default, help=f"{what} (default {default})")
  size("--window", 24, "RNN window length T")
  size("--hidden-size", 200, "hidden units H, both nets")
  size("--input-size", 1, "RNN inputs per step D")
  size("--output-size", 3, "RNN outputs K")
  size("--batch-size", 32, "batch size B, both nets")
  p.add_argument("--seed", type=seed_int, default=0, help="random seed, >= 0 (default 0)")
  p.add_argument("--scheme", choices=("normal", "irnn"), default="normal",
                 help="RNN initialisation (default normal)")
  return p.parse_args(argv)


@cli.entry_point
def main(argv=None) -> int:
  args = parse(argv)
  jax.config.update("jax_enable_x64", True)   # float64 rows and the float64 witnesses
  start = time.perf_counter()
  reports = []
  T, H, D, K, B = (args.window, args.hidden_size, args.input_size, args.output_size,
                   args.batch_size)
  for dtype in gradcheck.DTYPES:
    try:
      reports.append(gradcheck.check_rnn(dtype, T=T, H=H, D=D, K=K, B=B, seed=args.seed,
                                         scheme=args.scheme))
    except gradcheck.NoGuardedPoint as err:
      raise InputError(f"{err}; try a smaller --window, --batch-size or --hidden-size") from None
    reports.append(gradcheck.check_mlp(dtype, H=H, B=B, seed=args.seed))
  print(f"RNN T={T} H={H} D={D} K={K} B={B} scheme={args.scheme}; "
        f"MLP d=16 H={H} K=26 B={B}; seed {args.seed}; "
        "finite differences: float64, central, along unit directions")
  for r in reports:
    if r.guard is not None:
      print(f"kink guard ({r.network} {r.dtype}): accepted draw {r.tries}, eps = {r.eps:.2g}, "
            f"min |A| = {r.guard.min_abs_A:.2e}, min |A|/(eps|dA|) = {r.guard.worst_ratio:.1f} "
            f"> {gradcheck.GUARD_SAFETY:g}")
  print(gradcheck.format_table(reports))
  worst = {d: max(row.rel_autodiff for r in reports if r.dtype == d for row in r.rows)
           for d in gradcheck.DTYPES}
  worst_fd = {d: max(row.rel_fd for r in reports if r.dtype == d for row in r.rows)
              for d in gradcheck.DTYPES}
  for d in gradcheck.DTYPES:
    print(f"largest {d} relative error: {worst[d]:.2e} vs autodiff, {worst_fd[d]:.2e} vs "
          "finite differences")
  ok = all(r.ok for r in reports)
  print(f"{'all within tolerance' if ok else 'FAILED: some error is past its tolerance'} "
        f"({time.perf_counter() - start:.1f} s)")
  return 0 if ok else 1


if __name__ == "__main__":
  sys.exit(main())

"""Training and inference throughput of the notes' RNN against the machine's matmul peak and its
peers (flax nn.RNN, PyTorch nn.RNN); the work is done by rnn_jax.bench.

    python experiments/benchmark.py                                   # every variant, B=1..4096
    python experiments/benchmark.py --batch-sizes 32,256 --variants autodiff,torch --seconds 1
    python experiments/benchmark.py --json bench.json --plot bench.png --remat-memory
    XLA_FLAGS=--xla_force_host_platform_device_count=4 python experiments/benchmark.py \\
        --devices-sweep --variants autodiff --batch-sizes 256

Prints the device and package versions first, a compile line and a result line per cell, and
a summary table; --json and --plot are written atomically at the end. See docs/benchmarking.md.
Bad arguments: one line on stderr, exit status 2, nothing written.
"""
from __future__ import annotations

import sys

from rnn_jax import bench
from rnn_jax.common import cli


def parser() -> cli.ArgumentParser:
  p = cli.ArgumentParser(prog="benchmark.py", description=__doc__.split("\n\n")[0])
  bench.add_arguments(p)
  return p


def run(argv: list[str] | None = None) -> int:
  args = parser().parse_args(argv)
  cfg = bench.config_from_args(args)
  bench.run(cfg, json_path=args.json, plot_path=args.plot)
  return 0


if __name__ == "__main__":
  sys.exit(cli.main(run))

"""Training and inference throughput of the notes' RNN against the machine's matmul peak and its
peers (flax nn.RNN, PyTorch nn.RNN); the work is done by rnn_jax.bench.

    python experiments/benchmark.py                                   # every variant, B=1..4096
    python experiments/benchmark.py --batch-sizes 32,256 --variants autodiff,torch --seconds 1
    python experiments/benchmark.py --json bench.json --plot bench.png --remat-memory
    python experiments/benchmark.py --json bench.json --markdown bench.md   # README tables
    python experiments/benchmark.py --from-json bench.json --markdown bench.md  # no timing
    XLA_FLAGS=--xla_force_host_platform_device_count=4 python experiments/benchmark.py \\
        --devices-sweep --variants autodiff --batch-sizes 256

Prints the device and package versions first, a compile line and a result line per cell, then
a summary table; --json, --plot and --markdown are written atomically at the end. See
docs/benchmarking.md.
Bad arguments: one line on stderr, exit status 2, nothing written.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from rnn_jax import bench
from rnn_jax.common import cli, fileio
from rnn_jax.common.errors import InputError


def parser() -> cli.ArgumentParser:
  p = cli.ArgumentParser(prog="benchmark.py", description=__doc__.split("\n\n")[0])
  cli.add_config_flags(p, bench.BenchConfig)
  p.add_argument("--json", metavar="FILE", help="write every record as JSON here")
  p.add_argument("--plot", metavar="FILE", help="write a PNG of throughput against B here")
  p.add_argument("--markdown", metavar="FILE",
                 help="write the README tables (samples/s and %% of dense per variant and B) "
                      "here")
  p.add_argument("--from-json", metavar="FILE",
                 help="time nothing: write --markdown from this earlier run's --json file")
  return p


@cli.entry_point
def main(argv: list[str] | None = None) -> int:
  args = parser().parse_args(argv)
  if args.from_json is not None:
    return _from_json(args)
  cfg = cli.config_from_args(bench.BenchConfig, args)
  bench.run(cfg, json_path=args.json, plot_path=args.plot, markdown_path=args.markdown)
  return 0


def _from_json(args) -> int:
  """--from-json: the markdown tables of a saved run, timing nothing."""
  path = bench.check_output_path("--markdown", args.markdown)
  if path is None:
    raise InputError("--from-json: needs --markdown FILE to write")
  try:
    result = json.loads(Path(args.from_json).read_text(encoding="utf-8"))
    result["records"]
  except (OSError, ValueError, KeyError, TypeError) as err:
    raise InputError(f"--from-json: cannot read a benchmark result from {args.from_json}: "
                     f"{err}") from None
  fileio.write_text(path, bench.markdown(result))
  print(f"wrote {path}", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())

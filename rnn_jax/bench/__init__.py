"""Benchmarking: throughput, compile time, ceilings, peers (``experiments/benchmark.py``).

Modules:

* ``config``     ``BenchConfig`` and its flags, the variant names, values derived from a config
* ``timing``     ``Workload``, its compile time, ``measure`` (warm-up, calibration, repetitions)
* ``ceilings``   FLOPs per window and what every cell is measured against: the matmul peak (the
                 dependent chain), the dense GEMM rate, the roofline of the two
* ``problems``   the data and parameters of a cell, on the device
* ``workloads``  the JAX workload of each variant (``build``)
* ``peers``      the flax and PyTorch peers
* ``report``     the device, records, result lines, ratios, the summary table and the README's
                 markdown tables (``markdown``, ``write_markdown``)
* ``targets``    issue 11's targets judged from one run's records (``verdicts``)
* ``plotting``   the PNG of throughput against batch size
* ``suite``      the run: every cell, the device sweep, remat memory, the verdicts, the JSON,
                 PNG and markdown
"""
from rnn_jax.bench.ceilings import (FLOP_FORMULAS, CeilingError, chain_peak, chain_workloads,
                                    check_below_dense, dense_peak, flop_split, flops_per_sample,
                                    roofline, square_peak)
from rnn_jax.bench.config import (MODELS, VARIANTS, BenchConfig, add_arguments,
                                  check_output_path, config_from_args, fused_steps,
                                  make_optimizer)
from rnn_jax.bench.peers import (TorchPeer, flax_module, flax_params, flax_step_fn,
                                 measure_torch, torch_available, torch_device, torch_threads,
                                 torch_workload)
from rnn_jax.bench.plotting import plot
from rnn_jax.bench.problems import fused_inputs, many_models, problem
from rnn_jax.bench.report import device_info, markdown, summary, write_markdown
from rnn_jax.bench.suite import devices_sweep, remat_memory, run, run_cells
from rnn_jax.bench.targets import TARGETS, TRAINING, verdict_line, verdicts
from rnn_jax.bench.timing import Workload, measure, measure_side_by_side
from rnn_jax.bench.workloads import build, epoch_fn, train_step_fn

__all__ = [
    "BenchConfig", "CeilingError", "FLOP_FORMULAS", "MODELS", "TARGETS", "TRAINING", "TorchPeer",
    "VARIANTS", "Workload", "add_arguments", "build", "chain_peak", "chain_workloads",
    "check_below_dense", "check_output_path", "config_from_args", "dense_peak", "device_info",
    "devices_sweep", "epoch_fn", "flax_module", "flax_params", "flax_step_fn", "flop_split",
    "flops_per_sample", "fused_inputs", "fused_steps", "make_optimizer", "many_models", "markdown",
    "measure", "measure_side_by_side", "measure_torch", "plot", "problem", "remat_memory",
    "roofline", "run", "run_cells", "square_peak", "summary", "torch_available", "torch_device",
    "torch_threads", "torch_workload", "train_step_fn", "verdict_line", "verdicts",
    "write_markdown",
]

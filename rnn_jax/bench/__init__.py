"""Benchmarking: throughput, compile time, ceilings, peers (``experiments/benchmark.py``).

``config`` (settings), ``timing`` (``measure``), ``ceilings`` (FLOPs, chain peak, dense rate,
roofline), ``workloads`` (the data, every variant, the flax and torch peers), ``results``
(records, printed lines, markdown tables, PNG), ``suite`` (the run).
"""
from rnn_jax.bench.ceilings import (CeilingError, check_below_dense, dense_peak, flop_split,
                                    flops_per_sample, roofline)
from rnn_jax.bench.config import MODELS, VARIANTS, BenchConfig, check_output_path, fused_steps
from rnn_jax.bench.results import cell_record, markdown, plot, summary, write_markdown
from rnn_jax.bench.suite import devices_sweep, remat_memory, run, run_cells
from rnn_jax.bench.timing import Workload, measure, measure_side_by_side
from rnn_jax.bench.workloads import (TorchPeer, build, flax_module, flax_params, fused_inputs,
                                     problem, torch_available, torch_device, torch_threads,
                                     torch_workload)

__all__ = [
    "BenchConfig", "CeilingError", "MODELS", "TorchPeer", "VARIANTS", "Workload", "build",
    "cell_record", "check_below_dense", "check_output_path", "dense_peak", "devices_sweep",
    "flax_module", "flax_params", "flop_split", "flops_per_sample", "fused_inputs", "fused_steps",
    "markdown", "measure", "measure_side_by_side", "plot", "problem", "remat_memory", "roofline",
    "run", "run_cells", "summary", "torch_available", "torch_device", "torch_threads",
    "torch_workload", "write_markdown",
]

"""Benchmarking: throughput, compile time, ceilings, peers (``experiments/benchmark.py``).

``config`` (settings, variant names), ``timing`` (``measure``), ``ceilings`` (FLOPs, chain peak,
dense rate, roofline), ``workloads`` (the data and each JAX variant, flax's included),
``torch_peer``, ``results`` (records, printed lines, markdown tables, PNG), ``suite`` (the run).
"""
from rnn_jax.bench.ceilings import (FLOP_FORMULAS, CeilingError, chain_peak, chain_workloads,
                                    check_below_dense, dense_peak, flop_split, flops_per_sample,
                                    roofline, square_peak)
from rnn_jax.bench.config import (MODELS, VARIANTS, BenchConfig, add_arguments,
                                  check_output_path, config_from_args, fused_steps,
                                  make_optimizer)
from rnn_jax.bench.results import cell_record, device_info, markdown, plot, summary, write_markdown
from rnn_jax.bench.suite import devices_sweep, remat_memory, run, run_cells
from rnn_jax.bench.timing import Workload, measure, measure_side_by_side
from rnn_jax.bench.torch_peer import (TorchPeer, measure_torch, torch_available, torch_device,
                                      torch_threads, torch_workload)
from rnn_jax.bench.workloads import (build, epoch_fn, flax_module, flax_params, flax_step_fn,
                                     fused_inputs, many_models, problem, train_step_fn)

__all__ = [
    "BenchConfig", "CeilingError", "FLOP_FORMULAS", "MODELS", "TorchPeer", "VARIANTS", "Workload",
    "add_arguments", "build", "cell_record", "chain_peak", "chain_workloads", "check_below_dense",
    "check_output_path", "config_from_args", "dense_peak", "device_info", "devices_sweep",
    "epoch_fn", "flax_module", "flax_params", "flax_step_fn", "flop_split", "flops_per_sample",
    "fused_inputs", "fused_steps", "make_optimizer", "many_models", "markdown", "measure",
    "measure_side_by_side", "measure_torch", "plot", "problem", "remat_memory", "roofline", "run",
    "run_cells", "square_peak", "summary", "torch_available", "torch_device", "torch_threads",
    "torch_workload", "train_step_fn", "write_markdown",
]

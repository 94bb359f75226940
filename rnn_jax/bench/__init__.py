"""Benchmarking for ``experiments/benchmark.py``: ``config``, ``timing`` (``measure``, FLOPs,
ceilings), ``workloads`` (every variant, the flax and torch peers), ``suite`` (run, outputs)."""
from rnn_jax.bench.config import MODELS, VARIANTS, BenchConfig, check_output_path, fused_steps
from rnn_jax.bench.suite import (cell_record, devices_sweep, markdown, plot, remat_memory, run,
                                 run_cells, summary)
from rnn_jax.bench.timing import (CeilingError, Workload, check_below_dense, dense_peak,
                                  flop_split, flops_per_sample, measure, measure_side_by_side,
                                  roofline)
from rnn_jax.bench.workloads import (TorchPeer, build, flax_module, flax_params, fused_inputs,
                                     problem, program, torch_available, torch_block,
                                     torch_device, torch_precision, torch_threads,
                                     torch_workload)

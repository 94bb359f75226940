"""Every program the library runs, lowered (not run) for CUDA and for TPU on this CPU: the forward
pass, the loss, the training step (autodiff, the hand BPTT's custom_vjp, rematerialised), the
fused epoch, what fit and fit_many run (``loop.train_epoch``, one model and a vmapped ensemble),
the data-parallel step and epoch over a 4-device mesh, and every JAX variant of the benchmark.

One table, program x platform: a failure's test id and message name both (lowering.lower). The
table's data-parallel programs use a ``jax.sharding.AbstractMesh``: 4 devices of no particular
kind, so the same sharded program lowers for a CUDA or a TPU mesh without either being here.
fit and fit_many over 4 devices (``parallel.data_mesh``, which needs real devices) are lowered
on 4 simulated CPU devices in one subprocess. Lowering checks every primitive against the
platform's lowering rules and the shardings against the mesh; it compiles nothing (lowering.py
says what that leaves out).

The check can fail: a Pallas kernel with Mosaic TPU compiler settings, planted inside the
forward pass, lowers for TPU and not for CUDA; a Triton one the other way round.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import subprocess
import sys
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import AbstractMesh, NamedSharding, PartitionSpec as P

from rnn_jax import bench, testing, train
from rnn_jax.core import model
from rnn_jax.train import loop, parallel

from conftest import REPO
from lowering import (PLATFORMS, LoweringError, abstract, dot_precisions, lower, trace,
                      unavailable)

T, B, H, D, K = 4, 4, 8, 1, 3
N = 2 * B                                          # windows of a fused epoch: 2 steps
DEVICES = 4                                        # the abstract mesh's size
CFG = train.TrainConfig(hidden_size=H, batch_size=B, devices=1)
BENCH = bench.BenchConfig(batch_sizes=(B,), windows=(T,), hidden_sizes=(H,), fuse_steps=2,
                          fuse_windows=N)


class Program(NamedTuple):
  fn: Callable
  args: tuple
  kwargs: dict = {}
  jit: dict = {}
  precision: str | None = "HIGHEST"   # what its products carry (None: the caller's, DEFAULT)


def _problem(n=B):
  return testing.rnn_problem(0, T=T, H=H, D=D, K=K, B=n, dtype=np.float32)


def _opt():
  return train.make_optimizer(CFG)


def _step(method, **kw):
  params, xs, ys = _problem()
  return Program(train.make_train_step(_opt(), method, precision=CFG.precision, **kw),
                 (params, _opt().init(params), xs, ys))


def _epoch(method):
  params, xs, ys = _problem(N)
  perm = np.arange(N, dtype=np.int32)
  return Program(train.make_epoch_fn(CFG, B, method=method), (params, _opt().init(params), xs,
                                                              ys, perm))


def _train_epoch(many: bool):
  """``loop.train_epoch``, the compiled program of fit (one model) and fit_many (S = 3)."""
  prog = dataclasses.replace(CFG, seeds=3 if many else 1)
  params, opt_state, keys = jax.eval_shape(   # shapes only: nothing compiled or run
      lambda s: loop.init_state(s, prog=prog, many=many, D=D, K=K, dtype="float32"),
      np.arange(prog.seeds, dtype=np.int32))
  _, xs, ys = _problem(N)
  return Program(loop.train_epoch, (params, opt_state, (xs, ys, xs, ys), keys, 1),
                 {"prog": prog, "many": many})


def _mesh():
  return AbstractMesh((DEVICES,), (parallel.AXIS,))


def _data_parallel_step():
  """parallel.shard_step: parameters and state replicated, the batch split over 4 devices."""
  mesh, (params, xs, ys) = _mesh(), _problem(DEVICES * B)
  step = train.make_train_step(CFG)
  sharded = parallel.shard_step(step, mesh)
  return Program(sharded, abstract((params, _opt().init(params), xs, ys)))


def _data_parallel_epoch():
  """The fused epoch with each step's batch split over the mesh (``make_epoch_fn(mesh=)``)."""
  mesh, (params, xs, ys) = _mesh(), _problem(DEVICES * N)
  epoch = train.make_epoch_fn(dataclasses.replace(CFG, batch_size=DEVICES * B), DEVICES * B,
                              mesh=mesh)
  rep = NamedSharding(mesh, P())
  args = (params, _opt().init(params), xs, ys, np.arange(DEVICES * N, dtype=np.int32))
  return Program(epoch, abstract(args), jit={"in_shardings": rep, "out_shardings": rep})


def _bench(variant):
  fn, args, _ = bench.program(BENCH, variant, B, T, H)
  return Program(fn, args)


PROGRAMS: dict[str, Callable[[], Program]] = {
    "forward": lambda: Program(model.forward, _problem()[:2], precision=None),
    "loss": lambda: Program(model.loss, _problem(), precision=None),
    "step-autodiff": lambda: _step("autodiff"),
    "step-autodiff-remat": lambda: _step("autodiff", remat=True),
    "step-hand": lambda: _step("hand"),
    "epoch-autodiff": lambda: _epoch("autodiff"),
    "epoch-hand": lambda: _epoch("hand"),
    "fit": lambda: _train_epoch(many=False),
    "fit-many": lambda: _train_epoch(many=True),
    "data-parallel-step": _data_parallel_step,
    "data-parallel-epoch": _data_parallel_epoch,
    **{f"bench-{v}": (lambda v=v: _bench(v)) for v in bench.VARIANTS if v != "torch"},
}


@functools.cache
def traced(name: str):
  """``PROGRAMS[name]`` traced once, for both platforms, with what its products should carry."""
  program = PROGRAMS[name]()
  return trace(program.fn, program.args, program.kwargs, **program.jit), program.precision


def check_lowers(name: str, platform: str, traced_program, precision: str | None) -> str:
  """Lowers a traced program for ``platform`` (LoweringError naming both otherwise) and checks
  that its matrix products carry ``precision`` (None: the caller's, DEFAULT here)."""
  text = lower(name, platform, traced_program)
  found = dot_precisions(text)
  assert found, f"{name} for {platform}: no matrix product in the lowered program"
  assert found == {precision or "DEFAULT"}, (
      f"{name} for {platform}: products at {sorted(found)}, expected {precision or 'DEFAULT'}")
  return text


@pytest.fixture(params=PLATFORMS)
def platform(request):
  reason = unavailable(request.param)
  if reason:
    pytest.skip(reason)
  return request.param


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_program_lowers_for(name, platform):
  text = check_lowers(name, platform, *traced(name))
  if name.startswith("data-parallel"):
    assert f"mhlo.num_partitions = {DEVICES}" in text, f"{name} for {platform}: not sharded"


def test_every_benchmark_variant_is_in_the_table():
  assert {f"bench-{v}" for v in bench.VARIANTS} - set(PROGRAMS) == {"bench-torch"}


# --------------------------------------------------------------------------- the check can fail


def _pallas(kind: str):
  """A Pallas kernel doubling an [8, 128] block, with the compiler settings of ``kind``: "tpu"
  (Mosaic) or "gpu" (Triton). Skips if this jaxlib lacks that Pallas backend."""
  try:
    from jax.experimental import pallas as pl
    if kind == "tpu":
      from jax.experimental.pallas import tpu as backend
      params = backend.CompilerParams(dimension_semantics=("parallel",))
    else:
      from jax.experimental.pallas import triton as backend
      params = backend.CompilerParams(num_warps=4)
  except (ImportError, AttributeError) as err:
    pytest.skip(f"Pallas for {kind} is not available in this jax: {err}")

  def double(x_ref, o_ref):
    o_ref[...] = 2 * x_ref[...]

  spec = pl.BlockSpec((8, 128), lambda i: (0, 0))
  return pl.pallas_call(double, out_shape=jax.ShapeDtypeStruct((8, 128), jnp.float32),
                        grid=(1,), in_specs=[spec], out_specs=spec, compiler_params=params)


def _forward_with(kernel) -> Program:
  """The forward pass with ``kernel`` planted in it, its output feeding the logits."""
  def planted(params, xs):
    logits = model.forward(params, xs)
    return logits + kernel(jnp.broadcast_to(jnp.sum(logits), (8, 128)))[0, 0]
  return Program(planted, _problem()[:2], precision=None)


@pytest.mark.parametrize("kind,works,fails", [("tpu", "tpu", "cuda"), ("gpu", "cuda", "tpu")])
def test_a_kernel_for_one_platform_fails_to_lower_for_the_other(kind, works, fails):
  for p in (works, fails):
    if unavailable(p):
      pytest.skip(unavailable(p))
  program, name = _forward_with(_pallas(kind)), f"forward+pallas-{kind}"
  planted = trace(program.fn, program.args)
  check_lowers(name, works, planted, None)             # the kernel is valid where it belongs
  with pytest.raises(LoweringError) as err:
    check_lowers(name, fails, planted, None)
  message = str(err.value)
  assert message.startswith(f"program {name!r} cannot be lowered for {fails}: "), message
  assert kind in message                               # JAX's reason: the kernel's platform


# --------------------------------------------------------------------------- fit over a mesh

FIT_OVER_DEVICES = r"""
import dataclasses, json, sys
import jax
import numpy as np
from rnn_jax import testing, train
from rnn_jax.train import loop
from lowering import LoweringError, lower, trace

out = {}
for many in (False, True):
  prog = train.TrainConfig(hidden_size=8, batch_size=8, devices=4, seeds=3 if many else 1)
  params, opt_state, keys = jax.eval_shape(
      lambda s: loop.init_state(s, prog=prog, many=many, D=1, K=3, dtype="float32"),
      np.arange(prog.seeds, dtype=np.int32))
  _, xs, ys = testing.rnn_problem(0, T=4, H=8, D=1, K=3, B=16, dtype=np.float32)
  name = "fit-many" if many else "fit"
  traced = trace(loop.train_epoch, (params, opt_state, (xs, ys, xs, ys), keys, 1),
                 {"prog": prog, "many": many})
  for platform in sys.argv[1:]:
    try:
      text = lower(f"{name} over 4 devices", platform, traced)
      out[f"{name}-{platform}"] = "mhlo.num_partitions = 4" in text
    except LoweringError as err:
      out[f"{name}-{platform}"] = str(err)
print(json.dumps(out))
"""


def test_fit_and_fit_many_over_4_devices_lower(tmp_path):
  """``loop.train_epoch`` with ``devices=4``, as fit and fit_many run it data-parallel: its mesh
  is ``parallel.data_mesh``'s, of real devices, so 4 simulated CPU devices stand in (one
  subprocess: the device count is fixed when JAX starts) and the program is lowered for CUDA
  and TPU; the step and epoch over an abstract mesh are in the table above."""
  platforms = [p for p in PLATFORMS if not unavailable(p)]
  if not platforms:
    pytest.skip(unavailable(PLATFORMS[0]))
  here = os.path.dirname(os.path.abspath(__file__))
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
             PYTHONPATH=os.pathsep.join([str(REPO), here]))
  done = subprocess.run([sys.executable, "-c", FIT_OVER_DEVICES, *platforms], env=env,
                        capture_output=True, text=True, timeout=300, cwd=tmp_path)
  assert done.returncode == 0, done.stderr[-3000:]
  result = json.loads(done.stdout.strip().splitlines()[-1])
  assert sorted(result) == sorted(f"{n}-{p}" for n in ("fit", "fit-many") for p in platforms)
  for key, ok in result.items():
    assert ok is True, f"{key}: {ok if isinstance(ok, str) else 'not split over 4 devices'}"

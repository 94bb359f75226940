"""The JAX workload of each variant, compiled, its data on the device.

All train with the same optimizer, the one ``rnn_jax.train.make_optimizer`` builds from
``--optimizer/--lr/--clip``: Adam after clipping by global norm 1, as training does.

* ``autodiff``        ``jax.jit(train.make_train_step(opt, "autodiff", unroll=1))``, one call a step
* ``autodiff_unroll`` the same with the scan fully unrolled (``unroll=T``)
* ``bptt``            the same with the notes' hand BPTT as the gradient (``rnn_jax.bptt``)
* ``fused``           ``train.make_epoch_fn``: ``S`` steps as one ``lax.scan`` over a
                      device-resident set of ``S*B`` windows in a permuted order (exactly what
                      ``train.fit`` runs), with ``--grad`` (default autodiff)
* ``bptt_fused``      the same with the hand BPTT as the gradient (``--grad hand``)
* ``vmap16``          16 independently initialised models, each with its own data order, trained
                      by ``jax.vmap`` of that epoch function (what ``train.fit_many`` runs);
                      its throughput counts the windows of all 16 models
* ``flax``            the flax peer (``rnn_jax.bench.peers``), one jitted call a step
* ``forward``         inference only: ``jax.jit(model.forward)``

The ``torch`` variant is eager and lives with its peer (``peers.torch_workload``).
"""
from __future__ import annotations

from typing import Callable

import jax

from rnn_jax import train
from rnn_jax.bench.config import MODELS, BenchConfig, make_optimizer
from rnn_jax.bench.peers import flax_params, flax_step_fn
from rnn_jax.bench.problems import fused_inputs, problem
from rnn_jax.bench.timing import Workload, compile_timed
from rnn_jax.core import model


def train_step_fn(cfg: BenchConfig, variant: str, T: int) -> Callable:
  """The training step of ``autodiff`` / ``autodiff_unroll`` / ``bptt``:
  ``train.make_train_step`` -> ``(params, opt_state, loss, finite)``."""
  method, unroll = {"autodiff": ("autodiff", 1), "autodiff_unroll": ("autodiff", T),
                    "bptt": ("bptt", 1)}[variant]
  return train.make_train_step(make_optimizer(cfg), method, unroll)


def epoch_fn(cfg: BenchConfig, batch: int, *, models: int | None = None,
             grad: str | None = None) -> Callable:
  """``train.make_epoch_fn`` for ``grad`` (default ``cfg.grad``); vmapped over ``models`` as
  ``train.fit_many`` does (parameters, optimizer state and data order per model, the data
  shared)."""
  epoch = train.make_epoch_fn(make_optimizer(cfg), batch, grad or cfg.grad)
  if models is None:
    return epoch
  return jax.vmap(epoch, in_axes=(0, 0, None, None, 0))


def _step_workload(variant, step_fn, params, opt_state, xs, ys) -> Workload:
  """Per-step training: one compiled call per optimizer step, parameters fed back."""
  jitted, compile_s = compile_timed(step_fn, params, opt_state, xs, ys)
  state = [params, opt_state]

  def call():
    out = jitted(state[0], state[1], xs, ys)
    state[0], state[1] = out[0], out[1]
    return out

  return Workload(variant, xs.shape[0], call, compile_s=compile_s,
                  info={"state": state})


def _epoch_workload(variant, epoch, params, opt_state, xs, ys, perm, steps) -> Workload:
  """Fused training: one compiled call runs ``steps`` optimizer steps (for every model)."""
  jitted, compile_s = compile_timed(epoch, params, opt_state, xs, ys, perm)
  state = [params, opt_state]
  models = perm.shape[0] if perm.ndim == 2 else 1

  def call():
    out = jitted(state[0], state[1], xs, ys, perm)
    state[0], state[1] = out[0], out[1]
    return out

  batch = xs.shape[0] // steps
  return Workload(variant, models * steps * batch, call, compile_s=compile_s,
                  info={"state": state, "steps_per_call": steps,
                        "models": models})


def build(cfg: BenchConfig, variant: str, batch: int, T: int, H: int) -> Workload:
  """The workload of one JAX cell (every variant but ``torch``), compiled, data on device."""
  if variant in ("autodiff", "autodiff_unroll", "bptt"):
    params, xs, ys = problem(cfg, batch, T, H)
    opt_state = jax.device_put(make_optimizer(cfg).init(params))
    return _step_workload(variant, train_step_fn(cfg, variant, T), params, opt_state, xs, ys)
  if variant in ("fused", "bptt_fused", "vmap16"):
    models = MODELS if variant == "vmap16" else None
    grad = "hand" if variant == "bptt_fused" else None
    (params, opt_state, xs, ys, perm), S = fused_inputs(cfg, batch, T, H, models)
    return _epoch_workload(variant, epoch_fn(cfg, batch, models=models, grad=grad), params,
                           opt_state, xs, ys, perm, S)
  if variant == "flax":
    params, xs, ys = problem(cfg, batch, T, H)
    variables = jax.device_put(flax_params(params))
    opt_state = jax.device_put(make_optimizer(cfg).init(variables))
    return _step_workload(variant, flax_step_fn(cfg, H), variables, opt_state, xs, ys)
  if variant == "forward":
    params, xs, _ = problem(cfg, batch, T, H)
    jitted, compile_s = compile_timed(model.forward, params, xs)
    return Workload(variant, batch, lambda: jitted(params, xs), independent=True,
                    compile_s=compile_s)
  raise ValueError(f"variant: no JAX workload for {variant!r}")

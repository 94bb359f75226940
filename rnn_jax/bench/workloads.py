"""The data of a cell and the JAX workload of each variant, compiled, its data on the device.

Training variants use ``rnn_jax.train``'s step (``autodiff``, ``autodiff_unroll`` with the scan
unrolled, ``hand``: the hand BPTT) or fused epoch (``fused`` with ``--grad``, ``hand_fused``,
``vmap16``: 16 models vmapped), or are the flax peer (``flax``), all with the optimizer
``train.make_optimizer`` builds; ``forward`` is ``jax.jit(model.forward)``. The table in
docs/benchmarking.md says what each times; ``torch`` lives in ``torch_peer``.
"""
from __future__ import annotations

from typing import Callable

import jax
import numpy as np
import optax

from rnn_jax import train
from rnn_jax.bench.config import MODELS, BenchConfig, fused_steps, make_optimizer
from rnn_jax.bench.timing import Workload, compile_timed
from rnn_jax.core import model
from rnn_jax.testing import rnn_problem


# --------------------------------------------------------------------------- the data

def problem(cfg: BenchConfig, batch: int, T: int, H: int, n: int | None = None,
            seed_offset: int = 0):
  """``(params, xs [n,T,D], ys [n,K])`` in float32 on the device (``n`` defaults to ``batch``):
  the gradient checks' draw, inputs N(0, 1), targets uniform in [0, 1], N(0, 1/fan_in) weights."""
  n = batch if n is None else n
  drawn = rnn_problem((cfg.seed, seed_offset), T=T, H=H, D=cfg.input_size, K=cfg.output_size,
                      B=n, dtype=np.float32)
  return jax.block_until_ready(jax.device_put(drawn))


def many_models(cfg: BenchConfig, H: int, models: int = MODELS):
  """``models`` parameter sets stacked on a leading axis, model i drawn from ``(seed + 1, i)``."""
  each = [rnn_problem((cfg.seed + 1, i), T=1, H=H, D=cfg.input_size, K=cfg.output_size, B=1,
                      dtype=np.float32)[0] for i in range(models)]
  return jax.device_put(jax.tree.map(lambda *a: np.stack([np.asarray(x) for x in a]), *each))


def fused_inputs(cfg: BenchConfig, batch: int, T: int, H: int, models: int | None = None):
  """``((params, opt_state, xs [S*B,T,D], ys, perm), S)`` of one fused call on the device; with
  ``models``, parameters, optimizer state and ``perm [M, S*B]`` per model."""
  S = fused_steps(cfg, batch)
  params, xs, ys = problem(cfg, batch, T, H, n=S * batch)
  rng = np.random.default_rng([cfg.seed, 1])
  if models is None:
    perm = rng.permutation(S * batch).astype(np.int32)
  else:
    params = many_models(cfg, H, models)
    perm = np.stack([rng.permutation(S * batch) for _ in range(models)]).astype(np.int32)
  opt = make_optimizer(cfg)
  opt_state = jax.jit(opt.init if models is None else jax.vmap(opt.init))(params)
  return jax.block_until_ready(jax.device_put((params, opt_state, xs, ys, perm))), S


# --------------------------------------------------------------------------- the flax peer

def flax_module(H: int, K: int):
  """flax's ``nn.RNN(nn.SimpleCell(features=H, activation_fn=relu))`` and a ``Dense(K)`` head."""
  import flax.linen as nn

  class FlaxRNN(nn.Module):
    hidden: int
    outputs: int

    @nn.compact
    def __call__(self, xs):                                  # xs [B, T, D] -> logits [B, K]
      cell = nn.SimpleCell(features=self.hidden, activation_fn=nn.relu)
      hT, _ = nn.RNN(cell, return_carry=True)(xs)
      return nn.Dense(self.outputs, name="head")(hT)

  return FlaxRNN(H, K)


def flax_params(params: model.RNNParams) -> dict:
  """Our parameters in flax's layout (kernels are ``[in, out]``): the same function."""
  return {"params": {"SimpleCell_0": {"h": {"kernel": params.U.T},
                                      "i": {"kernel": params.V.T, "bias": params.b}},
                     "head": {"kernel": params.W.T, "bias": params.c}}}


def flax_step_fn(cfg: BenchConfig, H: int) -> Callable:
  """``step(variables, opt_state, xs, ys) -> (variables, opt_state, loss)``, our loss and
  optimizer."""
  module, opt = flax_module(H, cfg.output_size), make_optimizer(cfg)

  def loss(variables, xs, ys):
    return model.bce_from_logits(module.apply(variables, xs), ys)

  def step(variables, opt_state, xs, ys):
    value, grads = jax.value_and_grad(loss)(variables, xs, ys)
    updates, opt_state = opt.update(grads, opt_state, variables)
    return optax.apply_updates(variables, updates), opt_state, value

  return step


# --------------------------------------------------------------------------- the workloads

def train_step_fn(cfg: BenchConfig, variant: str, T: int) -> Callable:
  """``train.make_train_step`` of ``autodiff`` / ``autodiff_unroll`` / ``hand``."""
  method, unroll = {"autodiff": ("autodiff", 1), "autodiff_unroll": ("autodiff", T),
                    "hand": ("hand", 1)}[variant]
  return train.make_train_step(make_optimizer(cfg), method, unroll)


def epoch_fn(cfg: BenchConfig, batch: int, *, models: int | None = None,
             grad: str | None = None) -> Callable:
  """``train.make_epoch_fn`` for ``grad`` (default ``cfg.grad``); with ``models``, vmapped as
  ``train.fit_many`` does (parameters, optimizer state and order per model, data shared)."""
  epoch = train.make_epoch_fn(make_optimizer(cfg), batch, grad or cfg.grad)
  return epoch if models is None else jax.vmap(epoch, in_axes=(0, 0, None, None, 0))


def training_workload(variant, fn, params, opt_state, *data, samples: int,
                      info: dict | None = None) -> Workload:
  """A compiled training call whose parameters and optimizer state feed the next call."""
  jitted, compile_s = compile_timed(fn, params, opt_state, *data)
  state = [params, opt_state]

  def call():
    out = jitted(state[0], state[1], *data)
    state[0], state[1] = out[0], out[1]
    return out

  return Workload(variant, samples, call, compile_s=compile_s, info=dict(info or {}, state=state))


def build(cfg: BenchConfig, variant: str, batch: int, T: int, H: int) -> Workload:
  """The workload of one JAX cell (every variant but ``torch``), compiled, data on device."""
  if variant in ("autodiff", "autodiff_unroll", "hand"):
    params, xs, ys = problem(cfg, batch, T, H)
    opt_state = jax.device_put(make_optimizer(cfg).init(params))
    return training_workload(variant, train_step_fn(cfg, variant, T), params, opt_state, xs,
                             ys, samples=batch)
  if variant in ("fused", "hand_fused", "vmap16"):
    models = MODELS if variant == "vmap16" else None
    grad = "hand" if variant == "hand_fused" else None
    (params, opt_state, xs, ys, perm), S = fused_inputs(cfg, batch, T, H, models)
    return training_workload(variant, epoch_fn(cfg, batch, models=models, grad=grad), params,
                             opt_state, xs, ys, perm, samples=(models or 1) * S * batch,
                             info={"steps_per_call": S, "models": models or 1})
  if variant == "flax":
    params, xs, ys = problem(cfg, batch, T, H)
    variables = jax.device_put(flax_params(params))
    opt_state = jax.device_put(make_optimizer(cfg).init(variables))
    return training_workload(variant, flax_step_fn(cfg, H), variables, opt_state, xs, ys,
                             samples=batch)
  if variant == "forward":
    params, xs, _ = problem(cfg, batch, T, H)
    jitted, compile_s = compile_timed(model.forward, params, xs)
    return Workload(variant, batch, lambda: jitted(params, xs), independent=True,
                    compile_s=compile_s)
  raise ValueError(f"variant: no JAX workload for {variant!r}")

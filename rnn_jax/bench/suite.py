"""How fast the notes' RNN trains here, how close that is to the machine's limit, and how it
compares with what one would otherwise use (flax's nn.RNN, PyTorch's nn.RNN).

Every cell of the benchmark is one (variant, B, T, H). It builds the workload with its data
already on the device, compiles it (the compile time, ``lower().compile()``, is reported on its
own line and never counted in the throughput), runs it once as warm-up and at least once more
to calibrate how many calls fill the time (neither is counted), then times
``repeats`` repetitions of ``n`` back-to-back calls each, with ``jax.block_until_ready`` on the
result at the end of every repetition (and after every call where calls are independent:
``forward``). ``n`` is chosen so that the repetitions together last ``seconds``. The reported
throughput is the median over the repetitions; the spread is their min, quartiles and max.

Variants (all train with the same optimizer, the one ``rnn_jax.train.make_optimizer`` builds
from ``--optimizer/--lr/--clip``: Adam after clipping by global norm 1, as training does):

* ``autodiff``        ``jax.jit(train.make_train_step(opt, "autodiff", unroll=1))``, one call a step
* ``autodiff_unroll`` the same with the scan fully unrolled (``unroll=T``)
* ``bptt``            the same with the notes' hand BPTT as the gradient (``rnn_jax.bptt``)
* ``fused``           ``train.make_epoch_fn``: ``S`` steps as one ``lax.scan`` over a
                      device-resident set of ``S*B`` windows in a permuted order (exactly what
                      ``train.fit`` runs)
* ``vmap16``          16 independently initialised models, each with its own data order, trained
                      by ``jax.vmap`` of that epoch function (what ``train.fit_many`` runs);
                      its throughput counts the windows of all 16 models
* ``flax``            ``nn.RNN(nn.SimpleCell(features=H, activation_fn=nn.relu))`` +
                      ``nn.Dense(K)``, same loss and optimizer, one jitted call a step (the peer a
                      flax user writes)
* ``torch``           ``torch.nn.RNN(nonlinearity="relu")`` + ``nn.Linear``, BCE-with-logits summed
                      over K and averaged over B, ``torch.optim.Adam`` (+ ``clip_grad_norm_``),
                      eager; timed with 1 thread and with all threads, the better one reported
* ``forward``         inference only: ``jax.jit(model.forward)``

FLOPs per window (sample), counting matrix products only (a multiply-add is 2 FLOPs; the
bias adds, ReLU, masks, loss and optimizer update are O(T H) or O(parameters / B) and left out)::

    forward  = T (2 H^2 + 2 H D) + 2 K H
    training = T (6 H^2 + 4 H D) + 6 K H

Training is the forward pass plus, per step t of the backward pass, ``dL/dh_{t-1} = delta_t U``
(2 H^2), ``grad_U += delta_t^T h_{t-1}`` (2 H^2) and ``grad_V += delta_t^T x_t`` (2 H D), and for
the head ``grad_W = Q^T h_T`` and ``dL/dh_T = Q W`` (2 K H each); ``dL/dx`` is not needed. For
the notes' network (T=24, H=200, D=1, K=3): 1,930,800 forward and 5,782,800 training FLOPs.

The peak. The dominant operation is ``[B,H] x [H,H]``, 24 times in a chain where each product
needs the previous one. ``matmul_peak`` times exactly that in the same run: a jitted
``lax.scan`` of T dependent products ``h <- h @ U`` (U orthogonal, so h neither grows nor
shrinks), scan rolled and fully unrolled, the better of the two. Every row shows its GFLOP/s
and the percentage of that rate for its (B, H, T). For vmap16 the rate of 16 such chains at once
(``[16,B,H] x [16,H,H]`` batched) is measured too (``peak_batched``): at B=1 each step streams all
16 models' U (16 x H^2 x 4 bytes = 2.5 MB for H=200, more than this CPU's L2), so cache
bandwidth, not arithmetic, bounds it.
"""
from __future__ import annotations

import dataclasses
import datetime
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rnn_jax import train
from rnn_jax.common import fileio
from rnn_jax.common.versions import versions
from rnn_jax.core import model
from rnn_jax.train import parallel
from rnn_jax.common.errors import InputError

VARIANTS = ("autodiff", "autodiff_unroll", "bptt", "fused", "vmap16", "flax", "torch",
            "forward")
MODELS = 16  # models trained at once by the vmap16 variant


def _field(default, help_text: str, **meta):
  return dataclasses.field(default=default, metadata={"help": help_text, **meta})


@dataclasses.dataclass(frozen=True)
class BenchConfig:
  """Every benchmark setting; field ``name`` is the flag ``--name`` (rnn_jax.cli)."""
  batch_sizes: tuple[int, ...] = _field((1, 32, 256, 1024, 4096), "batch sizes B")
  seq_lens: tuple[int, ...] = _field((24,), "window lengths T (the notes: 24)")
  hidden_sizes: tuple[int, ...] = _field((200,), "hidden units H (the notes: 200)")
  variants: tuple[str, ...] = _field(VARIANTS, "variants to run, from " + ",".join(VARIANTS))
  seconds: float = _field(1.5, "timed seconds per cell, split over the repeats")
  repeats: int = _field(5, "timed repetitions per cell; the median is reported")
  input_size: int = _field(1, "inputs per step D")
  output_size: int = _field(3, "outputs K")
  optimizer: str = _field("adam", "optimizer, as in training: adam | sgd")
  lr: float = _field(1e-3, "learning rate")
  clip: float = _field(1.0, "clip gradients to this global norm (training's default); 0 = off")
  grad: str = _field("autodiff", "gradient of the fused and vmap16 variants: autodiff | bptt")
  fuse_steps: int = _field(64, "most optimizer steps in one fused call")
  fuse_windows: int = _field(4096, "fused calls take ceil(this / B) steps, within [2, fuse-steps]")
  vmap_max_batch: int = _field(256, "run vmap16 only for B up to this (16 models x B per step)")
  remat_seq_lens: tuple[int, ...] = _field((24, 384, 1536), "T values of --remat-memory")
  remat_batch: int = _field(32, "batch size of --remat-memory")
  seed: int = _field(0, "seed of parameters and data")
  devices_sweep: bool = _field(False, "training throughput against device count", cli=False)
  remat_memory: bool = _field(False, "peak memory with and without jax.checkpoint", cli=False)

  def __post_init__(self):
    def ints(name, lo=1):
      values = getattr(self, name)
      if not isinstance(values, tuple) or not values:
        raise InputError(f"--{name.replace('_', '-')}: expected a non-empty comma-separated "
                         f"list of integers >= {lo}, got {values!r}")
      for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
          raise InputError(f"--{name.replace('_', '-')}: expected integers >= {lo}, got {v!r}")

    def integer(name, lo):
      v = getattr(self, name)
      if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        raise InputError(f"--{name.replace('_', '-')}: expected an integer >= {lo}, got {v!r}")

    def positive(name, allow_zero=False):
      v = getattr(self, name)
      ok = (not isinstance(v, bool) and isinstance(v, (int, float, np.number))
            and math.isfinite(v) and (v >= 0 if allow_zero else v > 0))
      if not ok:
        what = "a finite number >= 0" if allow_zero else "a finite positive number"
        raise InputError(f"--{name.replace('_', '-')}: expected {what}, got {v!r}")

    for name in ("batch_sizes", "seq_lens", "hidden_sizes", "remat_seq_lens"):
      ints(name)
    if not isinstance(self.variants, tuple) or not self.variants:
      raise InputError(f"--variants: expected a comma-separated list from {','.join(VARIANTS)}")
    for v in self.variants:
      if v not in VARIANTS:
        raise InputError(f"--variants: unknown variant {v!r}; expected names from "
                         f"{','.join(VARIANTS)}")
    if len(set(self.variants)) != len(self.variants):
      raise InputError(f"--variants: a variant is named twice in {','.join(self.variants)}")
    positive("seconds")
    for name, lo in (("repeats", 1), ("input_size", 1), ("output_size", 1), ("fuse_steps", 2),
                     ("fuse_windows", 1), ("vmap_max_batch", 1), ("remat_batch", 1),
                     ("seed", 0)):
      integer(name, lo)
    if self.optimizer not in train.OPTIMIZERS:
      raise InputError(f"--optimizer: expected one of {', '.join(train.OPTIMIZERS)}, "
                       f"got {self.optimizer!r}")
    positive("lr")
    positive("clip", allow_zero=True)
    if self.grad not in ("autodiff", "bptt"):
      raise InputError(f"--grad: expected autodiff or bptt, got {self.grad!r}")
    for name in ("devices_sweep", "remat_memory"):
      if not isinstance(getattr(self, name), bool):
        raise InputError(f"--{name.replace('_', '-')}: expected true or false")

  def to_dict(self) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v
            for k, v in dataclasses.asdict(self).items()}


# --------------------------------------------------------------------------- FLOPs

def flops_per_sample(T: int, H: int, D: int = 1, K: int = 3, *, training: bool = True) -> int:
  """Matrix-product FLOPs per window (see the module docstring for the derivation).

  ``forward = T (2H^2 + 2HD) + 2KH``; ``training = T (6H^2 + 4HD) + 6KH``.
  """
  if training:
    return T * (6 * H * H + 4 * H * D) + 6 * K * H
  return T * (2 * H * H + 2 * H * D) + 2 * K * H


FLOP_FORMULAS = {"forward": "T*(2*H*H + 2*H*D) + 2*K*H",
                 "training": "T*(6*H*H + 4*H*D) + 6*K*H"}


def fused_steps(cfg: BenchConfig, batch: int) -> int:
  """Optimizer steps per fused call: ``ceil(fuse_windows / B)`` within ``[2, fuse_steps]``."""
  return int(min(cfg.fuse_steps, max(2, -(-cfg.fuse_windows // batch))))


# --------------------------------------------------------------------------- timing

@dataclasses.dataclass
class Workload:
  """One thing to time: ``call()`` does ``samples_per_call`` windows of work (asynchronously
  for JAX) and returns something ``block`` waits for."""
  variant: str
  samples_per_call: int
  call: Callable[[], Any]
  block: Callable[[Any], Any] = jax.block_until_ready
  block_each: bool = False       # wait after every call (calls that do not depend on each other)
  compile_s: float | None = None
  info: dict = dataclasses.field(default_factory=dict)


def _compile(fn: Callable, *args):
  """``(jitted, seconds)``: ``jax.jit(fn)`` and the time to trace, lower and compile it for
  ``args``. Calls then go through ``jitted``, as in training; its first call finds the
  executable compiled here in JAX's cache (and if it did not, that call is the warm-up)."""
  jitted = jax.jit(fn)
  t0 = time.perf_counter()
  jitted.lower(*args).compile()
  return jitted, time.perf_counter() - t0


def measure(work: Workload, seconds: float, repeats: int) -> dict:
  """Times ``work``: warm-up, calibration, then ``repeats`` blocked repetitions.

  Returns ``{"samples_per_s": median, "spread": {min, q1, q3, max}, "calls": n per repetition,
  "per_repeat": [...]}``; nothing of the warm-up is counted.
  """
  call, block = work.call, work.block
  block(call())                                    # warm-up: allocation, page-in
  t0 = time.perf_counter()                         # calibration (untimed): >= 20 ms or 3 calls
  k = 0
  while True:
    block(call())
    k += 1
    elapsed = time.perf_counter() - t0
    if elapsed >= 0.02 or k >= 3 or elapsed >= seconds / repeats:
      break
  per_call = elapsed / k
  n = max(1, int(round(seconds / repeats / max(per_call, 1e-9))))
  rates = []
  for _ in range(repeats):
    out = None
    t0 = time.perf_counter()
    for _ in range(n):
      out = call()
      if work.block_each:
        block(out)
    block(out)
    rates.append(n * work.samples_per_call / (time.perf_counter() - t0))
  rates = np.asarray(rates)
  q1, med, q3 = np.percentile(rates, [25, 50, 75])
  return {"samples_per_s": float(med),
          "spread": {"min": float(rates.min()), "q1": float(q1), "q3": float(q3),
                     "max": float(rates.max())},
          "calls": n, "per_repeat": [float(r) for r in rates]}


# --------------------------------------------------------------------------- problems

def make_optimizer(cfg: BenchConfig) -> optax.GradientTransformation:
  """The training optimizer for these settings (``rnn_jax.train.make_optimizer``)."""
  return train.make_optimizer(train.TrainConfig(optimizer=cfg.optimizer, lr=cfg.lr,
                                                clip=cfg.clip))


def problem(cfg: BenchConfig, batch: int, T: int, H: int, n: int | None = None,
            seed_offset: int = 0):
  """``(params, xs [n,T,D], ys [n,K])`` on the default device; ``n`` defaults to ``batch``.

  Inputs are N(0, 1), targets uniform in [0, 1] (soft occupancies), parameters the notes'
  N(0, 1/fan_in) draw.
  """
  n = batch if n is None else n
  key = jax.random.fold_in(jax.random.PRNGKey(cfg.seed), seed_offset)
  params = model.init_params(key, cfg.input_size, H, cfg.output_size)
  rng = np.random.default_rng([cfg.seed, seed_offset])
  xs = rng.standard_normal((n, T, cfg.input_size), dtype=np.float32)
  ys = rng.random((n, cfg.output_size), dtype=np.float32)
  return jax.block_until_ready(jax.device_put((params, xs, ys)))


def _step_workload(variant, step_fn, params, opt_state, xs, ys) -> Workload:
  """Per-step training: one compiled call per optimizer step, parameters fed back."""
  jitted, compile_s = _compile(step_fn, params, opt_state, xs, ys)
  state = [params, opt_state]

  def call():
    out = jitted(state[0], state[1], xs, ys)
    state[0], state[1] = out[0], out[1]
    return out

  return Workload(variant, xs.shape[0], call, compile_s=compile_s,
                  info={"state": state})


def train_step_fn(cfg: BenchConfig, variant: str, T: int) -> Callable:
  """The training step of ``autodiff`` / ``autodiff_unroll`` / ``bptt``:
  ``train.make_train_step`` -> ``(params, opt_state, loss, finite)``."""
  method, unroll = {"autodiff": ("autodiff", 1), "autodiff_unroll": ("autodiff", T),
                    "bptt": ("bptt", 1)}[variant]
  return train.make_train_step(make_optimizer(cfg), method, unroll)


def epoch_fn(cfg: BenchConfig, batch: int, *, models: int | None = None) -> Callable:
  """``train.make_epoch_fn`` for ``cfg.grad``; vmapped over ``models`` as ``train.fit_many``
  does (parameters, optimizer state and data order per model, the data shared)."""
  epoch = train.make_epoch_fn(make_optimizer(cfg), batch, cfg.grad)
  if models is None:
    return epoch
  return jax.vmap(epoch, in_axes=(0, 0, None, None, 0))


def many_models(cfg: BenchConfig, H: int, models: int = MODELS):
  """``models`` independently initialised parameter sets, stacked on a leading axis
  (model i from ``fold_in(PRNGKey(seed + 1), i)``)."""
  base = jax.random.PRNGKey(cfg.seed + 1)
  each = [model.init_params(jax.random.fold_in(base, i), cfg.input_size, H, cfg.output_size)
          for i in range(models)]
  return jax.device_put(jax.tree.map(lambda *a: np.stack([np.asarray(x) for x in a]), *each))


def _epoch_workload(variant, epoch, params, opt_state, xs, ys, perm, steps) -> Workload:
  jitted, compile_s = _compile(epoch, params, opt_state, xs, ys, perm)
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


def fused_inputs(cfg: BenchConfig, batch: int, T: int, H: int, models: int | None = None):
  """``(params, opt_state, xs [S*B,T,D], ys, perm)`` of one fused call (perm ``[M, S*B]``
  with a model axis when ``models`` is given), on the device."""
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


# --------------------------------------------------------------------------- flax peer

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
  """``step(variables, opt_state, xs, ys) -> (variables, opt_state, loss)``; same loss
  (``model.bce_from_logits``) and optimizer as ours."""
  module = flax_module(H, cfg.output_size)
  opt = make_optimizer(cfg)

  def loss(variables, xs, ys):
    return model.bce_from_logits(module.apply(variables, xs), ys)

  def step(variables, opt_state, xs, ys):
    value, grads = jax.value_and_grad(loss)(variables, xs, ys)
    updates, opt_state = opt.update(grads, opt_state, variables)
    return optax.apply_updates(variables, updates), opt_state, value

  return step


# --------------------------------------------------------------------------- torch peer

def torch_available() -> bool:
  try:
    import torch  # noqa: F401
  except ImportError:
    return False
  return True


class TorchPeer:
  """PyTorch's ``nn.RNN(nonlinearity="relu", batch_first=True)`` + ``nn.Linear`` head with our
  parameters (``weight_ih = V``, ``weight_hh = U``, ``bias_ih = b``, ``bias_hh = 0`` and
  frozen), loss ``BCEWithLogits`` summed over K and averaged over B, ``torch.optim.Adam`` (or
  SGD) with ``clip_grad_norm_`` when ``clip > 0``; eager."""

  def __init__(self, cfg: BenchConfig, params: model.RNNParams, xs, ys):
    import torch
    self.torch = torch
    D, H, K = model.param_sizes(params)
    self.rnn = torch.nn.RNN(D, H, nonlinearity="relu", batch_first=True)
    self.head = torch.nn.Linear(H, K)
    with torch.no_grad():
      for name, value in (("weight_ih_l0", params.V), ("weight_hh_l0", params.U),
                          ("bias_ih_l0", params.b)):
        getattr(self.rnn, name).copy_(torch.from_numpy(np.array(value)))
      self.rnn.bias_hh_l0.zero_()
      self.head.weight.copy_(torch.from_numpy(np.array(params.W)))
      self.head.bias.copy_(torch.from_numpy(np.array(params.c)))
    # One bias, as in our cell: with both trained, Adam would move b = b_ih + b_hh twice as far.
    self.rnn.bias_hh_l0.requires_grad_(False)
    self.parameters = [p for p in list(self.rnn.parameters()) + list(self.head.parameters())
                       if p.requires_grad]
    if cfg.optimizer == "adam":
      self.opt = torch.optim.Adam(self.parameters, lr=cfg.lr)
    else:
      self.opt = torch.optim.SGD(self.parameters, lr=cfg.lr)
    self.clip = cfg.clip
    self.xs = torch.from_numpy(np.array(xs))
    self.ys = torch.from_numpy(np.array(ys))

  def loss(self):
    _, h = self.rnn(self.xs)                                 # h: [1, B, H], the last state
    logits = self.head(h[0])
    bce = self.torch.nn.functional.binary_cross_entropy_with_logits(
        logits, self.ys, reduction="none")
    return bce.sum(dim=1).mean()

  def step(self):
    """One optimizer step; returns the loss at the incoming parameters (a float tensor)."""
    self.opt.zero_grad(set_to_none=True)
    loss = self.loss()
    loss.backward()
    if self.clip > 0:
      self.torch.nn.utils.clip_grad_norm_(self.parameters, self.clip)
    self.opt.step()
    return loss.detach()

  def params(self) -> model.RNNParams:
    """The current parameters in our layout (``bias_ih + bias_hh`` as b)."""
    t = lambda x: x.detach().numpy().copy()
    return model.RNNParams(U=t(self.rnn.weight_hh_l0), V=t(self.rnn.weight_ih_l0),
                           b=t(self.rnn.bias_ih_l0) + t(self.rnn.bias_hh_l0),
                           W=t(self.head.weight), c=t(self.head.bias))


# --------------------------------------------------------------------------- workloads

def build(cfg: BenchConfig, variant: str, batch: int, T: int, H: int) -> Workload:
  """The workload of one JAX cell (every variant but ``torch``), compiled, data on device."""
  if variant in ("autodiff", "autodiff_unroll", "bptt"):
    params, xs, ys = problem(cfg, batch, T, H)
    opt_state = jax.device_put(make_optimizer(cfg).init(params))
    return _step_workload(variant, train_step_fn(cfg, variant, T), params, opt_state, xs, ys)
  if variant in ("fused", "vmap16"):
    models = MODELS if variant == "vmap16" else None
    (params, opt_state, xs, ys, perm), S = fused_inputs(cfg, batch, T, H, models)
    return _epoch_workload(variant, epoch_fn(cfg, batch, models=models), params, opt_state, xs,
                           ys, perm, S)
  if variant == "flax":
    params, xs, ys = problem(cfg, batch, T, H)
    variables = jax.device_put(flax_params(params))
    opt_state = jax.device_put(make_optimizer(cfg).init(variables))
    return _step_workload(variant, flax_step_fn(cfg, H), variables, opt_state, xs, ys)
  if variant == "forward":
    params, xs, _ = problem(cfg, batch, T, H)
    jitted, compile_s = _compile(model.forward, params, xs)
    return Workload(variant, batch, lambda: jitted(params, xs), block_each=True,
                    compile_s=compile_s)
  raise ValueError(f"variant: no JAX workload for {variant!r}")


def torch_workload(cfg: BenchConfig, batch: int, T: int, H: int) -> Workload:
  params, xs, ys = problem(cfg, batch, T, H)
  peer = TorchPeer(cfg, params, xs, ys)
  return Workload("torch", batch, peer.step, block=lambda out: out, info={"peer": peer})


def torch_threads() -> list[int]:
  """The thread settings to try: 1 and all cores (one setting on a 1-core machine)."""
  return sorted({1, os.cpu_count() or 1})


def measure_torch(cfg: BenchConfig, batch: int, T: int, H: int) -> dict:
  """Times the torch peer at every setting of ``torch_threads``; the best one is the result."""
  import torch
  before = torch.get_num_threads()
  by_threads = {}
  try:
    for n in torch_threads():
      torch.set_num_threads(n)
      by_threads[n] = measure(torch_workload(cfg, batch, T, H), cfg.seconds, cfg.repeats)
  finally:
    torch.set_num_threads(before)
  best = max(by_threads, key=lambda n: by_threads[n]["samples_per_s"])
  result = dict(by_threads[best])
  result["threads"] = best
  result["by_threads"] = {str(n): r["samples_per_s"] for n, r in by_threads.items()}
  return result


# --------------------------------------------------------------------------- peak

def _orthogonal(key, H, models=None):
  shape = (H, H) if models is None else (models, H, H)
  return jnp.linalg.qr(jax.random.normal(key, shape, jnp.float32))[0]


def matmul_peak(cfg: BenchConfig, batch: int, T: int, H: int, *,
                models: int | None = None) -> dict:
  """The attainable rate of T dependent ``[B,H] x [H,H]`` products (``models``: that many at
  once, ``[M,B,H] x [M,H,H]``), GFLOP/s, the better of a rolled and an unrolled scan."""
  key = jax.random.PRNGKey(cfg.seed + 2)
  U = _orthogonal(key, H, models)
  h = jax.random.normal(jax.random.fold_in(key, 1), (batch, H) if models is None
                        else (models, batch, H), jnp.float32)
  product = (lambda h, U: h @ U) if models is None else (
      lambda h, U: jnp.einsum("mbh,mhk->mbk", h, U))
  flops = 2 * batch * H * H * T * (models or 1)
  best = None
  for unroll in (1, T):
    def chain(h, U, unroll=unroll):
      return jax.lax.scan(lambda c, _: (product(c, U), None), h, None, length=T,
                          unroll=unroll)[0]
    jitted, _ = _compile(chain, h, U)
    state = [jax.block_until_ready(h)]

    def call(jitted=jitted, state=state):
      state[0] = jitted(state[0], U)
      return state[0]

    r = measure(Workload("peak", 1, call), cfg.seconds / 2, cfg.repeats)
    gflops = r["samples_per_s"] * flops / 1e9
    result = {"batch": batch, "T": T, "H": H, "gflops": gflops, "unroll": unroll,
              "spread": {k: v * flops / 1e9 for k, v in r["spread"].items()}}
    if models is not None:
      result["models"] = models
    if best is None or gflops > best["gflops"]:
      best = result
  return best


# --------------------------------------------------------------------------- the run

def device_info() -> dict:
  d = jax.devices()[0]
  info = {"platform": d.platform, "kind": d.device_kind, "count": jax.device_count(),
          "host_cpu": _cpu_name(), "host_cores": os.cpu_count()}
  return info


def _cpu_name() -> str:
  try:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def _fmt_rate(x):
  return f"{x:,.0f}"


def _print(line: str = "", out=None):
  print(line, file=out or sys.stdout, flush=True)


def check_output_path(flag: str, path) -> Path | None:
  """An output path must be a file in an existing directory (checked before any work)."""
  if path is None:
    return None
  path = Path(path)
  if path.is_dir():
    raise InputError(f"{flag}: {path} is a directory, expected a file name")
  if not path.parent.is_dir():
    raise InputError(f"{flag}: directory {path.parent} does not exist")
  return path


def _record(cfg, variant, batch, T, H, r, peak, work_info=None, compile_s=None) -> dict:
  training = variant != "forward"
  fps = flops_per_sample(T, H, cfg.input_size, cfg.output_size, training=training)
  gflops = r["samples_per_s"] * fps / 1e9
  rec = {"variant": variant, "batch": batch, "T": T, "H": H, "D": cfg.input_size,
         "K": cfg.output_size, "samples_per_s": r["samples_per_s"], "gflops": gflops,
         "pct_peak": 100.0 * gflops / peak["gflops"], "compile_s": compile_s,
         "spread": r["spread"], "repeats": cfg.repeats, "calls_per_repeat": r["calls"],
         "flops_per_sample": fps}
  for key in ("steps_per_call", "models"):
    if work_info and key in work_info:
      rec[key] = work_info[key]
  for key in ("threads", "by_threads"):
    if key in r:
      rec[key] = r[key]
  return rec


def run_cells(cfg: BenchConfig, out=None) -> dict:
  """Runs every cell of ``cfg``; returns the result dict (see ``run`` for the JSON layout)."""
  variants = [v for v in cfg.variants if v != "torch" or torch_available()]
  if "torch" in cfg.variants and "torch" not in variants:
    _print("torch: not installed (pip install '.[torch]'); the torch variant is skipped", out)
  records, peaks, batched_peaks = [], [], []
  for T in cfg.seq_lens:
    for H in cfg.hidden_sizes:
      for B in cfg.batch_sizes:
        peak = matmul_peak(cfg, B, T, H)
        peaks.append(peak)
        _print(f"peak   B={B:<5d} T={T} H={H}: {peak['gflops']:.1f} GFLOP/s "
               f"(chain of {T} [B,H]x[H,H] products, unroll={peak['unroll']})", out)
        for variant in variants:
          if variant == "vmap16" and B > cfg.vmap_max_batch:
            _print(f"{variant:<16s} B={B:<5d} skipped (B > --vmap-max-batch "
                   f"{cfg.vmap_max_batch})", out)
            continue
          if variant == "torch":
            r = measure_torch(cfg, B, T, H)
            rec = _record(cfg, variant, B, T, H, r, peak)
          else:
            work = build(cfg, variant, B, T, H)
            _print(f"compile {variant} B={B} T={T} H={H}: {work.compile_s:.2f} s", out)
            r = measure(work, cfg.seconds, cfg.repeats)
            rec = _record(cfg, variant, B, T, H, r, peak, work.info, work.compile_s)
          if variant == "vmap16":
            bp = matmul_peak(cfg, B, T, H, models=MODELS)
            batched_peaks.append(bp)
            rec["peak_batched_gflops"] = bp["gflops"]
            rec["pct_peak_batched"] = 100.0 * rec["gflops"] / bp["gflops"]
          records.append(rec)
          _print(_row(rec), out)
  _add_ratios(records)
  return {"records": records, "peaks": peaks, "peaks_batched": batched_peaks}


def _row(rec: dict) -> str:
  s = rec["spread"]
  extra = ""
  if "threads" in rec:
    extra = f"  threads={rec['threads']} (" + ", ".join(
        f"{k}: {_fmt_rate(v)}" for k, v in rec["by_threads"].items()) + ")"
  if "models" in rec and rec["models"] > 1:
    extra += f"  {rec['models']} models, {rec['steps_per_call']} steps/call"
  elif "steps_per_call" in rec:
    extra += f"  {rec['steps_per_call']} steps/call"
  return (f"{rec['variant']:<16s} B={rec['batch']:<5d} T={rec['T']} H={rec['H']}: "
          f"{_fmt_rate(rec['samples_per_s']):>10s} samples/s "
          f"[{_fmt_rate(s['min'])}..{_fmt_rate(s['max'])}]  {rec['gflops']:7.1f} GFLOP/s "
          f"{rec['pct_peak']:5.1f}% of peak{extra}")


def _add_ratios(records: list[dict]) -> None:
  """Adds ``vs_torch`` (throughput / torch's, same cell) to every JAX training record and
  ``vs_fused`` (the 16 models' throughput / one model's fused throughput) to vmap16's."""
  by = {(r["variant"], r["batch"], r["T"], r["H"]): r for r in records}
  for r in records:
    cell = (r["batch"], r["T"], r["H"])
    torch_rec = by.get(("torch",) + cell)
    if r["variant"] not in ("torch", "forward") and torch_rec:
      r["vs_torch"] = r["samples_per_s"] / torch_rec["samples_per_s"]
    if r["variant"] == "vmap16":
      fused = by.get(("fused",) + cell)
      r["vs_fused"] = r["samples_per_s"] / fused["samples_per_s"] if fused else None


def devices_sweep(cfg: BenchConfig, out=None) -> list[dict]:
  """Training throughput (``autodiff`` step, batch sharded over a ``'data'`` mesh, parameters
  replicated: ``rnn_jax.parallel``) for 1, 2, 4, ... local devices, at every B divisible."""
  n_all = jax.device_count()
  counts = sorted({min(2 ** i, n_all) for i in range(n_all.bit_length() + 1)})
  if n_all == 1:
    _print("devices sweep: 1 device only; simulate more on a CPU with "
           "XLA_FLAGS=--xla_force_host_platform_device_count=4 (they share the same cores)",
           out)
  rows = []
  for T in cfg.seq_lens:
    for H in cfg.hidden_sizes:
      for B in cfg.batch_sizes:
        for n in counts:
          if B % n:
            continue
          mesh = parallel.data_mesh(n)
          params, xs, ys = problem(cfg, B, T, H)
          opt_state = make_optimizer(cfg).init(params)
          rep, data = parallel.replicated(mesh), parallel.batch_sharding(mesh)
          params, opt_state = parallel.put((params, opt_state), rep)
          xs, ys = parallel.put((xs, ys), data)
          step = parallel.shard_step(train_step_fn(cfg, "autodiff", T), mesh)
          t0 = time.perf_counter()
          step.lower(params, opt_state, xs, ys).compile()
          compile_s = time.perf_counter() - t0
          state = [params, opt_state]

          def call(step=step, state=state, xs=xs, ys=ys):
            o = step(state[0], state[1], xs, ys)
            state[0], state[1] = o[0], o[1]
            return o

          r = measure(Workload("data_parallel", B, call), cfg.seconds, cfg.repeats)
          fps = flops_per_sample(T, H, cfg.input_size, cfg.output_size)
          row = {"variant": "data_parallel", "devices": n, "batch": B, "T": T, "H": H,
                 "samples_per_s": r["samples_per_s"], "spread": r["spread"],
                 "gflops": r["samples_per_s"] * fps / 1e9, "compile_s": compile_s}
          rows.append(row)
          _print(f"devices={n:<3d} B={B:<5d} T={T} H={H}: {_fmt_rate(row['samples_per_s']):>10s}"
                 f" samples/s [{_fmt_rate(r['spread']['min'])}..{_fmt_rate(r['spread']['max'])}]"
                 f"  {row['gflops']:.1f} GFLOP/s", out)
  return rows


def remat_memory(cfg: BenchConfig, out=None) -> list[dict]:
  """Compiled memory of the training step (``autodiff``) with and without ``jax.checkpoint``
  for every T of ``remat_seq_lens``, from XLA's ``compiled.memory_analysis()`` (bytes)."""
  H, B = cfg.hidden_sizes[0], cfg.remat_batch
  rows = []
  for T in cfg.remat_seq_lens:
    params, xs, ys = problem(cfg, B, T, H)
    opt_state = make_optimizer(cfg).init(params)
    for remat in (False, True):
      step = train.make_train_step(make_optimizer(cfg), "autodiff", 1, remat)
      t0 = time.perf_counter()
      ma = jax.jit(step).lower(params, opt_state, xs, ys).compile().memory_analysis()
      compile_s = time.perf_counter() - t0
      temp, arg = int(ma.temp_size_in_bytes), int(ma.argument_size_in_bytes)
      outb, alias = int(ma.output_size_in_bytes), int(ma.alias_size_in_bytes)
      row = {"T": T, "batch": B, "H": H, "remat": remat, "temp_bytes": temp,
             "argument_bytes": arg, "output_bytes": outb, "alias_bytes": alias,
             "peak_bytes": temp + arg + outb - alias, "compile_s": compile_s}
      rows.append(row)
      _print(f"memory T={T:<5d} B={B} H={H} remat={str(remat):<5s}: temp {temp:>12,d} B, "
             f"arguments {arg:>10,d} B, outputs {outb:>10,d} B, peak {row['peak_bytes']:>12,d} B",
             out)
  return rows


def plot(result: dict, path) -> None:
  """PNG of training throughput against batch size, one line per variant, one panel per
  (T, H), with the matmul peak converted to windows/s drawn in (atomic write)."""
  from matplotlib.figure import Figure
  records = result["records"]
  shapes = sorted({(r["T"], r["H"]) for r in records}) or [(0, 0)]
  fig = Figure(figsize=(6.4 * len(shapes), 4.8))
  axes = fig.subplots(1, len(shapes), squeeze=False)[0]
  for ax, (T, H) in zip(axes, shapes):
    rows = [r for r in records if (r["T"], r["H"]) == (T, H)]
    for variant in VARIANTS:
      pts = sorted((r["batch"], r["samples_per_s"]) for r in rows if r["variant"] == variant)
      if pts:
        b, s = zip(*pts)
        ax.plot(b, s, marker="o", ls="--" if variant == "forward" else "-", label=variant)
    pk = sorted((p["batch"], p["gflops"]) for p in result["peaks"]
                if (p["T"], p["H"]) == (T, H))
    if pk and rows:
      D, K = rows[0]["D"], rows[0]["K"]
      b, g = zip(*pk)
      for training, style, label in ((True, "k-", "peak (training FLOPs)"),
                                     (False, "k:", "peak (forward FLOPs)")):
        fps = flops_per_sample(T, H, D, K, training=training)
        ax.plot(b, [x * 1e9 / fps for x in g], style, lw=2, alpha=0.6, label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size B")
    ax.set_ylabel("windows / s (vmap16: all 16 models)")
    ax.set_title(f"T={T}, H={H}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
  dev = result.get("device", {})
  fig.suptitle(f"rnn_jax training throughput on {dev.get('kind', '?')} "
               f"({dev.get('host_cpu', '')})", fontsize=10)
  fig.tight_layout()
  with fileio.atomic_path(path) as tmp:
    fig.savefig(tmp, format="png", dpi=110)


def run(cfg: BenchConfig, json_path=None, plot_path=None, out=None) -> dict:
  """The whole benchmark: device and versions first, the cells, the optional sweeps, then the
  JSON and PNG, each written atomically at the end.

  JSON: ``{"device", "versions", "config", "flops_per_sample", "peaks": [{batch, T, H, gflops,
  unroll, spread}], "peaks_batched", "records": [{variant, batch, T, H, D, K, samples_per_s,
  gflops, pct_peak, compile_s, spread: {min, q1, q3, max}, repeats, calls_per_repeat,
  flops_per_sample, ...}], "devices_sweep", "remat_memory", "elapsed_s"}``.
  """
  json_path = check_output_path("--json", json_path)
  plot_path = check_output_path("--plot", plot_path)
  started = time.perf_counter()
  dev, vers = device_info(), versions()
  _print(f"device: {dev['kind']} ({dev['platform']}), {dev['count']} device(s); host "
         f"{dev['host_cpu']}, {dev['host_cores']} cores", out)
  _print("versions: " + ", ".join(f"{k} {v}" for k, v in vers.items()), out)
  _print(f"FLOPs per window: training {FLOP_FORMULAS['training']}, forward "
         f"{FLOP_FORMULAS['forward']} (matrix products only)", out)
  result = {"device": dev, "versions": vers, "config": cfg.to_dict(),
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "flops_per_sample": dict(FLOP_FORMULAS)}
  result.update(run_cells(cfg, out))
  result["devices_sweep"] = devices_sweep(cfg, out) if cfg.devices_sweep else None
  result["remat_memory"] = remat_memory(cfg, out) if cfg.remat_memory else None
  result["elapsed_s"] = time.perf_counter() - started
  summary(result, out)
  if json_path is not None:
    fileio.write_json(json_path, result)
    _print(f"wrote {json_path}", out)
  if plot_path is not None:
    plot(result, plot_path)
    _print(f"wrote {plot_path}", out)
  return result


def summary(result: dict, out=None) -> None:
  """The table: samples/s and % of peak per variant and batch, ratios to torch and vmap16's."""
  records = result["records"]
  if not records:
    return
  _print("", out)
  _print("summary (samples/s, % of the [B,H]x[H,H] chain peak; x torch = ratio to torch's best)",
         out)
  for r in records:
    extra = ""
    if r.get("vs_torch") is not None:
      extra += f"  {r['vs_torch']:.2f}x torch"
    if r.get("vs_fused") is not None:
      extra += f"  {r['vs_fused']:.2f}x one model fused"
    _print(f"  {r['variant']:<16s} B={r['batch']:<5d} T={r['T']} H={r['H']}: "
           f"{_fmt_rate(r['samples_per_s']):>10s}  {r['pct_peak']:5.1f}%{extra}", out)
  _print(f"total {result['elapsed_s']:.0f} s", out)


# --------------------------------------------------------------------------- command line

def add_arguments(parser) -> None:
  """The benchmark's flags on an ``rnn_jax.cli.ArgumentParser``."""
  from rnn_jax.common import cli
  cli.add_config_flags(parser, BenchConfig)
  parser.add_argument("--devices-sweep", action="store_true", dest="flag_devices_sweep",
                      help="also time data-parallel training against the number of devices")
  parser.add_argument("--remat-memory", action="store_true", dest="flag_remat_memory",
                      help="also report compiled peak memory for T in --remat-seq-lens with "
                           "and without jax.checkpoint")
  parser.add_argument("--json", metavar="FILE", help="write every record as JSON here")
  parser.add_argument("--plot", metavar="FILE", help="write a PNG of throughput against B here")


def config_from_args(args) -> BenchConfig:
  from rnn_jax.common import cli
  return cli.config_from_args(BenchConfig, args, devices_sweep=bool(args.flag_devices_sweep),
                              remat_memory=bool(args.flag_remat_memory))

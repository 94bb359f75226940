"""Each variant's workload, compiled, data on device (docs/benchmarking.md): ``rnn_jax.train``'s
step or fused epoch, flax's ``nn.RNN``, ``torch.nn.RNN`` (optional), training's optimizer."""
from __future__ import annotations

import importlib.util
import os
from typing import Callable

import jax
import numpy as np
import optax

from rnn_jax import train
from rnn_jax.bench.config import MODELS, BenchConfig, fused_steps, make_optimizer
from rnn_jax.bench.timing import Workload, compile_timed, measure
from rnn_jax.core import model, precision
from rnn_jax.testing import rnn_problem


def problem(cfg: BenchConfig, batch: int, T: int, H: int, n: int | None = None):
  """``(params, xs [n,T,D], ys [n,K])`` in float32 on the device (``n`` defaults to ``batch``):
  the gradient checks' draw, inputs N(0, 1), targets uniform in [0, 1], N(0, 1/fan_in) weights."""
  drawn = rnn_problem((cfg.seed, 0), T=T, H=H, D=cfg.input_size, K=cfg.output_size,
                      B=batch if n is None else n, dtype=np.float32)
  return jax.block_until_ready(jax.device_put(drawn))


def fused_inputs(cfg: BenchConfig, batch: int, T: int, H: int, models: int | None = None):
  """``((params, opt_state, xs [S*B,T,D], ys, perm), S)`` of one fused call on the device; with
  ``models``, params (model i from ``(seed + 1, i)``), opt_state and ``perm [M,S*B]`` per model."""
  S = fused_steps(cfg, batch)
  params, xs, ys = problem(cfg, batch, T, H, n=S * batch)
  rng = np.random.default_rng([cfg.seed, 1])
  if models is None:
    perm = rng.permutation(S * batch).astype(np.int32)
  else:
    each = [rnn_problem((cfg.seed + 1, i), T=1, H=H, D=cfg.input_size, K=cfg.output_size, B=1,
                        dtype=np.float32)[0] for i in range(models)]
    params = jax.tree.map(lambda *a: np.stack([np.asarray(x) for x in a]), *each)
    perm = np.stack([rng.permutation(S * batch) for _ in range(models)]).astype(np.int32)
  init = make_optimizer(cfg).init
  opt_state = jax.jit(init if models is None else jax.vmap(init))(params)
  return jax.block_until_ready(jax.device_put((params, opt_state, xs, ys, perm))), S


def flax_module(H: int, K: int):
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


def training_workload(variant, fn, params, opt_state, *data, samples: int,
                      info: dict | None = None) -> Workload:
  """A compiled training call whose parameters and optimizer state feed the next call."""
  jitted, compile_s = compile_timed(fn, params, opt_state, *data)
  state = [params, opt_state]

  def call():
    out = jitted(state[0], state[1], *data)
    state[0], state[1] = out[0], out[1]
    return out

  return Workload(variant, samples, call, compile_s=compile_s, info=info or {})


def program(cfg: BenchConfig, variant: str, batch: int, T: int, H: int
            ) -> tuple[Callable, tuple, dict]:
  """``(fn, args, info)``: the program one JAX cell (every variant but ``torch``) times, traced
  at ``cfg.precision``, with its data on the device; ``info["samples"]`` windows per call,
  ``steps_per_call`` and ``models`` for the fused ones. tests/accelerators lowers each for GPU
  and TPU."""
  opt = make_optimizer(cfg)
  if variant in ("autodiff", "autodiff_unroll", "hand"):
    params, xs, ys = problem(cfg, batch, T, H)
    step = train.make_train_step(opt, "hand" if variant == "hand" else "autodiff",
                                 T if variant == "autodiff_unroll" else 1,
                                 precision=cfg.precision)
    return step, (params, jax.device_put(opt.init(params)), xs, ys), {"samples": batch}
  if variant in ("fused", "hand_fused", "vmap16"):
    # vmap16 as train.fit_many: parameters, optimizer state and order per model, the data shared
    models = MODELS if variant == "vmap16" else None
    epoch = train.make_epoch_fn(opt, batch, "hand" if variant == "hand_fused" else cfg.grad,
                                precision=cfg.precision)
    epoch = epoch if models is None else jax.vmap(epoch, in_axes=(0, 0, None, None, 0))
    args, S = fused_inputs(cfg, batch, T, H, models)
    return epoch, args, {"samples": (models or 1) * S * batch, "steps_per_call": S,
                         "models": models or 1}
  if variant == "flax":
    params, xs, ys = problem(cfg, batch, T, H)
    module, variables = flax_module(H, cfg.output_size), jax.device_put(flax_params(params))

    def step(variables, opt_state, xs, ys):                  # our loss and optimizer
      loss = lambda v: model.bce_from_logits(module.apply(v, xs), ys)
      value, grads = jax.value_and_grad(loss)(variables)
      updates, opt_state = opt.update(grads, opt_state, variables)
      return optax.apply_updates(variables, updates), opt_state, value

    return (precision.with_precision(step, cfg.precision),
            (variables, jax.device_put(opt.init(variables)), xs, ys), {"samples": batch})
  if variant == "forward":
    params, xs, _ = problem(cfg, batch, T, H)
    return precision.with_precision(model.forward, cfg.precision), (params, xs), {
        "samples": batch}
  raise ValueError(f"variant: no JAX workload for {variant!r}")


def build(cfg: BenchConfig, variant: str, batch: int, T: int, H: int) -> Workload:
  """The workload of one JAX cell (``program``), compiled: training calls feed their parameters
  and optimizer state to the next, forward calls are independent."""
  fn, args, info = program(cfg, variant, batch, T, H)
  samples = info.pop("samples")
  if variant == "forward":
    jitted, compile_s = compile_timed(fn, *args)
    return Workload(variant, samples, lambda: jitted(*args), independent=True,
                    compile_s=compile_s)
  return training_workload(variant, fn, *args, samples=samples, info=info)


def torch_available() -> bool:
  return importlib.util.find_spec("torch") is not None


def torch_device(backend: str | None = None, cuda: bool | None = None) -> str:
  """``"cuda"`` if JAX's ``backend`` is a GPU and torch sees ``cuda`` (defaults: JAX's, torch's)."""
  if (jax.default_backend() if backend is None else backend) != "gpu":
    return "cpu"
  if cuda is None:
    import torch
    cuda = torch.cuda.is_available()
  return "cuda" if cuda else "cpu"


class TorchPeer:
  """``nn.RNN(nonlinearity="relu", batch_first=True)`` + ``nn.Linear`` with our parameters
  (``weight_ih = V``, ``weight_hh = U``, ``bias_ih = b``, ``bias_hh = 0`` frozen), BCE with
  logits summed over K, mean over B, Adam or SGD, ``clip_grad_norm_`` if ``clip > 0``."""

  def __init__(self, cfg: BenchConfig, params: model.RNNParams, xs, ys, device: str | None = None):
    import torch
    self.torch = torch
    self.device = torch_device() if device is None else device
    D, H, K = model.param_sizes(params)
    self.rnn = torch.nn.RNN(D, H, nonlinearity="relu", batch_first=True)
    self.head = torch.nn.Linear(H, K)
    with torch.no_grad():
      for p, value in ((self.rnn.weight_ih_l0, params.V), (self.rnn.weight_hh_l0, params.U),
                       (self.rnn.bias_ih_l0, params.b), (self.head.weight, params.W),
                       (self.head.bias, params.c)):
        p.copy_(torch.from_numpy(np.array(value)))
      self.rnn.bias_hh_l0.zero_()
    # One bias, as in our cell: with both trained, Adam would move b = b_ih + b_hh twice as far.
    self.rnn.bias_hh_l0.requires_grad_(False)
    self.rnn.to(self.device)
    self.head.to(self.device)
    self.parameters = [p for m in (self.rnn, self.head) for p in m.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.SGD
    self.opt = optimizer(self.parameters, lr=cfg.lr)
    self.clip = cfg.clip
    self.xs, self.ys = (torch.from_numpy(np.array(a)).to(self.device) for a in (xs, ys))

  def step(self):
    """One optimizer step; returns the loss at the incoming parameters (a float tensor)."""
    self.opt.zero_grad(set_to_none=True)
    _, h = self.rnn(self.xs)                                 # h: [1, B, H], the last state
    loss = self.torch.nn.functional.binary_cross_entropy_with_logits(
        self.head(h[0]), self.ys, reduction="none").sum(dim=1).mean()
    loss.backward()
    if self.clip > 0:
      self.torch.nn.utils.clip_grad_norm_(self.parameters, self.clip)
    self.opt.step()
    return loss.detach()

  def params(self) -> model.RNNParams:
    """The current parameters in our layout (``bias_ih + bias_hh`` as b)."""
    t = lambda x: x.detach().cpu().numpy().copy()
    return model.RNNParams(U=t(self.rnn.weight_hh_l0), V=t(self.rnn.weight_ih_l0),
                           b=t(self.rnn.bias_ih_l0) + t(self.rnn.bias_hh_l0),
                           W=t(self.head.weight), c=t(self.head.bias))


def torch_block(torch, device: str) -> Callable:
  """What timing waits on for a torch step's output: the loss as a Python float, after
  ``torch.cuda.synchronize()`` on CUDA, where kernels run asynchronously (the step's optimizer
  kernels are queued after the loss)."""
  if device == "cuda":
    def block(out):
      torch.cuda.synchronize()
      return out.item()
    return block
  return lambda out: out.item()


def torch_workload(cfg: BenchConfig, batch: int, T: int, H: int) -> Workload:
  peer = TorchPeer(cfg, *problem(cfg, batch, T, H))
  return Workload("torch", batch, peer.step, block=torch_block(peer.torch, peer.device),
                  info={"peer": peer, "device": peer.device})


def torch_threads() -> list[int]:
  return sorted({1, os.cpu_count() or 1})


def torch_precision(cfg: BenchConfig, device: str) -> str:
  """The float32 products the torch peer computes: "tf32" on CUDA unless ``cfg.precision`` is
  "highest" (torch has TF32 switches for cuBLAS and cuDNN, no bf16 one for float32 tensors),
  IEEE float32 ("highest") on a CPU."""
  return "highest" if device == "cpu" or cfg.precision == "highest" else "tf32"


def measure_torch(cfg: BenchConfig, batch: int, T: int, H: int) -> dict:
  """The torch peer's best over ``torch_threads`` (one on CUDA: host threads only launch), its
  TF32 switches (``torch.backends.cuda.matmul.allow_tf32``, ``torch.backends.cudnn.allow_tf32``)
  set to ``torch_precision`` for the run and restored after."""
  import torch
  before, device, by_threads = torch.get_num_threads(), torch_device(), {}
  switches = (torch.backends.cuda.matmul, torch.backends.cudnn)
  tf32_before = [s.allow_tf32 for s in switches]
  mine = torch_precision(cfg, device)
  try:
    for s in switches:
      s.allow_tf32 = mine == "tf32"
    for n in (torch_threads() if device == "cpu" else [before]):
      torch.set_num_threads(n)
      by_threads[n] = measure(torch_workload(cfg, batch, T, H), cfg.seconds, cfg.repeats)
  finally:
    torch.set_num_threads(before)
    for s, value in zip(switches, tf32_before):
      s.allow_tf32 = value
  best = max(by_threads, key=lambda n: by_threads[n]["samples_per_s"])
  return dict(by_threads[best], threads=best, device=device, precision=mine,
              by_threads={str(n): r["samples_per_s"] for n, r in by_threads.items()})

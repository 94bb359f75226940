"""The PyTorch peer: ``torch.nn.RNN(nonlinearity="relu")`` + ``nn.Linear`` with our parameters,
BCE-with-logits summed over K and averaged over B, ``torch.optim.Adam`` (+ ``clip_grad_norm_``),
eager. On the CPU it is timed with 1 thread and with all cores and the better is reported; when
JAX runs on a GPU and torch sees CUDA it runs there, where ``nn.RNN`` is cuDNN's RNN.
torch is optional (``pip install '.[torch]'``) and imported only when used.
"""
from __future__ import annotations

import os

import jax
import numpy as np

from rnn_jax.bench.config import BenchConfig
from rnn_jax.bench.timing import Workload, measure
from rnn_jax.bench.workloads import problem
from rnn_jax.core import model


def torch_available() -> bool:
  try:
    import torch  # noqa: F401
  except ImportError:
    return False
  return True


def torch_device(backend: str | None = None, cuda: bool | None = None) -> str:
  """``"cuda"`` when JAX's ``backend`` (default: JAX's own) is a GPU and torch sees ``cuda``
  (default: ``torch.cuda.is_available()``), so both share the device; otherwise ``"cpu"``."""
  backend = jax.default_backend() if backend is None else backend
  if backend != "gpu":
    return "cpu"
  if cuda is None:
    import torch
    cuda = torch.cuda.is_available()
  return "cuda" if cuda else "cpu"


class TorchPeer:
  """``nn.RNN(nonlinearity="relu", batch_first=True)`` + ``nn.Linear`` with our parameters
  (``weight_ih = V``, ``weight_hh = U``, ``bias_ih = b``, ``bias_hh = 0`` and frozen), Adam or
  SGD with ``clip_grad_norm_`` when ``clip > 0``; data and parameters on ``device`` first."""

  def __init__(self, cfg: BenchConfig, params: model.RNNParams, xs, ys, device: str | None = None):
    import torch
    self.torch = torch
    self.device = torch_device() if device is None else device
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
    self.rnn.to(self.device)
    self.head.to(self.device)
    self.parameters = [p for p in list(self.rnn.parameters()) + list(self.head.parameters())
                       if p.requires_grad]
    optimizer = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.SGD
    self.opt = optimizer(self.parameters, lr=cfg.lr)
    self.clip = cfg.clip
    self.xs = torch.from_numpy(np.array(xs)).to(self.device)
    self.ys = torch.from_numpy(np.array(ys)).to(self.device)

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
    t = lambda x: x.detach().cpu().numpy().copy()
    return model.RNNParams(U=t(self.rnn.weight_hh_l0), V=t(self.rnn.weight_ih_l0),
                           b=t(self.rnn.bias_ih_l0) + t(self.rnn.bias_hh_l0),
                           W=t(self.head.weight), c=t(self.head.bias))


def torch_workload(cfg: BenchConfig, batch: int, T: int, H: int) -> Workload:
  params, xs, ys = problem(cfg, batch, T, H)
  peer = TorchPeer(cfg, params, xs, ys)
  # The loss as a Python float waits for the step (on CUDA, where kernels run asynchronously).
  return Workload("torch", batch, peer.step, block=lambda out: out.item(),
                  info={"peer": peer, "device": peer.device})


def torch_threads() -> list[int]:
  """The thread settings to try: 1 and all cores (one setting on a 1-core machine)."""
  return sorted({1, os.cpu_count() or 1})


def measure_torch(cfg: BenchConfig, batch: int, T: int, H: int) -> dict:
  """The torch peer timed at every ``torch_threads`` setting (once on CUDA, where the host's
  threads only launch kernels); the best, with ``threads``, ``by_threads`` and ``device``."""
  import torch
  before = torch.get_num_threads()
  device = torch_device()
  by_threads = {}
  try:
    for n in (torch_threads() if device == "cpu" else [before]):
      torch.set_num_threads(n)
      by_threads[n] = measure(torch_workload(cfg, batch, T, H), cfg.seconds, cfg.repeats)
  finally:
    torch.set_num_threads(before)
  best = max(by_threads, key=lambda n: by_threads[n]["samples_per_s"])
  return dict(by_threads[best], threads=best, device=device,
              by_threads={str(n): r["samples_per_s"] for n, r in by_threads.items()})

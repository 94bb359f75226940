"""The flax and PyTorch peers (``rnn_jax.bench.workloads``) are the same model, with our
parameters mapped into their layouts, and train like the plain optax step."""
from __future__ import annotations

import numpy as np
import pytest

from bench_reference import B, CFG, H, T, TOL, close, reference_step  # noqa: F401 (fixture)
from rnn_jax import bench as bm
from rnn_jax.core import model


def test_flax_peer_is_the_same_model_and_trains_the_same(reference_step):  # noqa: F811
  ref, opt = reference_step
  params, xs, ys = bm.problem(CFG, B, T, H)
  variables = bm.flax_params(params)
  module = bm.flax_module(H, CFG.output_size)
  np.testing.assert_allclose(module.apply(variables, xs), model.forward(params, xs), **TOL)
  work = bm.build(CFG, "flax", B, T, H)
  state = (params, opt.init(params))
  for _ in range(2):
    out = work.call()
    p, s, loss = ref(*state, xs, ys)
    state = (p, s)
    np.testing.assert_allclose(out[2], loss, **TOL)
    close(out[0], bm.flax_params(p))


def test_torch_peer_trains_the_same_model(reference_step):  # noqa: F811
  if not bm.torch_available():
    pytest.skip("torch is not installed (optional: pip install '.[torch]')")
  ref, opt = reference_step
  params, xs, ys = bm.problem(CFG, B, T, H)
  work = bm.torch_workload(CFG, B, T, H)
  peer = work.info["peer"]
  state = (params, opt.init(params))
  for _ in range(2):
    loss = work.call()
    p, s, ref_loss = ref(*state, xs, ys)
    state = (p, s)
    np.testing.assert_allclose(float(loss), ref_loss, rtol=1e-5)
  close(peer.params(), p)


def test_torch_runs_where_jax_runs_when_it_can():
  """The torch peer shares JAX's device: CUDA (cuDNN's nn.RNN) only when JAX is on a GPU and
  torch sees CUDA; the CPU otherwise, and always on this CPU-only machine."""
  assert bm.torch_device("gpu", cuda=True) == "cuda"
  assert bm.torch_device("gpu", cuda=False) == "cpu"
  assert bm.torch_device("cpu", cuda=True) == "cpu"
  assert bm.torch_device("tpu", cuda=True) == "cpu"
  if bm.torch_available():
    import jax
    import torch
    expected = "cuda" if jax.default_backend() == "gpu" and torch.cuda.is_available() else "cpu"
    work = bm.torch_workload(CFG, B, T, H)
    assert work.info["device"] == bm.torch_device() == expected
    assert work.info["peer"].xs.device.type == expected
    assert next(work.info["peer"].rnn.parameters()).device.type == expected


class FakeTorch:
  """Records ``torch.cuda.synchronize()`` calls (torch itself is optional)."""
  def __init__(self):
    self.synced = 0
    self.cuda = self

  def synchronize(self):
    self.synced += 1


class FakeLoss:
  def item(self):
    return 0.5


def test_torch_timing_waits_for_the_device():
  """On CUDA each timed torch step ends with torch.cuda.synchronize() before the loss is read;
  on a CPU the loss alone (eager, nothing left running)."""
  fake = FakeTorch()
  assert bm.torch_block(fake, "cuda")(FakeLoss()) == 0.5 and fake.synced == 1
  assert bm.torch_block(fake, "cpu")(FakeLoss()) == 0.5 and fake.synced == 1


def test_torch_precision_follows_the_setting():
  """TF32 on CUDA unless the run asks for "highest"; IEEE float32 on a CPU."""
  cfg = lambda p: bm.BenchConfig(precision=p)
  assert [bm.torch_precision(cfg(p), "cuda") for p in ("highest", "tf32", "bf16", "default")] == [
      "highest", "tf32", "tf32", "tf32"]
  assert {bm.torch_precision(cfg(p), "cpu") for p in ("highest", "tf32", "default")} == {
      "highest"}

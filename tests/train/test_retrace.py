"""Compilations of the project's own compiled functions: what must not recompile does not.

A test that jits its own wrapper and calls it twice with identical arguments passes whatever
rnn_jax does (JAX's cache guarantees it). These count the XLA compilations JAX itself reports
(``jax.monitoring``'s backend-compile event, by function name) while rnn_jax runs: ``train.fit``
and ``fit_many`` (the epoch with its data order and validation loss, commit, init), the train step
fed its own outputs, and the gradient checks' programs (experiments/gradcheck.py). Varied
where nothing may recompile: new data of the same shape, a second model (another seed),
another number of epochs and patience, a resumed run, the next step's state, the kink guard's
step as a Python float. Every test has a positive control (a new shape, or a numpy float where
a Python float was) that does recompile, so the counter is live.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_jax import train
from rnn_jax.core import gradients, model
from rnn_jax.testing import rnn_problem

from conftest import load_script
from train_helpers import BASE, D, H, K, make_data

gradcheck = load_script("gradcheck.py")

BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"


class Compiles:
  """The XLA compilations while the block runs, as the names JAX gives them (``jit(epoch)``).

  Counts every compilation in the process, not only those of one function: "nothing compiled"
  covers eager operations and helpers too.
  """

  def __init__(self):
    self.names: list[str] = []

  def _listen(self, event, duration, **kwargs):
    del duration
    if event == BACKEND_COMPILE:
      self.names.append(str(kwargs.get("fun_name", "?")))

  def __enter__(self):
    jax.monitoring.register_event_duration_secs_listener(self._listen)
    return self

  def __exit__(self, *exc):
    jax.monitoring.unregister_event_duration_listener(self._listen)

  def of(self, name: str) -> int:
    """How many compilations of the function called ``name`` (``jit(name)``)."""
    return self.names.count(f"jit({name})")


def test_the_counter_counts():
  f = jax.jit(lambda x: x * 2)
  with Compiles() as c:
    f(jnp.ones(3))
    f(jnp.ones(3))
    f(jnp.ones(4))
  assert c.of("<lambda>") == 2 and len(c.names) >= 2


CFG = dataclasses.replace(BASE, epochs=4)
N = 40


def _fit(cfg, n=N, seed=0, **kwargs):
  xs, ys = make_data(n, seed)
  return train.fit(cfg, (xs, ys), make_data(12, seed + 1), progress=False, **kwargs)


def test_fit_compiles_each_program_once_and_a_second_fit_nothing(tmp_path):
  jax.clear_caches()             # so "once" is measured here, not inherited from another test
  with Compiles() as first:
    _fit(CFG, out_dir=tmp_path / "a", seed=0)
  # 4 epochs, each fed the last one's parameters and optimizer state: one compilation each
  for name in ("train_epoch", "commit", "init_state"):
    assert first.of(name) == 1, (name, first.names)
  # new data of the same shape, another seed (a second model), epochs and patience, a
  # checkpoint written: nothing at all compiles
  with Compiles() as second:
    _fit(dataclasses.replace(CFG, seed=7, epochs=3, patience=2), out_dir=tmp_path / "b",
         seed=5)
  assert second.names == []
  # resuming from a checkpoint (state read back from the file) compiles nothing either
  with Compiles() as resumed:
    _fit(dataclasses.replace(CFG, seed=7, epochs=5, patience=2), out_dir=tmp_path / "b",
         seed=5, resume=True)
  assert resumed.names == []
  # positive control: another number of windows is another shape of the epoch's inputs
  with Compiles() as other:
    _fit(CFG, n=N + 8, seed=0)
  assert other.of("train_epoch") == 1


def test_fit_many_second_run_compiles_nothing():
  cfg = dataclasses.replace(CFG, seeds=2, epochs=2)
  xs, ys = make_data(N, 0)
  jax.clear_caches()
  with Compiles() as first:
    train.fit_many(cfg, (xs, ys), make_data(12, 1), progress=False)
  assert first.of("train_epoch") == 1
  xs2, ys2 = make_data(N, 3)
  with Compiles() as second:
    train.fit_many(dataclasses.replace(cfg, seed=11, epochs=3), (xs2, ys2), make_data(12, 4),
                   progress=False)
  assert second.names == []


def _params(seed, dtype):
  rng = np.random.default_rng(seed)
  draw = lambda *shape: rng.normal(0, 1 / np.sqrt(shape[-1]), shape)
  p = model.RNNParams(U=draw(H, H), V=draw(H, D), b=np.zeros(H), W=draw(K, H), c=np.zeros(K))
  return jax.tree.map(lambda a: jnp.asarray(a, dtype), p)


def _batch(seed, B, dtype):
  xs, ys = make_data(B, seed)
  return jnp.asarray(xs, dtype), jnp.asarray(ys, dtype)


def _steps_compile_once(cfg, dtype):
  """``make_train_step`` jitted, run as training runs it (each step fed the last one's state),
  then on a second model and new data: the number of its compilations, and a control's."""
  step = jax.jit(train.make_train_step(cfg))
  opt = train.make_optimizer(cfg)
  params = _params(0, dtype)
  state = opt.init(params)
  with Compiles() as c:
    for i in range(3):
      params, state, loss, finite = step(params, state, *_batch(i, 8, dtype))
    other = _params(1, dtype)                           # a second model, fresh optimizer state
    step(other, opt.init(other), *_batch(9, 8, dtype))
  assert bool(finite) and np.isfinite(float(loss))
  cached = step._cache_size()                           # jit's own count of its programs
  with Compiles() as control:                           # another batch size: another shape
    step(params, state, *_batch(0, 4, dtype))
  return c.of("step"), cached, control.of("step")


# Both optimizers (plain SGD has no state; adam's carries a step count) and both gradients.
@pytest.mark.parametrize("optimizer,clip,method", [("sgd", 0.0, gradients.METHODS[0]),
                                                   ("adam", 1.0, gradients.METHODS[1])])
def test_train_step_compiles_once(optimizer, clip, method):
  cfg = dataclasses.replace(CFG, optimizer=optimizer, clip=clip, grad=method)
  assert _steps_compile_once(cfg, jnp.float32) == (1, 1, 1)


def test_train_step_compiles_once_under_x64(x64):
  """float64 parameters: adam's step count and every moment keep their dtype and weak type
  through the update (a drift there retraces every second step)."""
  cfg = dataclasses.replace(CFG, optimizer="adam", clip=1.0)
  assert _steps_compile_once(cfg, jnp.float64) == (1, 1, 1)


def test_gradient_checks_compile_once_per_shape(x64):
  sizes = dict(T=3, H=4, D=1, K=2, B=2)
  with Compiles():
    gradcheck.check_rnn("float64", seed=0, **sizes)
    gradcheck.check_mlp("float64", d=3, H=4, K=3, B=2, seed=0)
  with Compiles() as again:          # new draws, new guarded steps: the same programs
    gradcheck.check_rnn("float64", seed=1, **sizes)
    gradcheck.check_mlp("float64", d=3, H=4, K=3, B=2, seed=1)
  assert again.names == []
  with Compiles() as control:        # another window length: the hand program compiles anew
    gradcheck._rnn_hand(*rnn_problem(0, **dict(sizes, T=4)))
  assert control.of("loss_and_grads") == 1


def test_kink_guard_step_is_a_python_float(x64):
  """guarded_step shrinks the step near a kink; the shrunk step is a Python float like the
  default, so the compiled guard is reused. A numpy float64 (strongly typed where a Python
  float is weak) does recompile: that is what the first half rules out."""
  params, xs, _ = rnn_problem(0, T=5, H=4, D=2, K=3, B=3)
  directions, _ = gradcheck.probe_directions(params, 0)   # unit directions shaped like params
  near = xs.at[:, 0].set(2e-6)       # every A_1 ~ 2e-6: too close for eps = 1e-6
  gradcheck.guarded_step(params, xs, directions)
  with Compiles() as c:
    guard, step = gradcheck.guarded_step(params, near, directions, 1e-6, 1e-9)
    gradcheck.guarded_step(params, xs, directions)
  assert guard.ok and step < 1e-6 and type(step) is float
  assert c.names == []
  with Compiles() as control:
    gradcheck.kink_guard(params, xs, np.float64(1e-6), directions=directions)
  assert control.of("_direction_guard") == 1

"""The compiled functions of a run (``Programs``), built by ``build`` once per (settings, batch,
one or many models) and cached, so later runs of the same shapes in a process reuse them; with
several devices each is replicated over the data mesh (rnn_jax.train.parallel)."""
from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import optax

from rnn_jax.core import model
from rnn_jax.train import parallel, state
from rnn_jax.train.config import TrainConfig, make_optimizer
from rnn_jax.train.step import init_models, make_epoch_fn, permutation


class Programs(NamedTuple):
  """The compiled functions of a run; cached, so later runs of the same shapes reuse them."""
  optimizer: optax.GradientTransformation
  init: Callable        # (seeds [S] int32, D=, K=, dtype=) -> (params [S,...], data_keys [S,2])
  opt_init: Callable    # params -> opt_state
  perm: Callable        # (data_keys [S, 2], epoch) -> [S, N] (vmapped) or [N]
  epoch: Callable       # make_epoch_fn, vmapped over models when vmapped
  val_loss: Callable    # (params, xs, ys) -> [S] or []
  commit: Callable      # rnn_jax.train.state.commit
  put: Callable         # places a pytree of host arrays (replicated over the mesh)
  mesh: Any


def _perm_one(keys, epoch, n):
  return permutation(keys[0], epoch, n)


def _perm_many(keys, epoch, n):
  return jax.vmap(permutation, in_axes=(0, None, None))(keys, epoch, n)


def _val_loss_many(params, xs, ys):
  return jax.vmap(model.loss, in_axes=(0, None, None))(params, xs, ys)


@functools.lru_cache(maxsize=None)
def _jit(fn: Callable, n_dev: int, static: tuple = ()) -> Callable:
  """``jax.jit(fn)``, replicated over ``n_dev`` devices when > 1; one per (fn, n_dev), so
  every run in a process shares the compiled code of the same shapes."""
  if n_dev <= 1:
    return jax.jit(fn, static_argnames=static)
  return parallel.jit_replicated(fn, parallel.data_mesh(n_dev), static)


@functools.lru_cache(maxsize=32)
def build(cfg: TrainConfig, batch: int, vmapped: bool) -> Programs:
  """The jitted pieces of a run (once per distinct key); ``cfg.devices`` is a device count."""
  n_dev = cfg.devices
  optimizer = make_optimizer(cfg)
  mesh = parallel.data_mesh(n_dev) if n_dev > 1 else None
  epoch = make_epoch_fn(optimizer, batch, cfg.grad, cfg.unroll, cfg.remat, mesh=mesh)
  opt_init = optimizer.init
  if vmapped:
    epoch = jax.vmap(epoch, in_axes=(0, 0, None, None, 0))
    opt_init = jax.vmap(opt_init)
  put = jax.device_put if mesh is None else functools.partial(
      parallel.put, sharding=parallel.replicated(mesh))
  return Programs(
      optimizer=optimizer,
      init=functools.partial(init_models, H=cfg.hidden_size, scheme=cfg.init),
      opt_init=jax.jit(opt_init),
      perm=_jit(_perm_many if vmapped else _perm_one, 1, ("n",)),
      epoch=_jit(epoch, n_dev),
      val_loss=_jit(_val_loss_many if vmapped else model.loss, n_dev),
      commit=_jit(state.commit, n_dev), put=put, mesh=mesh)

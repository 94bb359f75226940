"""The compiled pieces of training, all pure: one optax step, one epoch fused into a ``lax.scan``,
the data order of every epoch, and the initial parameters of one or many models.

* ``make_train_step(optimizer, method, unroll, remat)``: one pure optimizer step; the step the
  benchmark times. ``method`` picks the gradient: autodiff through the scan or the hand BPTT
  (rnn_jax.core.gradients).
* ``make_epoch_fn(optimizer, batch_size, ...)``: one epoch as a single ``lax.scan`` over the
  minibatches of a permutation of the device-resident training set. The permutation is an input
  (same shape every epoch), so the epoch compiles once. Per-step flags say whether each step's
  loss and gradient were finite.

Data order: epoch e (1-based) visits the training windows in the order
``jax.random.permutation(fold_in(data_key, e), N)`` where ``init_key, data_key =
split(PRNGKey(seed))``; consecutive blocks of ``batch_size`` make the steps and the last
``N mod batch_size`` windows of the permutation are DROPPED (a different set each epoch, so every
window is used; dropping keeps every step's batch the same shape, which one compiled program
needs, and keeps the loss an unweighted batch mean for the hand BPTT). When ``batch_size``
exceeds N, the batch is all N windows (rounded down to a multiple of the device count).
"""
from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import optax

from rnn_jax.core import gradients, model
from rnn_jax.train import parallel
from rnn_jax.train.config import TrainConfig, make_optimizer


def all_finite(tree) -> jax.Array:
  """``True`` when every element of every leaf of ``tree`` is finite (a bool scalar)."""
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
  return jnp.stack(leaves).all()


def _step_args(optimizer, method, unroll, remat):
  if isinstance(optimizer, TrainConfig):
    cfg = optimizer
    return make_optimizer(cfg), cfg.grad, cfg.unroll, cfg.remat
  return optimizer, method, unroll, remat


def make_train_step(optimizer: optax.GradientTransformation | TrainConfig,
                    method: str = "autodiff", unroll: int | bool = 1,
                    remat: bool = False) -> Callable:
  """``step(params, opt_state, xs [B,T,D], ys [B,K]) -> (params, opt_state, loss, finite)``.

  Pure (jit it at the call site). ``loss`` is the batch loss at the incoming parameters and
  ``finite`` is True when that loss and every gradient element are finite; the update is
  applied regardless (the caller decides what to keep). Passing a TrainConfig instead of an
  optimizer takes the optimizer, method, unroll and remat from it.
  """
  optimizer, method, unroll, remat = _step_args(optimizer, method, unroll, remat)
  value_and_grad = gradients.value_and_grad(method, unroll=unroll, remat=remat)

  def step(params, opt_state, xs, ys):
    loss, grads = value_and_grad(params, xs, ys)
    finite = jnp.isfinite(loss) & all_finite(grads)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    return params, opt_state, loss, finite

  return step


def make_epoch_fn(optimizer: optax.GradientTransformation | TrainConfig, batch_size: int,
                  method: str = "autodiff", unroll: int | bool = 1, remat: bool = False, *,
                  mesh=None) -> Callable:
  """``epoch(params, opt_state, xs [N,T,D], ys [N,K], perm [N] int) ->
  (params, opt_state, losses [S], finite [S])`` with ``S = N // batch_size`` steps.

  One ``lax.scan`` over the steps of ``make_train_step``; step s trains on
  ``xs[perm[s*B:(s+1)*B]]`` (the remainder of the permutation is dropped). Pure: jit it once
  and call it every epoch with a new ``perm``; nothing about the call changes between epochs, so
  it is traced and compiled once. ``finite[s]`` is the step's flag: from the first False on, the
  returned parameters are not to be used (fit then keeps the state from before the epoch; a
  per-step select to freeze them would cost a pass over parameters and optimizer state every
  step, which shows at small batches). ``mesh`` (train.parallel.data_mesh) shards every
  batch over its devices. ``jax.vmap`` it over (params, opt_state, perm) to train many models.
  """
  optimizer, method, unroll, remat = _step_args(optimizer, method, unroll, remat)
  step = make_train_step(optimizer, method, unroll, remat)
  if int(batch_size) != batch_size or batch_size < 1:
    raise ValueError(f"batch_size: expected a positive integer, got {batch_size!r}")

  def epoch(params, opt_state, xs, ys, perm):
    n_steps = perm.shape[0] // batch_size
    if n_steps < 1:
      raise ValueError(f"perm: {perm.shape[0]} windows make no batch of {batch_size}")
    batches = perm[:n_steps * batch_size].reshape(n_steps, batch_size)

    def body(carry, idx):
      xb = parallel.constrain_batch(xs[idx], mesh)
      yb = parallel.constrain_batch(ys[idx], mesh)
      params, opt_state, loss, finite = step(*carry, xb, yb)
      return (params, opt_state), (loss, finite)

    (params, opt_state), (losses, finite) = jax.lax.scan(body, (params, opt_state), batches)
    return params, opt_state, losses, finite

  return epoch


def effective_batch_size(batch_size: int, n: int, n_devices: int = 1) -> int:
  """``batch_size``, or when it exceeds the ``n`` training windows, ``n`` rounded down to a
  multiple of ``n_devices`` (one batch of everything per epoch)."""
  return batch_size if batch_size <= n else n - n % n_devices


@functools.partial(jax.jit, static_argnames="n")
def permutation(data_key, epoch, n: int) -> jax.Array:
  """The data order of ``epoch`` (1-based): ``permutation(fold_in(data_key, epoch), n)``."""
  return jax.random.permutation(jax.random.fold_in(data_key, epoch), n)


def model_keys(seed: int) -> tuple[jax.Array, jax.Array]:
  """``(init_key, data_key) = split(PRNGKey(seed))``."""
  init_key, data_key = jax.random.split(jax.random.PRNGKey(seed))
  return init_key, data_key


@functools.partial(jax.jit, static_argnames=("D", "H", "K", "scheme", "dtype"))
def init_models(seeds, *, D: int, H: int, K: int, scheme: str = "normal",
                dtype: str = "float32"):
  """``seeds [S] int32 -> (params, data_keys [S, 2])``, every params field ``[S, ...]``.

  Model i is ``model.init_params(init_key, D, H, K, scheme=scheme)`` with ``(init_key,
  data_key) = model_keys(seeds[i])``: the initial parameters of fit (``seeds=[cfg.seed]``) and
  fit_many (``cfg.seed + arange(cfg.seeds)``). One compiled program for all S models.
  """
  def one(seed):
    init_key, data_key = model_keys(seed)
    return model.init_params(init_key, D, H, K, scheme=scheme, dtype=jnp.dtype(dtype)), data_key
  return jax.vmap(one)(seeds)

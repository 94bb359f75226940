"""One switch between JAX's autodiff and the hand BPTT for every caller that trains."""
from __future__ import annotations

from functools import partial
from typing import Callable

import jax

from rnn_jax.core import bptt, model

METHODS = ("autodiff", "bptt")


def loss_fn(method: str = "autodiff", *, unroll: int | bool = 1, remat: bool = False,
            anchor: bool = False) -> Callable:
  """``loss(params, xs, ys)`` whose derivative is autodiff through the scan or the hand BPTT.

  ``anchor=True``: the loss of the network with the skip from the last reading
  (rnn_jax.model.anchor_logit), for both methods.
  """
  if method == "autodiff":
    return partial(model.loss, unroll=unroll, remat=remat, anchor=anchor)
  if method == "bptt":
    return partial(bptt.loss, anchor=True) if anchor else bptt.loss
  raise ValueError(f"method: expected one of {METHODS}, got {method!r}")


def loss_and_grad(method: str = "autodiff", *, unroll: int | bool = 1,
                  remat: bool = False, anchor: bool = False) -> Callable:
  """``f(params, xs, ys) -> (loss, grads)``; ``method`` is "autodiff" or "bptt", same results."""
  return jax.value_and_grad(loss_fn(method, unroll=unroll, remat=remat, anchor=anchor))

"""One switch between JAX's autodiff and the hand-written gradients for every caller that trains.

The gradient choice has one vocabulary in every function and script (``--grad``):

    "autodiff"   JAX's reverse mode through the scan (jax.grad)
    "hand"       the notes' equations written out: the hand BPTT (rnn_jax.bptt) for the RNN,
                 the matrix-form gradients (rnn_jax.mlp) for the letters network

"bptt", the RNN's name for "hand" before the vocabulary was unified, is still accepted.
"""
from __future__ import annotations

from functools import partial
from typing import Callable

import jax

from rnn_jax.core import bptt, model

METHODS = ("autodiff", "hand")
ALIASES = {"bptt": "hand"}


def canonical(method: str) -> str:
  """``method`` in the one vocabulary (``"bptt"`` -> ``"hand"``); ValueError if unknown."""
  method = ALIASES.get(method, method)
  if method not in METHODS:
    raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
  return method


def loss_fn(method: str = "autodiff", *, unroll: int | bool = 1, remat: bool = False,
            anchor: bool = False) -> Callable:
  """``loss(params, xs, ys)`` whose derivative is autodiff through the scan or the hand BPTT.

  ``anchor=True``: the loss of the network with the skip from the last reading
  (rnn_jax.model.anchor_logit), for both methods.
  """
  if canonical(method) == "autodiff":
    return partial(model.loss, unroll=unroll, remat=remat, anchor=anchor)
  return partial(bptt.loss, anchor=True) if anchor else bptt.loss


def loss_and_grad(method: str = "autodiff", *, unroll: int | bool = 1,
                  remat: bool = False, anchor: bool = False) -> Callable:
  """``f(params, xs, ys) -> (loss, grads)``; ``method`` is "autodiff" or "hand" ("bptt"), same
  results."""
  return jax.value_and_grad(loss_fn(method, unroll=unroll, remat=remat, anchor=anchor))

"""One switch between JAX's autodiff and the hand-written gradients, one vocabulary in every
function and script (``--grad``): "autodiff" is JAX's reverse mode through the scan, "hand" the
notes' equations written out (the hand BPTT, rnn_jax.bptt; rnn_jax.mlp for the letters network).
"""
from __future__ import annotations

from functools import partial
from typing import Callable

import jax

from rnn_jax.core import bptt, model

METHODS = ("autodiff", "hand")


def check_method(method: str) -> str:
  """``method`` if it is one of METHODS, else ValueError."""
  if method not in METHODS:
    raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
  return method


def loss_fn(method: str = "autodiff", *, unroll: int | bool = 1, remat: bool = False,
            anchor: bool = False) -> Callable:
  """``loss(params, xs, ys)`` whose derivative is autodiff through the scan or the hand BPTT;
  ``anchor=True``: with the skip from the last reading (rnn_jax.core.model.anchor_logit)."""
  if check_method(method) == "autodiff":
    return partial(model.loss, unroll=unroll, remat=remat, anchor=anchor)
  return partial(bptt.loss, anchor=True) if anchor else bptt.loss


def value_and_grad(method: str = "autodiff", *, unroll: int | bool = 1,
                   remat: bool = False, anchor: bool = False) -> Callable:
  """``f(params, xs, ys) -> (loss, grads)``, as ``jax.value_and_grad(loss_fn(method))``;
  ``method`` is "autodiff" or "hand", the same numbers either way."""
  return jax.value_and_grad(loss_fn(method, unroll=unroll, remat=remat, anchor=anchor))

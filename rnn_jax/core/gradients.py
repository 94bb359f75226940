"""One switch (``--grad``) between "autodiff", JAX's reverse mode through the scan, and "hand",
the notes' equations written out (rnn_jax.bptt; rnn_jax.mlp for the letters network).
"""
from __future__ import annotations

from functools import partial
from typing import Callable

import jax

from rnn_jax.core import bptt, model

METHODS = ("autodiff", "hand")


def check_method(method: str) -> str:
  if method not in METHODS:
    raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
  return method


def loss_fn(method: str = "autodiff", *, unroll: int | bool = 1, remat: bool = False,
            anchor: bool = False, taus=None) -> Callable:
  """``loss(params, xs, ys)`` whose derivative is autodiff or the hand BPTT (``METHODS``).
  ``taus``: K quantile levels for the pinball loss (rnn_jax.core.model.pinball_from_logits),
  None for the notes' cross-entropy."""
  check_method(method)
  taus = model.check_taus(taus)
  if method == "autodiff":
    return partial(model.loss, unroll=unroll, remat=remat, anchor=anchor, taus=taus)
  if not anchor and taus is None:
    return bptt.loss
  return partial(bptt.loss, anchor=anchor, taus=taus)


def value_and_grad(method: str = "autodiff", *, unroll: int | bool = 1,
                   remat: bool = False, anchor: bool = False, taus=None) -> Callable:
  """``jax.value_and_grad(loss_fn(method))``: the same numbers for either method."""
  return jax.value_and_grad(loss_fn(method, unroll=unroll, remat=remat, anchor=anchor,
                                    taus=taus))

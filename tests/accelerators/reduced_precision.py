"""Reduced-precision matrix products on a CPU: what a GPU's TF32 or a TPU's bf16 pass does to
float32 products, emulated by rounding their operands.

XLA:CPU computes every float32 product in IEEE float32 whatever ``jax.default_matmul_precision``
asks, so the tolerances for TF32 and bf16 (rnn_jax.testing.TOLERANCES) cannot be tried there as
such. ``rounded(fn, mantissa_bits)`` traces ``fn`` to a jaxpr and evaluates it with every
``dot_general`` (inside scans, jits and the rest, at any depth) fed operands rounded to
``mantissa_bits`` explicit bits by ``lax.reduce_precision`` (exponent bits 8, as float32); the
products still accumulate in float32, as on tensor cores. Applied to ``jax.grad(model.loss)`` it
rounds autodiff's forward and backward products alike; applied to the hand BPTT it rounds the
notes' products (``h_{t-1} U^T``, ``delta_t U``, ``delta_t^T h_{t-1}``, ...) in the library's
own code, which is left unchanged.

TF32 is 10 bits (u = 2^-11), bfloat16 7 (u = 2^-8): rnn_jax.core.precision.MANTISSA_BITS.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from jax.extend import core

DOT = jax.lax.dot_general_p


def round_operand(x, mantissa_bits: int):
  """``x`` rounded to nearest with ``mantissa_bits`` explicit bits if it is float32."""
  if jnp.result_type(x) != jnp.float32:
    return x
  return jax.lax.reduce_precision(x, exponent_bits=8, mantissa_bits=mantissa_bits)


def _rewrite(param, bits: int, counter: list):
  """A primitive's parameter with every jaxpr in it rewritten; anything else as it is."""
  if isinstance(param, core.ClosedJaxpr):
    def run(*args):
      return _eval(param.jaxpr, param.consts, bits, counter, *args)
    avals = [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in param.in_avals]
    return jax.make_jaxpr(run)(*avals)
  if isinstance(param, core.Jaxpr):
    closed = _rewrite(core.ClosedJaxpr(param, ()), bits, counter)
    if closed.consts:
      raise NotImplementedError("rounded: an open jaxpr gained constants")
    return closed.jaxpr
  if isinstance(param, tuple) and any(isinstance(p, (core.ClosedJaxpr, core.Jaxpr))
                                      for p in param):
    return tuple(_rewrite(p, bits, counter) for p in param)
  return param


def _eval(jaxpr, consts, bits: int, counter: list, *args):
  """``jax.core.eval_jaxpr`` with rounded ``dot_general`` operands; ``counter[0]`` counts them."""
  env = {}
  read = lambda v: v.val if isinstance(v, core.Literal) else env[v]
  for var, value in zip(jaxpr.constvars, consts):
    env[var] = value
  for var, value in zip(jaxpr.invars, args, strict=True):
    env[var] = value
  for eqn in jaxpr.eqns:
    invals = [read(v) for v in eqn.invars]
    if eqn.primitive is DOT:
      counter[0] += 1
      invals = [round_operand(x, bits) for x in invals]
      params = eqn.params
    else:
      params = {k: _rewrite(v, bits, counter) for k, v in eqn.params.items()}
    with eqn.ctx.manager:
      out = eqn.primitive.bind(*invals, **eqn.primitive.get_bind_params(params))
    outs = out if eqn.primitive.multiple_results else [out]
    for var, value in zip(eqn.outvars, outs, strict=True):
      env[var] = value
  return [read(v) for v in jaxpr.outvars]


def rounded(fn: Callable, mantissa_bits: int, counter: list | None = None) -> Callable:
  """``fn`` with the operands of every matrix product rounded to ``mantissa_bits`` explicit bits
  (float32 operands only). ``counter``, a one-element list, counts the products rewritten at
  every depth of the traced program (a scan body counts once)."""
  counter = [0] if counter is None else counter

  def wrapped(*args):
    closed, out_shape = jax.make_jaxpr(fn, return_shape=True)(*args)
    outs = _eval(closed.jaxpr, closed.consts, mantissa_bits, counter, *jax.tree.leaves(args))
    return jax.tree.unflatten(jax.tree.structure(out_shape), outs)

  return wrapped


def count_products(fn: Callable, *args) -> int:
  """``dot_general``s in the jaxpr of ``fn(*args)`` at every depth (a scan body counts once)."""
  def walk(jaxpr) -> int:
    n = 0
    for eqn in jaxpr.eqns:
      n += eqn.primitive is DOT
      for value in eqn.params.values():
        for sub in (value if isinstance(value, tuple) else (value,)):
          if isinstance(sub, core.ClosedJaxpr):
            n += walk(sub.jaxpr)
          elif isinstance(sub, core.Jaxpr):
            n += walk(sub)
    return n
  return walk(jax.make_jaxpr(fn)(*args).jaxpr)

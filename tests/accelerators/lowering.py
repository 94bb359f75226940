"""Lowering a program for a platform this machine does not have: the check that the library's
programs can run on a GPU or a TPU, made on a CPU.

``lower(program, platform, trace(fn, args))`` traces ``jax.jit(fn)`` at ``args`` (arrays or
``jax.ShapeDtypeStruct``s) and lowers it to StableHLO for ``platform`` ("cuda", "rocm", "tpu")
with ``lowering_platforms``: every primitive must have a lowering rule for that platform (a
Pallas kernel written for Mosaic TPU has none for CUDA, a Triton one none for TPU), shardings
must be expressible over the mesh, and so on. Nothing is compiled or run: XLA's own compilation
for the device is not checked. Host callbacks (``jax.pure_callback``, ``jax.debug.print``) fail
here for any platform but the CPU, because a CPU-only jaxlib has no GPU or TPU client to lower
them against; on a machine with the device they lower.

A failure raises ``LoweringError`` naming the program and the platform.
"""
from __future__ import annotations

import functools
import re
from typing import Any, Callable

import jax
import jax.numpy as jnp
import jaxlib

PLATFORMS = ("cuda", "tpu")


class LoweringError(AssertionError):
  """A program could not be lowered for a platform; the message names both."""


def abstract(tree: Any) -> Any:
  """Every array leaf as a ``jax.ShapeDtypeStruct`` (nothing placed on any device)."""
  return jax.tree.map(lambda a: jax.ShapeDtypeStruct(jnp.shape(a), jnp.result_type(a)), tree)


def trace(fn: Callable, args: tuple, kwargs: dict | None = None, **jit_kwargs):
  """``jax.jit(fn)`` traced at ``args`` (arrays or ``jax.ShapeDtypeStruct``s): what ``lower``
  lowers, once per platform. ``fn`` may already be jitted (then ``kwargs`` are its static
  arguments); ``jit_kwargs`` (``in_shardings``, ``out_shardings``) go to ``jax.jit``."""
  jitted = fn if hasattr(fn, "trace") and not jit_kwargs else jax.jit(fn, **jit_kwargs)
  return jitted.trace(*args, **(kwargs or {}))


def lower(program: str, platform: str, traced) -> str:
  """The StableHLO text of ``traced`` (``trace``'s) lowered for ``platform``. Raises
  ``LoweringError`` naming ``program`` and ``platform`` with the first line of JAX's reason."""
  try:
    return traced.lower(lowering_platforms=(platform,)).as_text()
  except Exception as err:                     # any failure to lower is the finding
    first = (str(err).strip().splitlines() or [""])[0]
    raise LoweringError(f"program {program!r} cannot be lowered for {platform}: "
                        f"{type(err).__name__}: {first}") from err


@functools.cache
def unavailable(platform: str) -> str | None:
  """Why the installed jaxlib cannot lower anything for ``platform``, or None if it can."""
  try:
    lower("sin", platform, trace(jnp.sin, (jax.ShapeDtypeStruct((2,), jnp.float32),)))
  except LoweringError as err:
    return f"jaxlib {jaxlib.__version__} cannot lower for {platform} on this machine: {err}"
  return None


def dot_precisions(text: str) -> set[str]:
  """The operand precisions of every ``stablehlo.dot_general`` in a lowered module's text."""
  return set(re.findall(r"stablehlo\.dot_general.*?precision = \[(\w+), \w+\]", text))

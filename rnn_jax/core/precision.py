"""The precision of float32 matrix products a run asks for: the one definition the training loop
(``TrainConfig.precision``, ``--precision``), the benchmark and the gradient checks read.

    precision  JAX's name        a product of float32 operands                  unit roundoff u
    highest    "highest"         IEEE float32 (GPU: no TF32; TPU: 6 bf16 passes)  2^-24 ~ 6.0e-8
    tf32       "tensorfloat32"   operands rounded to TF32, 10 mantissa bits     2^-11 ~ 4.9e-4
    bf16       "bfloat16"        operands rounded to bfloat16, 7 mantissa bits  2^-8  ~ 3.9e-3
    default    "default"         the platform's own choice (``resolve``)

Products accumulate in float32 at every setting. ``default`` is IEEE float32 on CPU, TF32 on
NVIDIA GPUs from Ampere on (cuBLAS's tensor cores; older GPUs compute float32) and one bf16 pass
on TPU. XLA:CPU computes IEEE float32 whatever is asked, so on a CPU every setting gives the
same numbers. float64 products are never rounded. ``DEFAULT_PRECISION`` is "highest": the hand
BPTT is checked against autodiff at it (rnn_jax.testing.TOLERANCES), and a GPU run then trains
the model the CPU tests check. ``--precision default`` trades that for the platform's speed.

JAX's setting is a context manager read while a function is traced (``matmul_precision``), so
this module imports JAX only when one is entered: rnn_jax.settings reads ``PRECISIONS`` without
loading JAX.
"""
from __future__ import annotations

import functools
from typing import Callable

PRECISIONS = ("highest", "tf32", "bf16", "default")
DEFAULT_PRECISION = "highest"

# The names jax.default_matmul_precision takes; "tensorfloat32" is Precision.HIGH (on TPU three
# bf16 passes, more accurate than TF32), "bfloat16" is Precision.DEFAULT.
JAX_NAMES = {"highest": "highest", "tf32": "tensorfloat32", "bf16": "bfloat16",
             "default": "default"}

# Explicit mantissa bits of a rounded operand, and what "default" is on each platform.
MANTISSA_BITS = {"highest": 23, "tf32": 10, "bf16": 7}
PLATFORM_DEFAULTS = {"cpu": "highest", "gpu": "tf32", "cuda": "tf32", "rocm": "tf32",
                     "tpu": "bf16"}


def check(precision: str) -> str:
  """``precision`` if it is one of ``PRECISIONS``, else ValueError naming them."""
  if precision not in PRECISIONS:
    raise ValueError(f"precision: expected one of {PRECISIONS}, got {precision!r}")
  return precision


def resolve(precision: str, platform: str) -> str:
  """What products of float32 operands are on ``platform`` ("cpu", "gpu", "cuda", "rocm",
  "tpu") at ``precision``: "highest", "tf32" or "bf16". On CPU always "highest"."""
  check(precision)
  if platform not in PLATFORM_DEFAULTS:
    raise ValueError(f"platform: expected one of {tuple(PLATFORM_DEFAULTS)}, got {platform!r}")
  if platform == "cpu":
    return "highest"
  return PLATFORM_DEFAULTS[platform] if precision == "default" else precision


def unit_roundoff(precision: str) -> float:
  """``u = 2^-(mantissa bits + 1)`` of a resolved precision ("highest", "tf32", "bf16")."""
  if precision not in MANTISSA_BITS:
    raise ValueError(f"precision: expected one of {tuple(MANTISSA_BITS)} (resolve \"default\" "
                     f"for a platform first), got {precision!r}")
  return 2.0 ** -(MANTISSA_BITS[precision] + 1)


def matmul_precision(precision: str = DEFAULT_PRECISION):
  """``jax.default_matmul_precision`` of ``precision``: products traced inside it carry it."""
  import jax                                                # see the module docstring
  return jax.default_matmul_precision(JAX_NAMES[check(precision)])


def with_precision(fn: Callable, precision: str | None = DEFAULT_PRECISION) -> Callable:
  """``fn`` traced inside ``matmul_precision(precision)``, so ``jax.jit(with_precision(fn, p))``
  computes at ``p`` wherever it is called from; ``None`` returns ``fn`` (the caller's setting)."""
  if precision is None:
    return fn
  check(precision)

  @functools.wraps(fn)
  def wrapped(*args, **kwargs):
    with matmul_precision(precision):
      return fn(*args, **kwargs)
  return wrapped


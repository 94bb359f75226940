"""The one record of the software a result was computed with, saved beside every result."""
from __future__ import annotations

import importlib.metadata
import platform

PACKAGES = ("jax", "jaxlib", "flax", "optax", "chex", "numpy", "scikit-learn", "matplotlib",
            "torch")


def versions() -> dict[str, str | None]:
  """Python's version and each of ``PACKAGES``' installed version (None when not installed)."""
  out: dict[str, str | None] = {"python": platform.python_version()}
  for name in PACKAGES:
    try:
      out[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      out[name] = None
  return out

"""Settings: ``BenchConfig``'s field ``name`` is the flag ``--name`` of experiments/benchmark.py."""
from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import optax

from rnn_jax import train
from rnn_jax.common import checks, cli
from rnn_jax.common.errors import InputError
from rnn_jax.core import gradients, precision

VARIANTS = ("autodiff", "autodiff_unroll", "hand", "fused", "hand_fused", "vmap16", "flax",
            "torch", "forward")
MODELS = 16  # models trained at once by the vmap16 variant


@dataclasses.dataclass(frozen=True)
class BenchConfig:
  """Every benchmark setting, checked on construction (``InputError`` naming the flag)."""
  batch_sizes: tuple[int, ...] = cli.option((1, 32, 256, 1024, 4096), "batch sizes B")
  windows: tuple[int, ...] = cli.option((24,), "window lengths T (the notes: 24)")
  hidden_sizes: tuple[int, ...] = cli.option((200,), "hidden units H (the notes: 200)")
  variants: tuple[str, ...] = cli.option(VARIANTS, "variants to run, from " + ",".join(VARIANTS))
  seconds: float = cli.option(1.5, "timed seconds per cell, split over the repeats")
  repeats: int = cli.option(5, "timed repetitions per cell; the median is reported")
  input_size: int = cli.option(1, "inputs per step D")
  output_size: int = cli.option(3, "outputs K")
  optimizer: str = cli.option("adam", "optimizer, as in training: adam | sgd")
  lr: float = cli.option(1e-3, "learning rate")
  clip: float = cli.option(1.0, "clip gradients to this global norm (training's default); 0 = off")
  grad: str = cli.option("autodiff", "gradient of the fused and vmap16 variants: autodiff | hand")
  fuse_steps: int = cli.option(64, "most optimizer steps in one fused call")
  fuse_windows: int = cli.option(
      4096, "fused calls take ceil(this / B) steps, within [2, fuse-steps]")
  vmap_max_batch: int = cli.option(256, "run vmap16 only for B up to this (16 models x B per step)")
  remat_windows: tuple[int, ...] = cli.option((24, 384, 1536), "T values of --remat-memory")
  remat_batch_size: int = cli.option(32, "batch size of --remat-memory")
  dense_size: int = cli.option(1024, "n of the [n,n]x[n,n] product timed for the dense GEMM rate")
  precision: str = cli.option(
      precision.DEFAULT_PRECISION, "float32 matmul precision of every JAX program and peak, as "
      "in training: highest (IEEE float32) | tf32 | bf16 | default (the platform's); torch on "
      "CUDA: TF32 unless highest")
  seed: int = cli.option(0, "seed of parameters and data")
  devices_sweep: bool = cli.option(False, "also time data-parallel training against the number "
                                          "of devices")
  remat_memory: bool = cli.option(False, "also report compiled peak memory for T in "
                                         "--remat-windows with and without jax.checkpoint")

  def __post_init__(self):
    keep = functools.partial(object.__setattr__, self)     # whole floats are stored as int
    for name in ("batch_sizes", "windows", "hidden_sizes", "remat_windows"):
      keep(name, checks.integers(name, getattr(self, name), 1))
    names = ",".join(VARIANTS)
    if not isinstance(self.variants, tuple) or not self.variants:
      raise InputError(f"--variants: expected a comma-separated list from {names}")
    for v in self.variants:
      if v not in VARIANTS:
        raise InputError(f"--variants: unknown variant {v!r}; expected names from {names}")
    if len(set(self.variants)) != len(self.variants):
      raise InputError(f"--variants: a variant is named twice in {','.join(self.variants)}")
    checks.number("seconds", self.seconds)
    for name, low in (("repeats", 1), ("input_size", 1), ("output_size", 1), ("fuse_steps", 2),
                      ("fuse_windows", 1), ("vmap_max_batch", 1), ("remat_batch_size", 1),
                      ("dense_size", 1), ("seed", 0)):
      keep(name, checks.integer(name, getattr(self, name), low))
    checks.choice("optimizer", self.optimizer, train.OPTIMIZERS)
    checks.number("lr", self.lr)
    checks.number("clip", self.clip, zero_is_off=True)
    checks.choice("grad", self.grad, gradients.METHODS)
    checks.choice("precision", self.precision, precision.PRECISIONS)
    for name in ("devices_sweep", "remat_memory"):
      keep(name, checks.boolean(name, getattr(self, name)))

  def to_dict(self) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v
            for k, v in dataclasses.asdict(self).items()}


def make_optimizer(cfg: BenchConfig) -> optax.GradientTransformation:
  return train.make_optimizer(train.TrainConfig(optimizer=cfg.optimizer, lr=cfg.lr,
                                                clip=cfg.clip))


def fused_steps(cfg: BenchConfig, batch: int) -> int:
  """Optimizer steps per fused call: ``ceil(fuse_windows / B)`` within ``[2, fuse_steps]``."""
  return int(min(cfg.fuse_steps, max(2, -(-cfg.fuse_windows // batch))))


def check_output_path(flag: str, path) -> Path | None:
  """An output path must be a file in an existing directory (checked before any work)."""
  if path is None:
    return None
  path = Path(path)
  if path.is_dir():
    raise InputError(f"{flag}: {path} is a directory, expected a file name")
  if not path.parent.is_dir():
    raise InputError(f"{flag}: directory {path.parent} does not exist")
  return path

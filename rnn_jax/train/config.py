"""The training settings: ``TrainConfig`` (one frozen dataclass, each field a command-line flag),
its checks (``validate``, an InputError naming the flag), and the optimizer it names."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import optax

from rnn_jax.common import cli
from rnn_jax.common.errors import InputError
from rnn_jax.core import gradients
from rnn_jax.core.model import INIT_SCHEMES

OPTIMIZERS = ("sgd", "adam")

@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Every training setting; field ``name`` is the command-line flag ``--name`` (``_`` -> ``-``).

  Saved as JSON beside every run (checkpoint ``config``) and compared on ``--resume``.
  """
  hidden_size: int = cli.option(200, "H, hidden units (the notes use 200)")
  init: str = cli.option("normal", '"normal" (N(0, 1/fan_in)) | "irnn" (U = I; Le et al. 2015)')
  optimizer: str = cli.option("adam", '"sgd" (the notes\' plain SGD) | "adam"')
  lr: float = cli.option(1e-3, "learning rate (a finite positive number)")
  clip: float = cli.option(
      1.0, "clip gradients to this global norm (Pascanu et al. 2013); 0 = off")
  batch_size: int = cli.option(
      64, "windows per step; the last partial batch of an epoch is dropped")
  epochs: int = cli.option(50, "maximum passes over the training set")
  patience: int = cli.option(
      10, "stop after this many epochs without a better val loss; 0 = never")
  grad: str = cli.option(
      "autodiff", '"autodiff" (jax.grad through the scan) | "hand" (the hand BPTT)')
  unroll: int = cli.option(1, "lax.scan unroll factor (autodiff only)")
  remat: bool = cli.option(
      False, "rematerialise the backward pass in chunks of sqrt(T) steps (jax.checkpoint; "
      "autodiff only)")
  seed: int = cli.option(0, "model i of fit_many uses seed + i (init and data order)")
  seeds: int = cli.option(1, "models trained at once in one vmapped program (fit_many)")
  devices: int | None = cli.option(
      None, "None or 0: all devices; n: the first n; data-parallel when > 1")

  def __post_init__(self):
    for f in dataclasses.fields(self):            # numpy scalars -> Python (JSON-serialisable)
      v = getattr(self, f.name)
      if isinstance(v, np.generic):
        object.__setattr__(self, f.name, v.item())
    object.__setattr__(self, "grad", gradients.ALIASES.get(self.grad, self.grad))

  def validate(self) -> "TrainConfig":
    """Raises InputError naming the flag of the first nonsensical value; returns self."""
    flag = cli.flag

    def integer(name, lo):
      v = getattr(self, name)
      if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        what = "a positive integer" if lo == 1 else f"an integer >= {lo}"
        raise InputError(f"{flag(name)}: expected {what}, got {v!r}")

    def number(name, positive):
      v = getattr(self, name)
      ok = not isinstance(v, bool) and isinstance(v, (int, float, np.integer, np.floating))
      if not ok or not math.isfinite(v) or (v <= 0 if positive else v < 0):
        what = "a finite positive number" if positive else "a finite number >= 0 (0 = off)"
        raise InputError(f"{flag(name)}: expected {what}, got {v!r}")

    def choice(name, options):
      v = getattr(self, name)
      if v not in options:
        raise InputError(f"{flag(name)}: expected one of {', '.join(options)}, got {v!r}")

    integer("hidden_size", 1)
    choice("init", INIT_SCHEMES)
    choice("optimizer", OPTIMIZERS)
    number("lr", True)
    number("clip", False)
    integer("batch_size", 1)
    integer("epochs", 1)
    integer("patience", 0)
    choice("grad", gradients.METHODS)
    integer("unroll", 1)
    if not isinstance(self.remat, bool):
      raise InputError(f"--remat: expected true or false, got {self.remat!r}")
    integer("seed", 0)
    integer("seeds", 1)
    if self.seed + self.seeds > 2**31:
      raise InputError(f"--seed: expected seed + seeds <= 2**31, got seed {self.seed} and "
                       f"seeds {self.seeds}")
    if self.devices is not None:
      integer("devices", 0)
    return self

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, d: dict) -> "TrainConfig":
    """The inverse of ``to_dict``; unknown keys are an InputError. ``hidden``, the name of
    ``hidden_size`` in runs written before the flag vocabulary was unified, is read too."""
    if "hidden" in d and "hidden_size" not in d:
      d = {("hidden_size" if k == "hidden" else k): v for k, v in d.items()}
    unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
      raise InputError(f"training config: unknown settings {sorted(unknown)}")
    return cls(**d)


def make_optimizer(cfg: TrainConfig) -> optax.GradientTransformation:
  """``sgd(lr)`` or ``adam(lr)``, after ``clip_by_global_norm(clip)`` when ``clip > 0``."""
  cfg.validate()
  base = optax.sgd(cfg.lr) if cfg.optimizer == "sgd" else optax.adam(cfg.lr)
  if cfg.clip > 0:
    return optax.chain(optax.clip_by_global_norm(cfg.clip), base)
  return base


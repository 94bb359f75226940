"""The training settings: ``TrainConfig`` (one frozen dataclass, each field a command-line flag),
its checks (``validate``, an InputError naming the flag), and the optimizer it names."""
from __future__ import annotations

import dataclasses
import functools

import numpy as np
import optax

from rnn_jax.common import checks, cli
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

  def validate(self) -> "TrainConfig":
    """Raises InputError naming the flag of the first nonsensical value; returns self.

    An integer setting given as a whole float (``12.0``, from JSON) is stored as int."""
    keep = functools.partial(object.__setattr__, self)
    keep("hidden_size", checks.integer("hidden_size", self.hidden_size, 1))
    checks.choice("init", self.init, INIT_SCHEMES)
    checks.choice("optimizer", self.optimizer, OPTIMIZERS)
    checks.number("lr", self.lr)
    checks.number("clip", self.clip, zero_is_off=True)
    keep("batch_size", checks.integer("batch_size", self.batch_size, 1))
    keep("epochs", checks.integer("epochs", self.epochs, 1))
    keep("patience", checks.integer("patience", self.patience, 0))
    checks.choice("grad", self.grad, gradients.METHODS)
    keep("unroll", checks.integer("unroll", self.unroll, 1))
    checks.boolean("remat", self.remat)
    keep("seed", checks.integer("seed", self.seed, 0))
    keep("seeds", checks.integer("seeds", self.seeds, 1))
    if self.seed + self.seeds > 2**31:
      raise InputError(f"--seed: expected seed + seeds <= 2**31, got seed {self.seed} and "
                       f"seeds {self.seeds}")
    if self.devices is not None:
      keep("devices", checks.integer("devices", self.devices, 0))
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


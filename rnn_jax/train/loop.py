"""Training with optax: minibatch epochs fused into one compiled call, early stopping,
checkpoints every epoch, exact resume, many seeds at once (vmap) and many devices (sharding).

Generic over arrays: ``train = (xs [N, T, D], ys [N, K])`` with ys in [0, 1], likewise ``val``;
this module knows nothing about CSV files (rnn_jax.data makes the arrays).

The pieces, from the inside out:

* ``make_train_step(optimizer, method, unroll, remat)``: one pure optimizer step; the step the
  benchmark times. ``method`` picks the gradient: autodiff through the scan or the hand BPTT
  (rnn_jax.gradients).
* ``make_epoch_fn(optimizer, batch_size, ...)``: one epoch as a single ``lax.scan`` over the
  minibatches of a permutation of the device-resident training set. The permutation is an input
  (same shape every epoch), so the epoch compiles once. Per-step flags say whether each step's
  loss and gradient were finite.
* ``fit`` and ``fit_many``: the epoch loop on the host: validation loss, early stopping with the
  best parameters restored, a tqdm bar, ``metrics.jsonl`` and an atomic checkpoint each epoch,
  resume, Ctrl-C and non-finite faults.

Data order: epoch e (1-based) visits the training windows in the order
``jax.random.permutation(fold_in(data_key, e), N)`` where ``init_key, data_key =
split(PRNGKey(seed))``; consecutive blocks of ``batch_size`` make the steps and the last
``N mod batch_size`` windows of the permutation are DROPPED (a different set each epoch, so every
window is used; dropping keeps every step's batch the same shape, which one compiled program
needs, and keeps the loss an unweighted batch mean for the hand BPTT). When ``batch_size``
exceeds N, the batch is all N windows (rounded down to a multiple of the device count).

Metrics per epoch (history, metrics.jsonl): ``train_loss`` is the mean of the epoch's step
losses (each at the parameters before its step), ``val_loss`` the loss on the whole validation
set after the epoch, then whatever ``evaluate(params)`` returns, and ``elapsed_s`` the training
wall-clock seconds so far (including epoch 1's compilation).

Determinism and resume: everything a later epoch depends on (parameters, optimizer state, best
parameters, early-stopping counters, the data key, history) is in the checkpoint, and the data
order of epoch e depends only on (seed, e). On CPU XLA is deterministic, so a run resumed from
the checkpoint after epoch k computes the same epochs k+1.. bit for bit as an uninterrupted run.
An interrupted epoch is discarded and redone on resume. The only field of the history that
differs is the wall clock ``elapsed_s``.

Early stopping (Prechelt, "Early Stopping - But When?", 1998): after every epoch the validation
loss (the training loss, i.e. the notes' BCE) is computed on the whole validation set; when it
has not improved on the best for ``patience`` epochs, training stops and the best parameters are
returned. ``patience=0`` never stops early (the best parameters are still returned).
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from rnn_jax.common import fileio
from rnn_jax.core import gradients, model
from rnn_jax.train import checkpoint, parallel
from rnn_jax.train.checkpoint import to_host
from rnn_jax.common.errors import InputError
from rnn_jax.core.model import INIT_SCHEMES, RNNParams

OPTIMIZERS = ("sgd", "adam")
STOPPED = ("completed", "early_stop", "interrupted", "nonfinite")
METRICS = "metrics.jsonl"
CURES = ("lower the learning rate (--lr), clip gradients by global norm (--clip 1.0), "
         "or start from the identity recurrence (--init irnn)")


# --------------------------------------------------------------------------- configuration

@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Every training setting; field ``name`` is the command-line flag ``--name`` (``_`` -> ``-``).

  Saved as JSON beside every run (checkpoint ``config``) and compared on ``--resume``.
  """
  hidden: int = 200              # H, hidden units (the notes use 200)
  init: str = "normal"           # "normal" (N(0, 1/fan_in)) | "irnn" (U = I; Le et al. 2015)
  optimizer: str = "adam"        # "sgd" (the notes' plain SGD) | "adam"
  lr: float = 1e-3               # learning rate (a finite positive number)
  clip: float = 1.0              # clip gradients to this global norm (Pascanu et al. 2013); 0 = off
  batch_size: int = 64           # windows per step; the last partial batch of an epoch is dropped
  epochs: int = 50               # maximum passes over the training set
  patience: int = 10             # stop after this many epochs without a better val loss; 0 = never
  grad: str = "autodiff"         # "autodiff" (jax.grad through the scan) | "bptt" (the hand BPTT)
  unroll: int = 1                # lax.scan unroll factor (autodiff only)
  remat: bool = False            # jax.checkpoint every step in the backward pass (autodiff only)
  seed: int = 0                  # model i of fit_many uses seed + i (init and data order)
  seeds: int = 1                 # models trained at once in one vmapped program (fit_many)
  devices: int | None = None     # None or 0: all devices; n: the first n; data-parallel when > 1

  def __post_init__(self):
    for f in dataclasses.fields(self):            # numpy scalars -> Python (JSON-serialisable)
      v = getattr(self, f.name)
      if isinstance(v, np.generic):
        object.__setattr__(self, f.name, v.item())

  def validate(self) -> "TrainConfig":
    """Raises InputError naming the flag of the first nonsensical value; returns self."""
    def flag(name):
      return "--" + name.replace("_", "-")

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

    integer("hidden", 1)
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
    """The inverse of ``to_dict``; unknown keys are an InputError."""
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


# --------------------------------------------------------------------------- compiled pieces

def all_finite(tree) -> jax.Array:
  """``True`` when every element of every leaf of ``tree`` is finite (a bool scalar)."""
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
  return jnp.stack(leaves).all()


def _step_args(optimizer, method, unroll, remat):
  if isinstance(optimizer, TrainConfig):
    cfg = optimizer
    return make_optimizer(cfg), cfg.grad, cfg.unroll, cfg.remat
  return optimizer, method, unroll, remat


def make_train_step(optimizer: optax.GradientTransformation | TrainConfig,
                    method: str = "autodiff", unroll: int | bool = 1,
                    remat: bool = False) -> Callable:
  """``step(params, opt_state, xs [B,T,D], ys [B,K]) -> (params, opt_state, loss, finite)``.

  Pure (jit it at the call site). ``loss`` is the batch loss at the incoming parameters and
  ``finite`` is True when that loss and every gradient element are finite; the update is
  applied regardless (the caller decides what to keep). Passing a TrainConfig instead of an
  optimizer takes the optimizer, method, unroll and remat from it.
  """
  optimizer, method, unroll, remat = _step_args(optimizer, method, unroll, remat)
  value_and_grad = gradients.loss_and_grad(method, unroll=unroll, remat=remat)

  def step(params, opt_state, xs, ys):
    loss, grads = value_and_grad(params, xs, ys)
    finite = jnp.isfinite(loss) & all_finite(grads)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    return params, opt_state, loss, finite

  return step


def _where(mask, new, old):
  """Per-leaf ``where(mask, new, old)``; ``mask`` is a scalar or a leading model axis ``[S]``."""
  mask = jnp.asarray(mask)

  def one(a, b):
    m = mask.reshape(mask.shape + (1,) * (jnp.ndim(a) - mask.ndim))
    return jnp.where(m, a, b)

  return jax.tree.map(one, new, old)


def make_epoch_fn(optimizer: optax.GradientTransformation | TrainConfig, batch_size: int,
                  method: str = "autodiff", unroll: int | bool = 1, remat: bool = False, *,
                  mesh=None) -> Callable:
  """``epoch(params, opt_state, xs [N,T,D], ys [N,K], perm [N] int) ->
  (params, opt_state, losses [S], finite [S])`` with ``S = N // batch_size`` steps.

  One ``lax.scan`` over the steps of ``make_train_step``; step s trains on
  ``xs[perm[s*B:(s+1)*B]]`` (the remainder of the permutation is dropped). Pure: jit it once
  and call it every epoch with a new ``perm``; nothing about the call changes between epochs, so
  it is traced and compiled once. ``finite[s]`` is the step's flag: from the first False on, the
  returned parameters are not to be used (fit then keeps the state from before the epoch; a
  per-step select to freeze them would cost a pass over parameters and optimizer state every
  step, which shows at small batches). ``mesh`` (rnn_jax.parallel.data_mesh) shards every
  batch over its devices. ``jax.vmap`` it over (params, opt_state, perm) to train many models.
  """
  optimizer, method, unroll, remat = _step_args(optimizer, method, unroll, remat)
  step = make_train_step(optimizer, method, unroll, remat)
  if int(batch_size) != batch_size or batch_size < 1:
    raise ValueError(f"batch_size: expected a positive integer, got {batch_size!r}")

  def epoch(params, opt_state, xs, ys, perm):
    n_steps = perm.shape[0] // batch_size
    if n_steps < 1:
      raise ValueError(f"perm: {perm.shape[0]} windows make no batch of {batch_size}")
    batches = perm[:n_steps * batch_size].reshape(n_steps, batch_size)

    def body(carry, idx):
      xb = parallel.constrain_batch(xs[idx], mesh)
      yb = parallel.constrain_batch(ys[idx], mesh)
      params, opt_state, loss, finite = step(*carry, xb, yb)
      return (params, opt_state), (loss, finite)

    (params, opt_state), (losses, finite) = jax.lax.scan(body, (params, opt_state), batches)
    return params, opt_state, losses, finite

  return epoch


def effective_batch_size(batch_size: int, n: int, n_devices: int = 1) -> int:
  """``batch_size``, or when it exceeds the ``n`` training windows, ``n`` rounded down to a
  multiple of ``n_devices`` (one batch of everything per epoch)."""
  return batch_size if batch_size <= n else n - n % n_devices


@functools.partial(jax.jit, static_argnames="n")
def permutation(data_key, epoch, n: int) -> jax.Array:
  """The data order of ``epoch`` (1-based): ``permutation(fold_in(data_key, epoch), n)``."""
  return jax.random.permutation(jax.random.fold_in(data_key, epoch), n)


def model_keys(seed: int) -> tuple[jax.Array, jax.Array]:
  """``(init_key, data_key) = split(PRNGKey(seed))``."""
  init_key, data_key = jax.random.split(jax.random.PRNGKey(seed))
  return init_key, data_key


# --------------------------------------------------------------------------- results

@dataclasses.dataclass
class FitResult:
  """What ``fit`` returns."""
  params: RNNParams            # the best parameters (lowest validation loss; initial if none)
  history: list[dict]          # one dict per completed epoch (see metrics.jsonl)
  best_epoch: int              # epoch of ``params`` (0: no epoch completed)
  best_val_loss: float         # validation loss of ``params`` (inf: no epoch completed)
  stopped: str                 # "completed" | "early_stop" | "interrupted" | "nonfinite"
  message: str                 # one paragraph for the user, e.g. how to resume
  checkpoint: Path | None = None


@dataclasses.dataclass
class ManyFitResult:
  """What ``fit_many`` returns: model i was initialised and shuffled with seed ``seeds[i]``."""
  params: RNNParams            # best parameters per model, every field [S, ...]
  histories: list[list[dict]]  # per model, one dict per epoch it trained
  best_epochs: list[int]
  best_val_losses: np.ndarray  # [S]
  stopped: list[str]           # per model, as FitResult.stopped
  message: str
  seeds: list[int]
  checkpoint: Path | None = None

  def model(self, i: int) -> FitResult:
    """Model i's result in the shape ``fit`` gives."""
    return FitResult(params=jax.tree.map(lambda a: a[i], self.params),
                     history=self.histories[i], best_epoch=self.best_epochs[i],
                     best_val_loss=float(self.best_val_losses[i]), stopped=self.stopped[i],
                     message=self.message, checkpoint=self.checkpoint)

  def summary(self, key: str = "val_loss") -> dict:
    """Mean, sample standard deviation, min and max over models of ``key`` at each model's best
    epoch (any history key, e.g. a metric returned by ``evaluate``)."""
    values = []
    for hist, best in zip(self.histories, self.best_epochs):
      row = next((h for h in hist if h["epoch"] == best), None)
      if row is not None and row.get(key) is not None:
        values.append(float(row[key]))
    v = np.asarray(values, np.float64)
    if v.size == 0:
      return {"n": 0, "mean": None, "std": None, "min": None, "max": None, "values": []}
    return {"n": int(v.size), "mean": float(v.mean()),
            "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "min": float(v.min()), "max": float(v.max()), "values": values}


# --------------------------------------------------------------------------- the host loop

class _State(NamedTuple):
  """Everything the next epoch depends on; replaced as a whole once an epoch is complete."""
  epoch: int
  params: Any
  opt_state: Any
  best_params: Any
  best_epoch: np.ndarray       # [S] int
  best_val: np.ndarray         # [S] float64
  wait: np.ndarray             # [S] int
  status: tuple                # [S] "running" | "early_stop" | "nonfinite"
  history: tuple               # [S] tuples of dicts
  elapsed_s: float


def _check_pair(name: str, pair) -> tuple[np.ndarray, np.ndarray]:
  try:
    xs, ys = pair
  except (TypeError, ValueError):
    raise InputError(f"{name}: expected a pair (xs, ys)") from None
  xs, ys = np.asarray(xs), np.asarray(ys)
  if xs.ndim != 3 or xs.shape[0] < 1 or xs.shape[1] < 1 or xs.shape[2] < 1:
    raise InputError(f"{name} xs: expected shape [N, T, D] with N, T, D >= 1, "
                     f"got {list(xs.shape)}")
  if ys.ndim != 2 or ys.shape[0] != xs.shape[0] or ys.shape[1] < 1:
    raise InputError(f"{name} ys: expected shape [{xs.shape[0]}, K], got {list(ys.shape)}")
  for what, a in (("xs", xs), ("ys", ys)):
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
      raise InputError(f"{name} {what}: expected numbers, got dtype {a.dtype}")
    if not np.all(np.isfinite(a)):
      raise InputError(f"{name} {what}: contains NaN or infinite values")
  return xs, ys


def _fingerprint(a: np.ndarray) -> dict:
  a = np.ascontiguousarray(a)
  return {"shape": list(a.shape), "dtype": str(a.dtype),
          "sha256": hashlib.sha256(a.tobytes()).hexdigest()}


def _json_value(v):
  v = float(np.asarray(v))
  return v if math.isfinite(v) else None


def _commit(advance, improved, new, old, best):
  """Keeps ``new`` (params, opt_state) where ``advance``; the best params where ``improved``."""
  params, opt_state = _where(advance, new, old)
  return params, opt_state, _where(improved, new[0], best)


class _Programs(NamedTuple):
  """The compiled functions of a run; cached, so later runs of the same shapes reuse them."""
  optimizer: optax.GradientTransformation
  init: Callable        # (seeds [S] int32, D=, K=, dtype=) -> (params [S,...], data_keys [S,2])
  opt_init: Callable    # params -> opt_state
  perm: Callable        # (data_keys [S, 2], epoch) -> [S, N] (vmapped) or [N]
  epoch: Callable       # make_epoch_fn, vmapped over models when vmapped
  val_loss: Callable    # (params, xs, ys) -> [S] or []
  commit: Callable      # _commit
  put: Callable         # places a pytree of host arrays (replicated over the mesh)
  mesh: Any


@functools.partial(jax.jit, static_argnames=("D", "H", "K", "scheme", "dtype"))
def init_models(seeds, *, D: int, H: int, K: int, scheme: str = "normal",
                dtype: str = "float32"):
  """``seeds [S] int32 -> (params, data_keys [S, 2])``, every params field ``[S, ...]``.

  Model i is ``model.init_params(init_key, D, H, K, scheme=scheme)`` with ``(init_key,
  data_key) = model_keys(seeds[i])``: the initial parameters of fit (``seeds=[cfg.seed]``) and
  fit_many (``cfg.seed + arange(cfg.seeds)``). One compiled program for all S models.
  """
  def one(seed):
    init_key, data_key = model_keys(seed)
    return model.init_params(init_key, D, H, K, scheme=scheme, dtype=jnp.dtype(dtype)), data_key
  return jax.vmap(one)(seeds)


def _perm_one(keys, epoch, n):
  return permutation(keys[0], epoch, n)


def _perm_many(keys, epoch, n):
  return jax.vmap(permutation, in_axes=(0, None, None))(keys, epoch, n)


def _val_loss_many(params, xs, ys):
  return jax.vmap(model.loss, in_axes=(0, None, None))(params, xs, ys)


@functools.lru_cache(maxsize=None)
def _jit(fn: Callable, n_dev: int, static: tuple = ()) -> Callable:
  """``jax.jit(fn)``, replicated over ``n_dev`` devices when > 1; one per (fn, n_dev), so
  every run in a process shares the compiled code of the same shapes."""
  if n_dev <= 1:
    return jax.jit(fn, static_argnames=static)
  return parallel.jit_replicated(fn, parallel.data_mesh(n_dev), static)


@functools.lru_cache(maxsize=32)
def _programs(cfg: TrainConfig, batch: int, vmapped: bool) -> _Programs:
  """The jitted pieces of a run (once per distinct key); ``cfg.devices`` is a device count."""
  n_dev = cfg.devices
  optimizer = make_optimizer(cfg)
  mesh = parallel.data_mesh(n_dev) if n_dev > 1 else None
  epoch = make_epoch_fn(optimizer, batch, cfg.grad, cfg.unroll, cfg.remat, mesh=mesh)
  opt_init = optimizer.init
  if vmapped:
    epoch = jax.vmap(epoch, in_axes=(0, 0, None, None, 0))
    opt_init = jax.vmap(opt_init)
  put = jax.device_put if mesh is None else functools.partial(
      parallel.put, sharding=parallel.replicated(mesh))
  return _Programs(
      optimizer=optimizer,
      init=functools.partial(init_models, H=cfg.hidden, scheme=cfg.init),
      opt_init=jax.jit(opt_init),
      perm=_jit(_perm_many if vmapped else _perm_one, 1, ("n",)),
      epoch=_jit(epoch, n_dev),
      val_loss=_jit(_val_loss_many if vmapped else model.loss, n_dev),
      commit=_jit(_commit, n_dev), put=put, mesh=mesh)


def _is_writer() -> bool:
  return jax.process_index() == 0


class _Run:
  """One training run of S models (``vmapped``) or of one model; shared by fit and fit_many."""

  def __init__(self, cfg: TrainConfig, train, val, *, vmapped: bool, out_dir, resume: bool,
               progress: bool, evaluate):
    cfg.validate()
    xs, ys = _check_pair("train", train)
    vxs, vys = _check_pair("val", val)
    if vxs.shape[2] != xs.shape[2] or vys.shape[1] != ys.shape[1]:
      raise InputError(f"val: expected D={xs.shape[2]} inputs and K={ys.shape[1]} outputs like "
                       f"train, got D={vxs.shape[2]}, K={vys.shape[1]}")
    self.cfg, self.vmapped, self.progress, self.evaluate = cfg, vmapped, progress, evaluate
    self.n_models = cfg.seeds if vmapped else 1
    self.seeds = [cfg.seed + i for i in range(self.n_models)]
    dtype = jnp.dtype(xs.dtype if np.issubdtype(xs.dtype, np.floating) else jnp.float32)
    dtype = jax.dtypes.canonicalize_dtype(dtype)                # float32 unless x64 is on
    self.dtype = dtype
    self.fingerprint = {"train_xs": _fingerprint(xs), "train_ys": _fingerprint(ys),
                        "val_xs": _fingerprint(vxs), "val_ys": _fingerprint(vys)}
    N, _, D = xs.shape
    K = ys.shape[1]
    self.N, self.D, self.K = N, D, K

    n_dev = parallel.device_count(cfg.devices)
    if N < n_dev:
      raise InputError(f"train: {N} windows cannot be split over {n_dev} devices")
    if cfg.batch_size % n_dev:
      raise InputError(f"--batch-size: {cfg.batch_size} is not a multiple of the {n_dev} "
                       "devices (--devices)")
    self.batch = effective_batch_size(cfg.batch_size, N, n_dev)
    self.notes = []
    if self.batch != cfg.batch_size:
      self.notes.append(f"batch size {cfg.batch_size} exceeds the {N} training windows; "
                        f"used batches of {self.batch}")
    self.steps = N // self.batch

    # Output directory: proven writable before any training.
    self.out_dir = self.ckpt_path = None
    if out_dir is not None:
      self.out_dir = Path(out_dir)
      self.ckpt_path = self.out_dir / checkpoint.FILENAME
      if resume:
        if not self.ckpt_path.exists():
          raise InputError(f"{self.ckpt_path}: no checkpoint to resume from (run without "
                           "--resume to start a new run)")
      if _is_writer():
        H = cfg.hidden
        n_bytes = (H * H + H * D + H + K * H + K) * dtype.itemsize * self.n_models
        checkpoint.check_writable(self.out_dir, 6 * n_bytes + (1 << 20))   # 3 params + adam
    elif resume:
      raise InputError("--resume needs --out, the directory of the run to resume")

    # Initial state, templates for the checkpoint.
    key = dataclasses.replace(cfg, epochs=1, patience=0, seed=0, seeds=1, devices=n_dev)
    self.prog = prog = _programs(key, self.batch, vmapped)
    params, data_keys = prog.init(np.asarray(self.seeds, np.int32), D=D, K=K, dtype=dtype.name)
    params = to_host(params)                       # host copies: templates, placed below
    if not vmapped:
      params = jax.tree.map(lambda a: a[0], params)
    opt_state = to_host(prog.opt_init(params))
    self.optimizer = prog.optimizer
    self.data_keys = data_keys = np.asarray(data_keys)            # [S, 2] uint32
    S = self.n_models
    self.initial = _State(epoch=0, params=params, opt_state=opt_state, best_params=params,
                          best_epoch=np.zeros(S, np.int64), best_val=np.full(S, np.inf),
                          wait=np.zeros(S, np.int64), status=("running",) * S,
                          history=((),) * S, elapsed_s=0.0)
    self.state = self._load() if resume else self.initial

    # Device placement.
    self.put = prog.put
    self.xs, self.ys, self.vxs, self.vys = self.put(
        (xs.astype(dtype), ys.astype(dtype), vxs.astype(dtype), vys.astype(dtype)))
    self.state = self.state._replace(
        params=self.put(self.state.params), opt_state=self.put(self.state.opt_state),
        best_params=self.put(self.state.best_params))

  # ---- checkpoint

  def _config_for_compare(self, d: dict) -> dict:
    return {k: v for k, v in d.items() if k not in ("epochs", "devices")}

  def _save(self, st: _State) -> None:
    if self.ckpt_path is None or not _is_writer():
      return
    checkpoint.save(self.ckpt_path, {
        "config": json.dumps(self.cfg.to_dict()),
        "n_models": self.n_models if self.vmapped else 0,
        "data": json.dumps(self.fingerprint),
        "epoch": st.epoch,
        "params": st.params,
        "opt_state": st.opt_state,
        "best_params": st.best_params,
        "best_epoch": st.best_epoch,
        "best_val_loss": st.best_val,
        "wait": st.wait,
        "status": json.dumps(list(st.status)),
        "data_key": self.data_keys,
        "history": json.dumps([list(h) for h in st.history]),
        "elapsed_s": st.elapsed_s,
    })

  def _load(self) -> _State:
    path = self.ckpt_path
    raw = checkpoint.load(path)
    try:
      saved_cfg = json.loads(raw["config"])
      n_models = int(raw["n_models"])
      fingerprint = json.loads(raw["data"])
      status = tuple(json.loads(raw["status"]))
      history = tuple(tuple(h) for h in json.loads(raw["history"]))
      epoch = int(raw["epoch"])
      elapsed = float(raw["elapsed_s"])
    except (KeyError, TypeError, ValueError) as err:
      raise InputError(f"{path}: checkpoint is missing or has a damaged field ({err})") from None
    mine, theirs = self._config_for_compare(self.cfg.to_dict()), \
        self._config_for_compare(saved_cfg)
    for k in mine:
      if theirs.get(k, object()) != mine[k]:
        raise InputError(f"{path}: the run was made with {k}={theirs.get(k)!r}, this run asks "
                         f"for {k}={mine[k]!r}; resume with the same settings (only --epochs "
                         "and --devices may change) or start a new --out")
    if n_models != (self.n_models if self.vmapped else 0):
      raise InputError(f"{path}: checkpoint holds {n_models or 1} model(s) "
                       f"({'fit_many' if n_models else 'fit'}); this run trains "
                       f"{self.n_models}")
    if fingerprint != self.fingerprint:
      raise InputError(f"{path}: the run was trained on different data (shapes or contents "
                       "differ); resume with the same data or start a new --out")
    S = self.n_models
    ini = self.initial
    arrays = {}
    for name, template in (("best_epoch", ini.best_epoch), ("best_val_loss", ini.best_val),
                           ("wait", ini.wait), ("data_key", self.data_keys)):
      arrays[name] = checkpoint.restore(template, raw.get(name), path=path, name=name)
    if not np.array_equal(arrays["data_key"], self.data_keys):
      raise InputError(f"{path}: checkpoint data_key does not match --seed {self.cfg.seed}")
    if len(status) != S or len(history) != S:
      raise InputError(f"{path}: checkpoint status/history do not hold {S} model(s)")
    return _State(
        epoch=epoch,
        params=checkpoint.restore(ini.params, raw.get("params"), path=path, name="params"),
        opt_state=checkpoint.restore(ini.opt_state, raw.get("opt_state"), path=path,
                                     name="opt_state"),
        best_params=checkpoint.restore(ini.params, raw.get("best_params"), path=path,
                                       name="best_params"),
        best_epoch=arrays["best_epoch"], best_val=arrays["best_val_loss"], wait=arrays["wait"],
        status=status, history=history, elapsed_s=elapsed)

  def _write_metrics(self, st: _State) -> None:
    if self.out_dir is None or not _is_writer():
      return
    rows = sorted((r for h in st.history for r in h), key=lambda r: (r["epoch"],
                                                                      r.get("model", 0)))
    fileio.write_text(self.out_dir / METRICS, "".join(json.dumps(r) + "\n" for r in rows))

  def _append_metrics(self, rows: list[dict]) -> None:
    if self.out_dir is None or not _is_writer():
      return
    for r in rows:
      fileio.append_line(self.out_dir / METRICS, json.dumps(r))

  # ---- one epoch

  def _model(self, tree, i):
    return jax.tree.map(lambda a: a[i], tree) if self.vmapped else tree

  def _epoch(self, st: _State, started: float, base_elapsed: float):
    """Runs epoch ``st.epoch + 1``; returns (new state, metric rows, fault messages)."""
    e = st.epoch + 1
    S = self.n_models
    perm = self.prog.perm(self.data_keys, e, n=self.N)
    perm = self.put(to_host(perm))
    params, opt_state, losses, finite = self.prog.epoch(st.params, st.opt_state, self.xs,
                                                      self.ys, perm)
    val = to_host(self.prog.val_loss(params, self.vxs, self.vys)).astype(np.float64).reshape(S)
    losses = to_host(losses).reshape(S, -1)
    finite = to_host(finite).reshape(S, -1)
    elapsed = base_elapsed + (time.perf_counter() - started)

    status, history = list(st.status), [list(h) for h in st.history]
    best_epoch, best_val, wait = st.best_epoch.copy(), st.best_val.copy(), st.wait.copy()
    advance = np.zeros(S, bool)       # models whose epoch counts
    improved = np.zeros(S, bool)
    faults, rows = [], []
    for i in range(S):
      if status[i] != "running":
        continue
      who = f"model {i} (seed {self.seeds[i]}): " if self.vmapped else ""
      if not finite[i].all():
        s = int(np.argmin(finite[i]))
        status[i] = "nonfinite"
        faults.append(f"{who}the loss or gradient became non-finite at epoch {e}, step "
                      f"{s + 1} of {self.steps} (loss {float(losses[i, s])})")
        continue
      if not math.isfinite(val[i]):
        status[i] = "nonfinite"
        faults.append(f"{who}the validation loss became non-finite after epoch {e}")
        continue
      advance[i] = True
      row = {"epoch": e}
      if self.vmapped:
        row.update(model=i, seed=self.seeds[i])
      row.update(train_loss=_json_value(losses[i].mean()), val_loss=_json_value(val[i]))
      if self.evaluate is not None:
        for k, v in dict(self.evaluate(self._model(params, i))).items():
          row[k] = _json_value(v)
      row["elapsed_s"] = round(elapsed, 3)
      rows.append(row)
      history[i].append(row)
      if val[i] < best_val[i]:
        best_val[i], best_epoch[i], wait[i] = val[i], e, 0
        improved[i] = True
      else:
        wait[i] += 1
        if self.cfg.patience and wait[i] >= self.cfg.patience:
          status[i] = "early_stop"

    masks = self.put((advance, improved) if self.vmapped else (advance[0], improved[0]))
    new_params, new_opt_state, new_best = self.prog.commit(*masks, (params, opt_state),
                                                      (st.params, st.opt_state),
                                                      st.best_params)
    new = _State(epoch=e, params=new_params, opt_state=new_opt_state, best_params=new_best,
                 best_epoch=best_epoch, best_val=best_val, wait=wait, status=tuple(status),
                 history=tuple(tuple(h) for h in history), elapsed_s=elapsed)
    return new, rows, faults

  # ---- the loop

  def run(self) -> tuple[_State, str, list[str]]:
    """Trains until every model stopped or ``epochs``; returns (state, outcome, messages)."""
    cfg = self.cfg
    st = self.state
    if self.out_dir is not None:
      self._write_metrics(st)   # a fresh run empties metrics.jsonl; a resumed one rewrites it
      if st.epoch == 0:
        self._save(st)
    messages = list(self.notes)
    outcome = "completed"
    bar = tqdm(total=cfg.epochs, initial=min(st.epoch, cfg.epochs), desc="train",
               unit="epoch", disable=not self.progress, dynamic_ncols=True, leave=True)
    started, base_elapsed = time.perf_counter(), st.elapsed_s
    try:
      while st.epoch < cfg.epochs and "running" in st.status:
        new, rows, faults = self._epoch(st, started, base_elapsed)
        if faults and not self.vmapped:
          # One model: keep the last good checkpoint (not rewritten) and state.
          st = st._replace(status=new.status)
          messages.extend(faults)
          outcome = "nonfinite"
          break
        st = new
        self._save(st)
        self._append_metrics(rows)
        messages.extend(faults)
        if rows:
          bar.set_postfix(self._postfix(rows), refresh=False)
        bar.update(1)
    except KeyboardInterrupt:
      outcome = "interrupted"
      if self.out_dir is not None:
        self._save(st)              # the last complete epoch; an interrupted one is redone
        self._write_metrics(st)
    finally:
      bar.close()
    return st, outcome, messages

  @staticmethod
  def _postfix(rows: list[dict]) -> dict:
    keys = [k for k in rows[0] if k not in ("epoch", "model", "seed", "elapsed_s")]
    out = {}
    for k in keys:
      vals = [r[k] for r in rows if r.get(k) is not None]
      if vals:
        out[k] = f"{np.mean(vals):.4g}"
    return out

  def describe(self, st: _State, outcome: str, messages: list[str]) -> str:
    """The result's message: sentences saying what happened and what to do next."""
    parts = [m[0].upper() + m[1:] + "." for m in messages]
    if outcome == "interrupted":
      if self.ckpt_path is not None:
        parts.append(f"Interrupted after epoch {st.epoch}; checkpoint saved in {self.ckpt_path}. "
                     "Run the same command with --resume to continue from there.")
      else:
        parts.append(f"Interrupted after epoch {st.epoch}; no output directory was given, so "
                     "nothing was saved.")
    elif outcome == "nonfinite":
      kept = (f"the last good checkpoint (epoch {st.epoch}) in {self.ckpt_path} is kept"
              if self.ckpt_path is not None else f"the parameters after epoch {st.epoch} are kept")
      parts.append(f"Training stopped; {kept} and the best parameters so far are returned. "
                   f"Usual cures: {CURES}.")
    elif "nonfinite" in st.status:
      parts.append(f"Those models keep their last good parameters and their best ones; the others "
                   f"trained on. Usual cures: {CURES}.")
    if outcome != "interrupted":
      n_early = st.status.count("early_stop")
      if n_early and not self.vmapped:
        parts.append(f"Stopped early after epoch {st.epoch}: no better validation loss for "
                     f"{self.cfg.patience} epochs.")
      elif n_early:
        parts.append(f"{n_early} of {self.n_models} models stopped early (no better validation "
                     f"loss for {self.cfg.patience} epochs).")
      if "running" in st.status and outcome == "completed":
        parts.append(f"Completed {st.epoch} epochs.")
    if (st.best_epoch > 0).any():
      best = ", ".join(str(int(b)) for b in st.best_epoch)
      parts.append(f"Best validation loss at epoch {best}" + (" (per model)." if self.vmapped
                                                              else "."))
    else:
      parts.append("No epoch completed; the initial parameters are returned.")
    return " ".join(parts)

  def outcome_per_model(self, st: _State, outcome: str) -> list[str]:
    out = []
    for s in st.status:
      if s == "running":
        out.append("interrupted" if outcome == "interrupted" else "completed")
      else:
        out.append(s)
    return out




def fit(cfg: TrainConfig, train: tuple, val: tuple, *, out_dir: str | os.PathLike | None = None,
        resume: bool = False, progress: bool = True,
        evaluate: Callable[[RNNParams], dict] | None = None) -> FitResult:
  """Trains one model: ``train = (xs [N,T,D], ys [N,K])``, ``val`` likewise.

  Minibatches and data order as in the module docstring; the validation loss after every
  epoch drives early stopping and picks the returned (best) parameters. ``evaluate(params)``
  (optional) returns extra metrics (e.g. validation MAE) shown in the progress bar and logged.

  With ``out_dir``: the directory is created and proven writable (a probe file) before any
  training, else InputError; ``metrics.jsonl`` gets one JSON line per epoch (epoch,
  train_loss, val_loss, the evaluate() values, elapsed_s) and ``checkpoint.msgpack``
  (rnn_jax.checkpoint) is rewritten atomically after every epoch. A fresh run overwrites both;
  refusing to overwrite a previous run is the caller's decision. ``resume=True`` continues
  from the checkpoint, bit-identically on CPU; the settings must match except ``epochs`` and
  ``devices``. ``cfg.seeds`` is ignored here (see fit_many).

  Faults: Ctrl-C (KeyboardInterrupt) saves the last complete epoch and returns
  ``stopped="interrupted"``; a non-finite loss or gradient stops with ``stopped="nonfinite"``,
  a message naming epoch and step, and the checkpoint of the last good epoch untouched.
  """
  run = _Run(cfg, train, val, vmapped=False, out_dir=out_dir, resume=resume, progress=progress,
             evaluate=evaluate)
  st, outcome, messages = run.run()
  stopped = run.outcome_per_model(st, outcome)[0]
  if outcome == "nonfinite":
    stopped = "nonfinite"
  return FitResult(params=to_host(st.best_params), history=list(st.history[0]),
                   best_epoch=int(st.best_epoch[0]), best_val_loss=float(st.best_val[0]),
                   stopped=stopped, message=run.describe(st, outcome, messages),
                   checkpoint=run.ckpt_path)


def fit_many(cfg: TrainConfig, train: tuple, val: tuple, *,
             out_dir: str | os.PathLike | None = None, resume: bool = False,
             progress: bool = True,
             evaluate: Callable[[RNNParams], dict] | None = None) -> ManyFitResult:
  """Trains ``cfg.seeds`` models at once: one compiled program, ``jax.vmap`` over parameters,
  optimizer state and data order. Model i uses seed ``cfg.seed + i`` for both its
  initialisation and its data order, so it equals ``fit(replace(cfg, seed=cfg.seed + i))`` up
  to float rounding (vmap batches the matmuls differently).

  Early stopping is per model, with fit's rule: a model whose validation loss has not improved
  for ``patience`` epochs is frozen (its parameters and optimizer state stop changing, its
  history ends) and keeps its best parameters; a model hitting a non-finite loss is frozen at
  its last good epoch. The others go on; training ends when none is left running or after
  ``epochs``. The frozen models still ride along in the vmapped program (vmap cannot skip
  them), so the cost per epoch stays that of S models.

  ``evaluate`` is called per model with its parameters; metrics.jsonl has one line per model
  per epoch (with ``model`` and ``seed``). ``ManyFitResult.summary(key)`` gives the mean and
  spread over models at their best epochs. Outputs, resume and faults as in ``fit``.
  """
  run = _Run(cfg, train, val, vmapped=True, out_dir=out_dir, resume=resume, progress=progress,
             evaluate=evaluate)
  st, outcome, messages = run.run()
  return ManyFitResult(params=to_host(st.best_params), histories=[list(h) for h in st.history],
                       best_epochs=[int(b) for b in st.best_epoch],
                       best_val_losses=np.asarray(st.best_val),
                       stopped=run.outcome_per_model(st, outcome),
                       message=run.describe(st, outcome, messages), seeds=run.seeds,
                       checkpoint=run.ckpt_path)

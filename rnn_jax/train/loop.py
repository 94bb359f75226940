"""The training loop (shaped like the flax examples' ``train.py``; settings in
rnn_jax.settings.TrainConfig): the pure train step, one epoch as one ``lax.scan``, and ``fit`` /
``fit_many``: a tqdm bar, ``metrics.jsonl``, an atomic checkpoint each epoch
(rnn_jax.train.checkpoint), resume, Ctrl-C and non-finite stops.

Data: ``train = (xs [N, T, D], ys [N, K])``, ys in [0, 1], likewise ``val``. Epoch e (1-based)
visits the windows in the order ``permutation``; blocks of ``batch_size`` make the steps and the
last ``N mod batch_size`` windows are dropped (another set each epoch; one batch shape for one
compiled program, and an unweighted batch mean for the hand BPTT).

Early stopping (Prechelt, "Early Stopping - But When?", 1998): after ``patience`` epochs without
a lower loss on the whole validation set a model stops and keeps its best parameters (0: never).
Metrics per epoch: ``train_loss`` (mean of the step losses, each before its step), ``val_loss``
(after the epoch), what ``evaluate(params)`` returns, ``elapsed_s`` (training wall clock so far).

Precision: the step, the epoch, the validation loss and ``evaluate`` run their float32 matrix
products at ``cfg.precision`` (rnn_jax.core.precision; "highest" by default: IEEE float32 on
every platform, not a GPU's TF32).

Resume: the data order of epoch e depends only on (seed, e) and XLA on CPU is deterministic, so a
resumed run computes the later epochs bit for bit as an uninterrupted one (but ``elapsed_s``).
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
from rnn_jax.common.errors import InputError
from rnn_jax.core import gradients, model
from rnn_jax.core import precision as precision_lib
from rnn_jax.core.model import RNNParams
from rnn_jax.settings import TrainConfig
from rnn_jax.train import checkpoint, parallel
from rnn_jax.train.checkpoint import to_host

METRICS = "metrics.jsonl"
RUNNING = "running"
STOPPED = ("completed", "early_stop", "interrupted", "nonfinite")
CURES = ("lower the learning rate (--lr), clip gradients by global norm (--clip 1.0), "
         "or start from the identity recurrence (--init irnn)")


# ----------------------------------------------------------------------------- step and epoch

def make_optimizer(cfg: TrainConfig) -> optax.GradientTransformation:
  """``sgd(lr)`` or ``adam(lr)``, after ``clip_by_global_norm(clip)`` when ``clip > 0``."""
  base = {"sgd": optax.sgd, "adam": optax.adam}[cfg.optimizer](cfg.lr)
  return optax.chain(optax.clip_by_global_norm(cfg.clip), base) if cfg.clip > 0 else base


def all_finite(tree) -> jax.Array:
  """``True`` when every element of every leaf of ``tree`` is finite (a bool scalar)."""
  return jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]).all()


def make_train_step(optimizer: optax.GradientTransformation | TrainConfig,
                    method: str = "autodiff", unroll: int | bool = 1,
                    remat: bool = False, *, precision: str | None = None,
                    taus=None, anchor: bool = False) -> Callable:
  """``step(params, opt_state, xs [B,T,D], ys [B,K]) -> (params, opt_state, loss, finite)``,
  pure: ``loss`` at the incoming parameters, ``finite`` whether it and every gradient element are
  finite (the update is applied regardless). ``precision``: the float32 matmul precision the
  step is traced at (rnn_jax.core.precision; None: the caller's). A TrainConfig as ``optimizer``
  gives all six. ``taus``: the pinball loss's K quantile levels (None: the cross-entropy);
  ``anchor``: the loss of the anchored logits (rnn_jax.core.model.anchor_logit)."""
  if isinstance(optimizer, TrainConfig):
    optimizer, method, unroll, remat, precision, anchor = (
        make_optimizer(optimizer), optimizer.grad, optimizer.unroll, optimizer.remat,
        optimizer.precision, optimizer.anchor)
  value_and_grad = gradients.value_and_grad(method, unroll=unroll, remat=remat, taus=taus,
                                            anchor=anchor)

  def step(params, opt_state, xs, ys):
    loss, grads = value_and_grad(params, xs, ys)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    finite = jnp.isfinite(loss) & all_finite(grads)
    return optax.apply_updates(params, updates), opt_state, loss, finite

  return precision_lib.with_precision(step, precision)


def make_epoch_fn(optimizer: optax.GradientTransformation | TrainConfig, batch_size: int,
                  method: str = "autodiff", unroll: int | bool = 1, remat: bool = False, *,
                  mesh=None, precision: str | None = None, taus=None) -> Callable:
  """``epoch(params, opt_state, xs [N,T,D], ys [N,K], perm [N] int) -> (params, opt_state,
  losses [S], finite [S])``: one ``lax.scan`` over ``S = N // B`` steps, step s on
  ``xs[perm[s*B:(s+1)*B]]``. After a False ``finite[s]`` the state is not to be used (fit keeps
  the one from before the epoch: a select every step would cost a pass over the state).
  ``mesh``: the batch split over it (rnn_jax.train.parallel); ``precision`` and ``taus`` as in
  ``make_train_step``."""
  step = make_train_step(optimizer, method, unroll, remat, precision=precision, taus=taus)
  if int(batch_size) != batch_size or batch_size < 1:
    raise ValueError(f"batch_size: expected a positive integer, got {batch_size!r}")

  def epoch(params, opt_state, xs, ys, perm):
    n_steps = perm.shape[0] // batch_size
    if n_steps < 1:
      raise ValueError(f"perm: {perm.shape[0]} windows make no batch of {batch_size}")

    def body(carry, idx):
      xb, yb = (parallel.constrain_batch(a[idx], mesh) for a in (xs, ys))
      params, opt_state, loss, finite = step(*carry, xb, yb)
      return (params, opt_state), (loss, finite)

    batches = perm[:n_steps * batch_size].reshape(n_steps, batch_size)
    (params, opt_state), (losses, finite) = jax.lax.scan(body, (params, opt_state), batches)
    return params, opt_state, losses, finite

  return epoch


def effective_batch_size(batch_size: int, n: int, n_devices: int = 1) -> int:
  """``batch_size``, or when it exceeds ``n``, ``n`` rounded down to a multiple of ``n_devices``."""
  return batch_size if batch_size <= n else n - n % n_devices


@functools.partial(jax.jit, static_argnames="n")
def permutation(data_key, epoch, n: int) -> jax.Array:
  """The data order of ``epoch`` (1-based): ``permutation(fold_in(data_key, epoch), n)``."""
  return jax.random.permutation(jax.random.fold_in(data_key, epoch), n)


def model_keys(seed: int) -> tuple[jax.Array, jax.Array]:
  """``(init_key, data_key) = split(PRNGKey(seed))``."""
  init_key, data_key = jax.random.split(jax.random.PRNGKey(seed))
  return init_key, data_key


@functools.partial(jax.jit, static_argnames=("D", "H", "K", "scheme", "dtype"))
def init_models(seeds, *, D: int, H: int, K: int, scheme: str = "normal",
                dtype: str = "float32"):
  """``seeds [S] int32 -> (params, data_keys [S, 2])``, every params field ``[S, ...]``, model i
  from ``model_keys(seeds[i])``, in one compiled program."""
  def one(seed):
    init_key, data_key = model_keys(seed)
    return model.init_params(init_key, D, H, K, scheme=scheme, dtype=jnp.dtype(dtype)), data_key
  return jax.vmap(one)(seeds)


# The compiled programs, jitted with ``prog`` static (the run's TrainConfig with its batch and
# devices, seed, seeds, epochs and patience fixed) so runs of the same shapes reuse them.

@functools.partial(jax.jit, static_argnames=("prog", "many", "D", "K", "dtype"))
def init_state(seeds, *, prog: TrainConfig, many: bool, D: int, K: int, dtype: str):
  """``(params, opt_state, data_keys [S, 2])`` of ``seeds [S]``; no model axis unless ``many``."""
  params, data_keys = init_models(seeds, D=D, H=prog.hidden_size, K=K, scheme=prog.init,
                                  dtype=dtype)
  if not many:
    params = jax.tree.map(lambda a: a[0], params)
  opt_init = make_optimizer(prog).init
  return params, (jax.vmap(opt_init) if many else opt_init)(params), data_keys


@functools.partial(jax.jit, static_argnames=("prog", "many", "taus"))
def train_epoch(params, opt_state, data, data_keys, epoch, *, prog: TrainConfig, many: bool,
                taus=None):
  """Epoch ``epoch`` (vmapped over the models when ``many``) and the validation loss after it:
  ``data = (xs, ys, val_xs, val_ys)`` -> ``(params, opt_state, losses [steps], finite [steps],
  val_loss)``; over ``prog.devices > 1`` each batch is split and the results replicated.
  ``taus``: as in ``make_train_step``."""
  xs, ys, vxs, vys = data
  mesh = parallel.data_mesh(prog.devices) if prog.devices > 1 else None
  steps = make_epoch_fn(prog, prog.batch_size, mesh=mesh, taus=taus)

  @functools.partial(precision_lib.with_precision, precision=prog.precision)
  def one(params, opt_state, data_key):
    params, opt_state, losses, finite = steps(params, opt_state, xs, ys,
                                              permutation(data_key, epoch, xs.shape[0]))
    return params, opt_state, losses, finite, model.loss(params, vxs, vys, taus=taus,
                                                         anchor=prog.anchor)

  out = jax.vmap(one)(params, opt_state, data_keys) if many else one(params, opt_state,
                                                                     data_keys[0])
  return parallel.replicate(out, mesh)


@functools.partial(jax.jit, static_argnames="n_dev")
def commit(advance, improved, new, old, best, *, n_dev: int = 1):
  """``(params, opt_state, best_params)``: ``new`` where ``advance``, else ``old``; ``new``'s
  params where ``improved``, else ``best``. Masks: bool scalars (one model) or ``[S]``."""
  def where(mask, a, b):
    expand = lambda x: mask.reshape(mask.shape + (1,) * (x.ndim - mask.ndim))
    return jax.tree.map(lambda x, y: jnp.where(expand(x), x, y), a, b)
  params, opt_state = where(advance, new, old)
  out = params, opt_state, where(improved, new[0], best)
  return parallel.replicate(out, parallel.data_mesh(n_dev) if n_dev > 1 else None)


# ----------------------------------------------------------------------------- the train state

class RunState(NamedTuple):
  """Everything the next epoch depends on (S models; S = 1 for fit), saved by checkpoint.record."""
  epoch: int
  params: Any                  # RNNParams, every field [S, ...] under fit_many
  opt_state: Any               # the optax state of ``params``
  best_params: Any             # RNNParams with the lowest validation loss so far
  best_epoch: np.ndarray       # [S] int (0: none yet)
  best_val: np.ndarray         # [S] float64 (inf: none yet)
  wait: np.ndarray             # [S] int, epochs since the last improvement
  status: tuple                # [S] "running" | "early_stop" | "nonfinite"
  history: tuple               # [S] tuples of metric dicts
  elapsed_s: float


def initial_state(params, opt_state, n_models: int) -> RunState:
  """Epoch 0: the initial parameters are the best so far, with no validation loss yet."""
  S = n_models
  return RunState(epoch=0, params=params, opt_state=opt_state, best_params=params,
                  best_epoch=np.zeros(S, np.int64), best_val=np.full(S, np.inf),
                  wait=np.zeros(S, np.int64), status=(RUNNING,) * S, history=((),) * S,
                  elapsed_s=0.0)


def judge_epoch(st: RunState, finite: np.ndarray, losses: np.ndarray, val: np.ndarray, *,
                patience: int, labels: list[str]):
  """Per running model, from ``finite``, ``losses [S, steps]`` and ``val [S]``: "nonfinite" with a
  fault message (prefixed ``labels[i]``), else it advances, improving or waiting ("early_stop"
  after ``patience``). Returns ``(new state, advance [S], improved [S], faults)``."""
  e, S, steps = st.epoch + 1, *finite.shape
  status = list(st.status)
  best_epoch, best_val, wait = st.best_epoch.copy(), st.best_val.copy(), st.wait.copy()
  advance, improved, faults = np.zeros(S, bool), np.zeros(S, bool), []
  for i in range(S):
    if status[i] != RUNNING:
      continue
    if not finite[i].all():
      s = int(np.argmin(finite[i]))
      status[i] = "nonfinite"
      faults.append(f"{labels[i]}the loss or gradient became non-finite at epoch {e}, step "
                    f"{s + 1} of {steps} (loss {float(losses[i, s])})")
    elif not math.isfinite(val[i]):
      status[i] = "nonfinite"
      faults.append(f"{labels[i]}the validation loss became non-finite after epoch {e}")
    elif val[i] < best_val[i]:
      advance[i] = improved[i] = True
      best_val[i], best_epoch[i], wait[i] = val[i], e, 0
    else:
      advance[i], wait[i] = True, wait[i] + 1
      if patience and wait[i] >= patience:
        status[i] = "early_stop"
  new = st._replace(epoch=e, best_epoch=best_epoch, best_val=best_val, wait=wait,
                    status=tuple(status))
  return new, advance, improved, faults


# ----------------------------------------------------------------------------- the inputs

def _check_pair(name: str, pair) -> tuple[np.ndarray, np.ndarray]:
  """``pair = (xs [N,T,D], ys [N,K])`` as numpy arrays of finite numbers, else InputError."""
  try:
    xs, ys = pair
  except (TypeError, ValueError):
    raise InputError(f"{name}: expected a pair (xs, ys)") from None
  xs, ys = np.asarray(xs), np.asarray(ys)
  if xs.ndim != 3 or min(xs.shape) < 1:
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


def check_inputs(cfg: TrainConfig, train, val):
  """Every InputError of fit's setup (arrays, batch, devices), raised now, so a caller that writes
  files first can leave nothing. Returns ``((xs, ys, vxs, vys), n_devices, batch, notes)``."""
  (xs, ys), (vxs, vys) = _check_pair("train", train), _check_pair("val", val)
  if vxs.shape[2] != xs.shape[2] or vys.shape[1] != ys.shape[1]:
    raise InputError(f"val: expected D={xs.shape[2]} inputs and K={ys.shape[1]} outputs like "
                     f"train, got D={vxs.shape[2]}, K={vys.shape[1]}")
  n, n_dev = len(xs), parallel.device_count(cfg.devices)
  if n < n_dev:
    raise InputError(f"train: {n} windows cannot be split over {n_dev} devices")
  if cfg.batch_size % n_dev:
    raise InputError(f"--batch-size: {cfg.batch_size} is not a multiple of the {n_dev} "
                     "devices (--devices)")
  batch = effective_batch_size(cfg.batch_size, n, n_dev)
  notes = [] if batch == cfg.batch_size else [
      f"batch size {cfg.batch_size} exceeds the {n} training windows; used batches of {batch}"]
  return (xs, ys, vxs, vys), n_dev, batch, notes


def fingerprint(arrays) -> dict:
  """Shape, dtype and SHA-256 of ``(xs, ys, vxs, vys)`` (checkpoint field ``data``)."""
  names = ("train_xs", "train_ys", "val_xs", "val_ys")
  return {k: {"shape": list(a.shape), "dtype": str(a.dtype),
              "sha256": hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()}
          for k, a in zip(names, arrays)}


# ----------------------------------------------------------------------------- what fit returns

@dataclasses.dataclass
class FitResult:
  """What ``fit`` returns."""
  params: RNNParams            # the best parameters (lowest validation loss; initial if none)
  history: list[dict]          # one dict per completed epoch (see metrics.jsonl)
  best_epoch: int              # epoch of ``params`` (0: no epoch completed)
  best_val_loss: float         # validation loss of ``params`` (inf: no epoch completed)
  stopped: str                 # one of STOPPED
  message: str                 # one paragraph for the user, e.g. how to resume
  checkpoint: Path | None = None


@dataclasses.dataclass
class ManyFitResult:
  """What ``fit_many`` returns: FitResult's fields per model (params ``[S, ...]``)."""
  params: RNNParams
  histories: list[list[dict]]
  best_epochs: list[int]
  best_val_losses: np.ndarray  # [S]
  stopped: list[str]
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
    """Mean, sample std, min and max over models of history ``key`` at each model's best epoch."""
    values = [float(row[key]) for hist, best in zip(self.histories, self.best_epochs)
              for row in hist if row["epoch"] == best and row.get(key) is not None]
    if not values:
      return {"n": 0, "mean": None, "std": None, "min": None, "max": None, "values": []}
    v = np.asarray(values, np.float64)
    return {"n": int(v.size), "mean": float(v.mean()),
            "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "min": float(v.min()), "max": float(v.max()), "values": values}


# ----------------------------------------------------------------------------- fit, fit_many

@dataclasses.dataclass
class _Run:
  """What stays fixed through one run of fit or fit_many, and the notes and faults so far."""
  cfg: TrainConfig
  prog: TrainConfig            # the settings of the compiled programs (their static argument)
  many: bool
  seeds: list[int]
  data: tuple                  # (xs, ys, vxs, vys) on the device(s), in the training dtype
  keys: Any                    # [S, 2] the models' data keys, on the device(s)
  put: Callable                # host arrays -> the device(s) (replicated over the mesh)
  fingerprint: dict
  ckpt: Path | None            # the checkpoint file, None without out_dir
  writes: bool                 # out_dir given and this is process 0
  evaluate: Callable | None
  messages: list[str]
  t0: float = 0.0              # perf_counter() - elapsed_s of the state trained from
  taus: tuple | None = None    # the pinball loss's quantile levels (cfg.loss "pinball")


def _open_out_dir(out_dir, resume: bool, n_bytes: int) -> Path | None:
  """The checkpoint path in ``out_dir``, proven writable before any training (process 0)."""
  if out_dir is None:
    if resume:
      raise InputError("--resume needs --out, the directory of the run to resume")
    return None
  ckpt = Path(out_dir) / checkpoint.FILENAME
  if resume and not ckpt.exists():
    raise InputError(f"{ckpt}: no checkpoint to resume from (run without --resume to start a "
                     "new run)")
  if jax.process_index() == 0:
    checkpoint.check_writable(out_dir, n_bytes)
  return ckpt


def check_taus(cfg: TrainConfig, taus, K: int) -> tuple[float, ...] | None:
  """``taus`` as a tuple: K quantile levels for ``cfg.loss == "pinball"``, None for "bce";
  else InputError."""
  if cfg.loss != "pinball":
    if taus is not None:
      raise InputError(f"--loss {cfg.loss}: takes no quantile levels, got {taus!r}")
    return None
  if taus is None:
    raise InputError(f"--loss pinball: needs a quantile level for each of the {K} outputs")
  try:
    return model.check_taus(taus, K)
  except ValueError as err:
    raise InputError(f"--loss pinball: {err}") from None


def _start(cfg: TrainConfig, train, val, *, many: bool, out_dir, resume: bool,
           evaluate, taus=None) -> tuple[_Run, RunState]:
  """The run and its initial (or resumed) state on the device(s), every check done first."""
  cfg.validate()
  arrays, n_dev, batch, notes = check_inputs(cfg, train, val)
  (N, _, D), K = arrays[0].shape, arrays[1].shape[1]
  taus = check_taus(cfg, taus, K)
  S, dtype = cfg.seeds if many else 1, arrays[0].dtype      # floating inputs keep their dtype
  dtype = jax.dtypes.canonicalize_dtype(dtype if np.issubdtype(dtype, np.floating) else np.float32)
  n_params = (cfg.hidden_size + D + 1) * cfg.hidden_size + (cfg.hidden_size + 1) * K
  ckpt = _open_out_dir(out_dir, resume, 6 * n_params * dtype.itemsize * S + (1 << 20))
  prog = dataclasses.replace(cfg, batch_size=batch, devices=n_dev, epochs=1, patience=0, seed=0,
                             seeds=1)
  seeds = [cfg.seed + i for i in range(S)]
  params, opt_state, data_keys = to_host(init_state(np.asarray(seeds, np.int32), prog=prog,
                                                    many=many, D=D, K=K, dtype=dtype.name))
  st, prints = initial_state(params, opt_state, S), fingerprint(arrays)
  if resume:
    st = checkpoint.restore_run(ckpt, st, cfg=cfg, n_models=S if many else 0,
                                fingerprint=prints, data_keys=data_keys)
  put = jax.device_put if n_dev == 1 else functools.partial(
      parallel.put, sharding=parallel.replicated(parallel.data_mesh(n_dev)))
  st = st._replace(params=put(st.params), opt_state=put(st.opt_state),
                   best_params=put(st.best_params))
  run = _Run(cfg=cfg, prog=prog, many=many, seeds=seeds,
             data=put(tuple(a.astype(dtype) for a in arrays)), keys=put(data_keys), put=put,
             fingerprint=prints, ckpt=ckpt, writes=ckpt is not None and jax.process_index() == 0,
             evaluate=evaluate, messages=list(notes), taus=taus)
  return run, st


def _save(run: _Run, st: RunState) -> None:
  if run.writes:
    checkpoint.save(run.ckpt, checkpoint.record(
        st, cfg=run.cfg, n_models=len(run.seeds) if run.many else 0,
        fingerprint=run.fingerprint, data_keys=run.keys))


def _write_metrics(run: _Run, st: RunState) -> None:
  """metrics.jsonl rewritten from the history of ``st`` (empty for a fresh run)."""
  if run.writes:
    rows = sorted((r for h in st.history for r in h), key=lambda r: (r["epoch"], r.get("model", 0)))
    fileio.write_text(run.ckpt.parent / METRICS, "".join(json.dumps(r) + "\n" for r in rows))


def _json_value(v):
  v = float(np.asarray(v))
  return v if math.isfinite(v) else None


def _row(run: _Run, e: int, i: int, losses, val, params, elapsed: float) -> dict:
  """Model i's metrics after epoch e (metrics.jsonl), ``evaluate`` called on its params."""
  row = {"epoch": e, **({"model": i, "seed": run.seeds[i]} if run.many else {}),
         "train_loss": _json_value(losses.mean()), "val_loss": _json_value(val)}
  if run.evaluate is not None:
    mine = jax.tree.map(lambda a: a[i], params) if run.many else params
    with precision_lib.matmul_precision(run.cfg.precision):
      row.update({k: _json_value(v) for k, v in dict(run.evaluate(mine)).items()})
  return {**row, "elapsed_s": round(elapsed, 3)}


def _end_epoch(run: _Run, st: RunState, out: tuple, bar: tqdm) -> RunState:
  """The state after the epoch ``train_epoch`` returned as ``out``: judged, committed, saved,
  logged and shown. Under fit a non-finite epoch stops where it was (its last good checkpoint
  kept); under fit_many such a model is frozen and the others go on."""
  params, opt_state, losses, finite, val = out
  S = len(st.status)
  losses, finite = (np.asarray(to_host(a)).reshape(S, -1) for a in (losses, finite))
  val = np.asarray(to_host(val), np.float64).reshape(S)
  elapsed = time.perf_counter() - run.t0
  labels = [f"model {i} (seed {s}): " if run.many else "" for i, s in enumerate(run.seeds)]
  new, advance, improved, faults = judge_epoch(st, finite, losses, val,
                                               patience=run.cfg.patience, labels=labels)
  run.messages.extend(faults)
  if faults and not run.many:
    return st._replace(status=new.status)
  rows = {i: _row(run, new.epoch, i, losses[i], val[i], params, elapsed)
          for i in range(S) if advance[i]}
  masks = run.put((advance, improved) if run.many else (advance[0], improved[0]))
  params, opt_state, best = commit(*masks, (params, opt_state), (st.params, st.opt_state),
                                   st.best_params, n_dev=run.prog.devices)
  new = new._replace(params=params, opt_state=opt_state, best_params=best, elapsed_s=elapsed,
                     history=tuple(h + ((rows[i],) if i in rows else ())
                                   for i, h in enumerate(st.history)))
  _save(run, new)
  if run.writes:
    for row in rows.values():
      fileio.append_line(run.ckpt.parent / METRICS, json.dumps(row))
  if rows:     # the bar: each metric's mean over the models that advanced
    means = {k: [r[k] for r in rows.values() if r.get(k) is not None]
             for k in next(iter(rows.values())) if k not in ("epoch", "model", "seed", "elapsed_s")}
    bar.set_postfix({k: f"{np.mean(v):.4g}" for k, v in means.items() if v}, refresh=False)
  bar.update(1)
  return new


def _message(run: _Run, st: RunState, interrupted: bool) -> str:
  """The run's notes and faults, what was kept, how to go on, how it stopped, the best epochs."""
  parts, cures = [m[0].upper() + m[1:] + "." for m in run.messages], f"Usual cures: {CURES}."
  if interrupted:
    parts.append(f"Interrupted after epoch {st.epoch}; " + (
        f"checkpoint saved in {run.ckpt}. Run the same command with --resume to continue from "
        "there." if run.ckpt else "no output directory was given, so nothing was saved."))
  elif not run.many and st.status[0] == "nonfinite":
    kept = (f"the last good checkpoint (epoch {st.epoch}) in {run.ckpt} is kept"
            if run.ckpt is not None else f"the parameters after epoch {st.epoch} are kept")
    parts.append(f"Training stopped; {kept} and the best parameters so far are returned. {cures}")
  elif "nonfinite" in st.status:
    parts.append("Those models keep their last good parameters and their best ones; the "
                 f"others trained on. {cures}")
  if "early_stop" in st.status and not interrupted:
    parts.append(f"{st.status.count('early_stop')} of {len(st.status)} models stopped early (no "
                 f"better validation loss for {run.cfg.patience} epochs)." if run.many else
                 f"Stopped early after epoch {st.epoch}: no better validation loss for "
                 f"{run.cfg.patience} epochs.")
  if RUNNING in st.status and not interrupted:
    parts.append(f"Completed {st.epoch} epochs.")
  if (st.best_epoch > 0).any():
    best = ", ".join(str(int(b)) for b in st.best_epoch)
    parts.append(f"Best validation loss at epoch {best}" + (" (per model)." if run.many else "."))
  else:
    parts.append("No epoch completed; the initial parameters are returned.")
  return " ".join(parts)


def _fit(cfg: TrainConfig, train, val, *, many: bool, out_dir, resume: bool, progress: bool,
         evaluate, taus=None) -> tuple[_Run, RunState, list[str], str]:
  """The host loop: ``train_epoch`` until ``cfg.epochs`` or no model runs; Ctrl-C saves the last
  complete epoch. Returns the run, its final state, each model's ``stopped`` and the message."""
  run, st = _start(cfg, train, val, many=many, out_dir=out_dir, resume=resume,
                   evaluate=evaluate, taus=taus)
  _write_metrics(run, st)
  if st.epoch == 0:
    _save(run, st)
  run.t0 = time.perf_counter() - st.elapsed_s
  bar = tqdm(total=cfg.epochs, initial=min(st.epoch, cfg.epochs), desc="train", unit="epoch",
             disable=not progress, dynamic_ncols=True, leave=True)
  interrupted = False
  try:
    while st.epoch < cfg.epochs and RUNNING in st.status:
      out = train_epoch(st.params, st.opt_state, run.data, run.keys, st.epoch + 1,
                        prog=run.prog, many=many, taus=run.taus)
      st = _end_epoch(run, st, out, bar)
  except KeyboardInterrupt:    # the epoch under way is lost, and redone on resume
    interrupted = True
    _save(run, st)
    _write_metrics(run, st)
  finally:
    bar.close()
  stopped = [("interrupted" if interrupted else "completed") if s == RUNNING else s
             for s in st.status]
  return run, st, stopped, _message(run, st, interrupted)


def fit(cfg: TrainConfig, train: tuple, val: tuple, *, out_dir: str | os.PathLike | None = None,
        resume: bool = False, progress: bool = True,
        evaluate: Callable[[RNNParams], dict] | None = None, taus=None) -> FitResult:
  """Trains one model on ``train``, early-stopped on ``val``, and returns its best parameters;
  ``evaluate(params)`` (optional) gives extra metrics (e.g. validation MAE). ``out_dir``: proven
  writable before any training, else InputError; process 0 writes ``metrics.jsonl`` and
  ``checkpoint.msgpack`` there, a fresh run overwriting both (refusing to is the caller's
  decision). ``resume=True`` continues from the checkpoint (only ``epochs`` and ``devices`` may
  change). Ctrl-C saves the last complete epoch (``stopped="interrupted"``); a non-finite loss
  or gradient stops with ``stopped="nonfinite"``, the last good checkpoint kept. ``taus``: with
  ``cfg.loss == "pinball"``, the quantile level of each of the K outputs (else None)."""
  run, st, stopped, message = _fit(cfg, train, val, many=False, out_dir=out_dir, resume=resume,
                                   progress=progress, evaluate=evaluate, taus=taus)
  return FitResult(params=to_host(st.best_params), history=list(st.history[0]),
                   best_epoch=int(st.best_epoch[0]), best_val_loss=float(st.best_val[0]),
                   stopped=stopped[0], message=message, checkpoint=run.ckpt)


def fit_many(cfg: TrainConfig, train: tuple, val: tuple, *,
             out_dir: str | os.PathLike | None = None, resume: bool = False,
             progress: bool = True,
             evaluate: Callable[[RNNParams], dict] | None = None,
             taus=None) -> ManyFitResult:
  """Trains ``cfg.seeds`` models in one compiled program (``jax.vmap``): model i equals
  ``fit(replace(cfg, seed=cfg.seed + i))`` up to float rounding. Early stopping and a non-finite
  loss freeze one model (it rides along: vmap cannot skip it) while the others go on. Outputs,
  resume, Ctrl-C and ``taus`` as in ``fit``, metrics.jsonl with a line per model per epoch."""
  run, st, stopped, message = _fit(cfg, train, val, many=True, out_dir=out_dir, resume=resume,
                                   progress=progress, evaluate=evaluate, taus=taus)
  return ManyFitResult(params=to_host(st.best_params), histories=[list(h) for h in st.history],
                       best_epochs=[int(b) for b in st.best_epoch],
                       best_val_losses=np.asarray(st.best_val), stopped=stopped,
                       message=message, seeds=run.seeds, checkpoint=run.ckpt)

"""The state of a run between epochs, and the rules that advance it, as small pure functions:
which models' epoch counts (its losses finite), what improves, when to stop, and the commit that
keeps the new parameters and the best-so-far ones.

A run trains S models (S = 1 for fit); every per-model field is an array or tuple of length S.

Early stopping (Prechelt, "Early Stopping - But When?", 1998): after every epoch the validation
loss (the training loss, i.e. the notes' BCE) is computed on the whole validation set; when it
has not improved on the best for ``patience`` epochs, training stops and the best parameters are
returned. ``patience=0`` never stops early (the best parameters are still returned).
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

RUNNING = "running"


class RunState(NamedTuple):
  """Everything the next epoch depends on; replaced as a whole once an epoch is complete."""
  epoch: int
  params: Any                  # RNNParams, every field [S, ...] under fit_many
  opt_state: Any               # the optax state of ``params``
  best_params: Any             # RNNParams with the lowest validation loss so far
  best_epoch: np.ndarray       # [S] int
  best_val: np.ndarray         # [S] float64
  wait: np.ndarray             # [S] int
  status: tuple                # [S] "running" | "early_stop" | "nonfinite"
  history: tuple               # [S] tuples of dicts
  elapsed_s: float


def initial_state(params, opt_state, n_models: int) -> RunState:
  """Epoch 0: the initial parameters are the best so far, with no validation loss yet."""
  S = n_models
  return RunState(epoch=0, params=params, opt_state=opt_state, best_params=params,
                  best_epoch=np.zeros(S, np.int64), best_val=np.full(S, np.inf),
                  wait=np.zeros(S, np.int64), status=(RUNNING,) * S,
                  history=((),) * S, elapsed_s=0.0)


def check_finite(status: tuple, finite: np.ndarray, losses: np.ndarray, val: np.ndarray, *,
                 epoch: int, labels: list[str]) -> tuple[list[str], np.ndarray, list[str]]:
  """Which running models' epoch ``epoch`` counts: ``finite [S, steps]`` and ``losses [S, steps]``
  are the epoch's per-step flags and losses, ``val [S]`` the validation losses after it.

  Returns ``(status, advance [S] bool, faults)``: a model with a non-finite step or validation
  loss becomes "nonfinite" and gets a fault message (prefixed with its ``labels[i]``) naming the
  epoch and the first bad step; the other running models advance.
  """
  status = list(status)
  S, steps = finite.shape
  advance = np.zeros(S, bool)
  faults = []
  for i in range(S):
    if status[i] != RUNNING:
      continue
    if not finite[i].all():
      s = int(np.argmin(finite[i]))
      status[i] = "nonfinite"
      faults.append(f"{labels[i]}the loss or gradient became non-finite at epoch {epoch}, step "
                    f"{s + 1} of {steps} (loss {float(losses[i, s])})")
    elif not math.isfinite(val[i]):
      status[i] = "nonfinite"
      faults.append(f"{labels[i]}the validation loss became non-finite after epoch {epoch}")
    else:
      advance[i] = True
  return status, advance, faults


def early_stopping(st: RunState, status: list[str], advance: np.ndarray, val: np.ndarray, *,
                   epoch: int, patience: int):
  """Prechelt's rule for the models that ``advance`` in ``epoch`` with validation losses ``val``.

  A lower loss than the best so far improves (best epoch and loss, wait 0); otherwise ``wait``
  grows and a model that has waited ``patience`` epochs (0: never) becomes "early_stop".
  Returns new ``(best_epoch, best_val, wait, status, improved [S] bool)``; ``st`` is unchanged.
  """
  best_epoch, best_val, wait = st.best_epoch.copy(), st.best_val.copy(), st.wait.copy()
  status = list(status)
  improved = np.zeros(len(status), bool)
  for i in range(len(status)):
    if not advance[i]:
      continue
    if val[i] < best_val[i]:
      best_val[i], best_epoch[i], wait[i] = val[i], epoch, 0
      improved[i] = True
    else:
      wait[i] += 1
      if patience and wait[i] >= patience:
        status[i] = "early_stop"
  return best_epoch, best_val, wait, status, improved


def where(mask, new, old):
  """Per-leaf ``where(mask, new, old)``; ``mask`` is a scalar or a leading model axis ``[S]``."""
  mask = jnp.asarray(mask)

  def one(a, b):
    m = mask.reshape(mask.shape + (1,) * (jnp.ndim(a) - mask.ndim))
    return jnp.where(m, a, b)

  return jax.tree.map(one, new, old)


def commit(advance, improved, new, old, best):
  """Keeps ``new`` (params, opt_state) where ``advance``; the best params where ``improved``.

  Traced (jitted once per run shape in rnn_jax.train.programs): ``advance`` and ``improved`` are
  bool scalars for one model or ``[S]`` for many; returns ``(params, opt_state, best_params)``.
  """
  params, opt_state = where(advance, new, old)
  return params, opt_state, where(improved, new[0], best)

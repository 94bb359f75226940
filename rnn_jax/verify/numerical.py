"""Numerical faults and extremes: a loss that overflows, windows that are all zero, at capacity
or constant, and logits up to 1e30 in size.

``nonfinite`` trains with a learning rate that makes the loss overflow (the doc's faults
section); ``degenerate_windows`` and ``extreme_logits`` make its numerical section.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from rnn_jax.verify.inputs import GOOD, readings_csv
from rnn_jax.verify.observations import Observation, loadable, metric_rows, one_line
from rnn_jax.verify.runner import call_script
from rnn_jax.verify.trained import train_args


def nonfinite(workdir: Path) -> list[Observation]:
  """A learning rate that makes the loss overflow: exit 1, the message names epoch and step and
  the cures, the last good checkpoint stays and holds finite parameters."""
  from rnn_jax.train import checkpoint
  workdir.mkdir(parents=True, exist_ok=True)
  (workdir / "readings.csv").write_bytes(GOOD)
  argv = train_args("readings.csv", "run", "--optimizer", "sgd", "--lr", "1e6", "--clip", "0",
                    epochs=3)
  o = call_script("train_occupancy.py", argv, workdir)
  said = [line for line in o.stdout.splitlines() if "non-finite" in line]
  ok, epoch, err = loadable(workdir / "run")
  finite = ok and all(np.isfinite(np.asarray(a)).all() for a in
                      checkpoint.load_params(workdir / "run" / checkpoint.FILENAME))
  msg = said[0] if said else o.stdout + o.stderr   # printed whole in the doc
  at = re.search(r"at epoch (\d+), step (\d+) of (\d+)", msg)
  return [Observation(
      "nonfinite-loss", "--optimizer sgd --lr 1e6 --clip 0: the loss overflows",
      "exit status 1; the message names the epoch and step, keeps the last good checkpoint and "
      "suggests --lr, --clip and --init irnn; no results.json",
      f"exit {o.rc}: {one_line(msg, 1000)}",
      {"exit status 1": o.rc == 1, "names epoch and step": at is not None,
       "suggests the cures": all(c in msg for c in ("--lr", "--clip", "--init irnn")),
       "last good checkpoint kept (the epoch before)": ok and at is not None
       and epoch == int(at.group(1)) - 1 and f"checkpoint (epoch {epoch})" in msg,
       "its parameters are finite": finite,
       "no results.json": not (workdir / "run" / "results.json").exists(),
       "nothing on stderr": o.stderr == ""})]


def _stretches(i: np.ndarray, capacity: int = 60) -> np.ndarray:
  """A daily rhythm with whole windows all zero (day 2), at capacity (day 4, 10:00-16:00),
  constant (day 6, 08:00-14:00) and, at the end of the file, 6 hours at capacity."""
  hours = (i % 144) / 6
  day = i // 144
  v = np.round(0.4 * capacity + 0.35 * capacity * np.sin(2 * np.pi * (hours - 9) / 24))
  v = np.where(day == 2, 0, v)
  v = np.where((day == 4) & (hours >= 10) & (hours < 16), capacity, v)
  v = np.where((day == 6) & (hours >= 8) & (hours < 14), 17, v)
  v[-36:] = capacity
  return v


def degenerate_windows(workdir: Path) -> list[Observation]:
  """Training and forecasting on windows that are all zero, all at capacity or constant."""
  workdir.mkdir(parents=True, exist_ok=True)
  n = 10 * 144
  files = {"stretches.csv": readings_csv(n, value=_stretches),
           "zeros.csv": readings_csv(60, value=lambda i: 0 * i),
           "full.csv": readings_csv(60, value=lambda i: 0 * i + 60),
           "constant.csv": readings_csv(60, value=lambda i: 0 * i + 17)}
  for name, content in files.items():
    (workdir / name).write_bytes(content)
  o = call_script("train_occupancy.py", train_args("stretches.csv", "run", epochs=2), workdir)
  checks = {"trains (exit 0)": o.rc == 0}
  observed = [f"training exit {o.rc}"]
  if o.rc == 0:
    metrics = metric_rows(workdir / "run")
    checks["losses finite"] = all(np.isfinite(r[k]) for r in metrics
                                  for k in ("train_loss", "val_loss"))
    results = json.loads((workdir / "run" / "results.json").read_text())
    maes = [v for s in results["splits"].values() for v in s["model"]["mae"]]
    checks["model MAE finite"] = bool(np.isfinite(maes).all())
    for name in ("stretches.csv", "zeros.csv", "full.csv", "constant.csv"):
      f = call_script("forecast.py", ["--run", "run", "--csv", name, "--json"], workdir)
      people = [x["value"] for x in json.loads(f.stdout)["forecasts"]] if f.rc == 0 else []
      checks[f"forecast on {name} finite, within 0..60"] = (
          f.rc == 0 and len(people) == 3 and all(0 <= p <= 60 for p in people))
      observed.append(f"{name}: " + (", ".join(f"{p:.1f}" for p in people) if people
                                     else f"exit {f.rc} {f.stderr.strip()}"))
  return [Observation(
      "degenerate-windows", "train 2 epochs on a file whose windows include all-zero, "
      "at-capacity and constant stretches; forecast on windows that are all 0, all 60 (the "
      "capacity) and all 17",
      "finite losses and MAE; every forecast finite and within 0..capacity",
      "; ".join(observed), checks)]


def extreme_logits(workdir: Path) -> list[Observation]:
  """The loss at logits from 1e-3 to 1e30 in size against targets exactly 0 and 1, float32 and
  float64: finite, and the hand BPTT gradient equals autodiff's (tests/core/test_bptt.py checks
  +-1000 in depth; this extends the sizes to float32's range)."""
  import jax
  import jax.numpy as jnp
  from rnn_jax.core import bptt, model
  scales = np.asarray([1e-3, 1.0, 1e2, 1e4, 1e8, 1e15, 1e30])
  rng = np.random.default_rng(0)
  H, D, K = 4, 1, 2
  arrays = dict(U=rng.normal(0, 0.5, (H, H)), V=rng.normal(0, 1, (H, D)), b=np.full(H, 0.1),
                W=rng.normal(0, 0.5, (K, H)))
  xs = np.linspace(0.1, 1.0, 2 * 3 * D).reshape(2, 3, D)
  ys = np.asarray([[0.0, 1.0], [1.0, 0.0]])       # one right, one wrong at every scale
  checks, worst = {}, 0.0
  previous = jax.config.read("jax_enable_x64")
  jax.config.update("jax_enable_x64", True)
  try:
    for dtype in ("float32", "float64"):
      def both(c, dtype=dtype):
        p = model.RNNParams(**{k: jnp.asarray(v, dtype) for k, v in arrays.items()}, c=c)
        x, y = jnp.asarray(xs, dtype), jnp.asarray(ys, dtype)
        return bptt.loss_and_grads(p, x, y), jax.value_and_grad(model.loss)(p, x, y)
      cs = jnp.asarray(np.stack([scales, -scales], 1), dtype)          # c = [s, -s]
      (h_loss, h_grads, *_), (a_loss, a_grads) = jax.jit(jax.vmap(both))(cs)
      for i, scale in enumerate(scales):
        hand = [np.asarray(g[i], np.float64) for g in h_grads]
        auto = [np.asarray(g[i], np.float64) for g in a_grads]
        finite = (np.isfinite(float(h_loss[i])) and np.isfinite(float(a_loss[i]))
                  and all(np.isfinite(g).all() for g in hand + auto))
        rel = max(float(np.max(np.abs(h - a))) / max(1.0, float(np.max(np.abs(a))))
                  for h, a in zip(hand, auto))
        worst = max(worst, rel)
        tol = 1e-5 if dtype == "float32" else 1e-12
        checks[f"{dtype} |logit| {scale:g}: finite, hand = autodiff"] = finite and rel <= tol
  finally:
    jax.config.update("jax_enable_x64", previous)
  return [Observation(
      "extreme-logits", "logits of +-1e-3 .. +-1e30 (float32 and float64) against targets "
      "exactly 0 and 1, one right and one wrong",
      "the loss and its gradient are finite; the hand BPTT equals autodiff",
      f"all finite and equal: {all(checks.values())}; largest relative |hand - autodiff| "
      f"{worst:.1g}", checks)]

"""PNG plots of a run: learning curves, forecasts against actuals, MAE by horizon, gradient norms,
a panel's ratios to the best baseline.

Every function checks its inputs (``ValueError`` before drawing, no file left) and writes one
figure atomically (rnn_jax.common.fileio.atomic_path). Figures are ``matplotlib.figure.Figure``,
never ``pyplot``: no display, no global backend switched, no figure kept alive in pyplot's
registry (matplotlib docs, "Embedding in a web application server")."""
from __future__ import annotations

import math
import os
import warnings
from typing import Mapping, Sequence

import matplotlib
import matplotlib.colors
import matplotlib.dates as mdates
import numpy as np
from matplotlib.figure import Figure

from rnn_jax.common.checks import is_number
from rnn_jax.common.fileio import atomic_path

# Per-epoch keys that are not a metric to draw (fit_many's rows carry "model" and "seed").
_NOT_METRICS = ("epoch", "step", "steps", "lr", "learning_rate", "seconds", "time", "elapsed",
                "model", "seed")


def _figure(size=(7.5, 4.5), rows: int = 0):
  fig = Figure(figsize=size, layout="constrained")
  return fig, (fig.subplots(rows, 1, sharex=True, squeeze=False)[:, 0] if rows else
               fig.subplots())


def _save(fig: Figure, path: str | os.PathLike) -> Figure:
  with atomic_path(path) as tmp:
    fig.savefig(tmp, format="png", dpi=110)
  return fig


def _colors() -> list:
  return matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]


def _horizons(horizons_minutes) -> list[float]:
  """The horizons in minutes as floats; ValueError when there are none."""
  horizons = [float(h) for h in horizons_minutes]
  if not horizons:
    raise ValueError("horizons_minutes: expected at least one horizon")
  return horizons


def _horizon_label(minutes) -> str:
  minutes = float(minutes)
  return f"+{minutes / 60:g} h" if minutes >= 60 and minutes % 60 == 0 else f"+{minutes:g} min"


def _members(history) -> list[list[Mapping]]:
  """One model's history (a list of per-epoch dicts) or several, as a list of histories."""
  if (isinstance(history, Sequence) and history
      and all(isinstance(h, Sequence) and not isinstance(h, (str, Mapping)) for h in history)):
    return [h for one in history for h in _members(one)]
  if isinstance(history, Mapping) or not isinstance(history, Sequence) or not history:
    what = "an empty list" if isinstance(history, Sequence) else type(history).__name__
    raise ValueError(f"history: expected a non-empty list of per-epoch dicts, got {what}")
  for i, row in enumerate(history):
    if not isinstance(row, Mapping):
      raise ValueError(f"history[{i}]: expected a dict of per-epoch metrics, got "
                       f"{type(row).__name__}")
  return [list(history)]


def _metric_keys(history) -> list[str]:
  """Numeric keys in first-seen order, leaving out counters, clocks and identifiers."""
  keys: list[str] = []
  for row in history:
    keys += [k for k, v in row.items() if k not in keys and is_number(v) and k not in _NOT_METRICS
             and not k.endswith(("_s", "_seconds", "_time"))]
  return keys


def _epochs(history) -> np.ndarray:
  if all(is_number(row.get("epoch")) for row in history):
    return np.asarray([row["epoch"] for row in history], float)
  return np.arange(1, len(history) + 1, dtype=float)


def _series(history, key) -> np.ndarray:
  """The per-epoch values of ``key``; NaN where an epoch lacks it (line breaks there)."""
  return np.asarray([float(row[key]) if is_number(row.get(key)) else np.nan for row in history])


def _plot_series(ax, members, keys, *, color_offset=0, style=None) -> tuple[np.ndarray, dict]:
  """Draws each series of ``keys`` (validation dashed): one model as it is, several as their
  mean bold over each model's faint curve. Returns the epochs and the drawn series by key."""
  epochs = np.unique(np.concatenate([_epochs(h) for h in members]))
  colors, many, drawn = _colors(), len(members) > 1, {}
  for i, key in enumerate(keys):
    stack = np.full((len(members), len(epochs)), np.nan)
    for m, h in enumerate(members):
      stack[m, np.searchsorted(epochs, _epochs(h))] = _series(h, key)
    color = colors[(color_offset + i) % len(colors)]
    line = style or ("--" if key.startswith("val") else "-")
    drawn[key] = stack[0]
    if many:
      for row in stack:
        ax.plot(epochs, row, color=color, linestyle=line, linewidth=0.7, alpha=0.3)
      with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # an epoch no model reached
        drawn[key] = np.nanmean(stack, axis=0)
    ax.plot(epochs, drawn[key], color=color, linestyle=line, linewidth=1.6,
            marker="o" if len(epochs) < 30 else None, markersize=3,
            label=f"{key} (mean)" if many else key)
  return epochs, drawn


def _best(epochs, values, mode: str):
  """(epoch, value) of the lowest (``mode="min"``) or highest finite value; None without one."""
  finite = np.isfinite(values)
  if not finite.any():
    return None
  masked = np.where(finite, values, np.inf if mode == "min" else -np.inf)
  i = int(np.argmin(masked) if mode == "min" else np.argmax(masked))
  return epochs[i], values[i]


def _curves(history, word: str, title: str, best_key: str, mode: str, fmt: str, chance=None):
  """The figure of every numeric key with ``word`` in its name, the best of ``best_key`` (or the
  first) marked; returns (figure, axis, histories, the other keys, the drawn series)."""
  members = _members(history)
  found = _metric_keys([row for h in members for row in h])
  keys = [k for k in found if word in k]
  if not keys:
    raise ValueError(f"history: no numeric key with '{word}' in its name "
                     f"(found {found or 'none'})")
  fig, ax = _figure()
  epochs, series = _plot_series(ax, members, keys)
  if chance is not None:
    ax.axhline(chance, color="0.6", linewidth=1, label=f"chance ({chance:.3g})")
  best_key = best_key if best_key in series else keys[0]
  best = _best(epochs, series[best_key], mode)
  if best is not None:
    ax.axvline(best[0], color="0.35", linestyle=":", linewidth=1.2,
               label=f"best epoch {best[0]:g} ({best_key} {best[1]:{fmt}})")
  n = len(members)
  ax.set(xlabel="epoch", ylabel=word,
         title=title if n == 1 else f"{title}\n{n} models: their mean bold, each model faint")
  ax.grid(True, alpha=0.3)
  return fig, ax, members, [k for k in found if word not in k], series


def learning_curves(history, path: str | os.PathLike, *, title: str | None = None) -> Figure:
  """Training and validation loss per epoch, the best (lowest mean ``val_loss``) marked.

  ``history``: one dict per epoch (``{"epoch": 3, "train_loss": ..., "val_mae": ...}``), or a
  list of such lists, one per model (fit_many's). Losses go on the left axis (log scale when they
  span more than a factor of 30), other metrics on a right axis. Missing values are gaps."""
  fig, ax, members, other_keys, losses = _curves(history, "loss", title or "learning curves",
                                                  "val_loss", "min", ".4g")
  positive = np.concatenate([v[np.isfinite(v)] for v in losses.values()])
  if positive.size and positive.min() > 0 and positive.max() / positive.min() > 30:
    ax.set_yscale("log")
  handles = ax.get_legend_handles_labels()[0]
  if other_keys:
    ax2 = ax.twinx()
    _plot_series(ax2, members, other_keys, color_offset=len(losses), style="-.")
    handles += ax2.get_legend_handles_labels()[0]
    ax2.set_ylabel(", ".join(other_keys))
  fig.legend(handles, [h.get_label() for h in handles], loc="outside lower center",
             ncol=min(len(handles), 4), fontsize="small")
  return _save(fig, path)


def accuracy_curve(history, path: str | os.PathLike, *, title: str | None = None,
                   chance: float | None = None) -> Figure:
  """Accuracy per epoch, the highest ``val_accuracy`` marked; ``history`` as for
  ``learning_curves``; ``chance`` (for example 1/26) draws the chance level."""
  fig, ax, *_ = _curves(history, "accuracy", title or "accuracy", "val_accuracy", "max", ".4f",
                        chance)
  ax.legend(loc="lower right", fontsize="small")
  return _save(fig, path)


def _with_breaks(x: np.ndarray, ys: list[np.ndarray]):
  """Inserts a NaN after every step longer than 1.5 typical steps so lines break at gaps."""
  if len(x) < 3:
    return x, ys
  steps = np.diff(x).astype("timedelta64[s]").astype(float)
  typical = np.median(steps[steps > 0]) if (steps > 0).any() else 0.0
  gaps = np.flatnonzero(steps > 1.5 * typical) + 1 if typical > 0 else np.array([], int)
  if gaps.size == 0:
    return x, ys
  x_new = np.insert(x, gaps, x[gaps - 1] + (x[gaps] - x[gaps - 1]) // 2)
  return x_new, [np.insert(y.astype(float), gaps, np.nan) for y in ys]


def forecast_vs_actual(times, actual, predictions: Mapping[str, np.ndarray],
                       horizons_minutes: Sequence[float], path: str | os.PathLike, *,
                       days: float | None = 7.0, ylabel: str = "occupancy",
                       title: str | None = None, band=None, band_label: str = "interval") -> None:
  """Panel j: the actual value and each method's forecast against ``times + horizon_j``.

  ``times [N]`` (datetime64): when each forecast is made; ``actual [N, n_h]``: the value
  ``horizons_minutes[j]`` after ``times[i]``; ``predictions``: method -> ``[N, n_h]``, the first
  the model (solid), the rest baselines (dashed); ``band``: ``(lo, hi)``, each ``[N, n_h]``,
  shaded. ``[N]`` arrays do for one horizon. Only the first ``days`` days (``None``: all)."""
  times = np.asarray(times)
  if times.ndim != 1 or not np.issubdtype(times.dtype, np.datetime64):
    raise ValueError(f"times: expected a 1-D numpy datetime64 array, got dtype {times.dtype} "
                     f"shape {list(times.shape)}")
  horizons = _horizons(horizons_minutes)
  n_h = len(horizons)

  def as_2d(name, a):
    a = np.asarray(a, float)
    a = a[:, None] if a.ndim == 1 and n_h == 1 else a
    if a.shape != (len(times), n_h):
      raise ValueError(f"{name}: expected shape [{len(times)}, {n_h}] (one row per time, one "
                       f"column per horizon), got {list(a.shape)}")
    return a

  actual = as_2d("actual", actual)
  if not predictions:
    raise ValueError("predictions: expected at least one method")
  preds = {name: as_2d(f"predictions[{name!r}]", p) for name, p in predictions.items()}
  bands = [] if band is None else [as_2d("band[0]", band[0]), as_2d("band[1]", band[1])]
  if len(times) == 0:
    raise ValueError("times: no forecasts to draw (empty)")
  rows = np.argsort(times, kind="stable")
  if days is not None:
    end = times[rows[0]] + np.timedelta64(int(round(float(days) * 86400)), "s")
    rows = rows[times[rows] < end]
  times = times[rows]
  columns = [actual[rows], *(p[rows] for p in preds.values()), *(b[rows] for b in bands)]

  fig, axes = _figure((11, 2.6 * n_h + 0.6), rows=n_h)
  for j, (ax, h) in enumerate(zip(axes, horizons)):
    x, (y_act, *ys) = _with_breaks(times + np.timedelta64(int(round(h * 60)), "s"),
                                   [c[:, j] for c in columns])
    ax.plot(x, y_act, color="black", linewidth=1.3, label="actual", zorder=3)
    if bands:
      ax.fill_between(x, ys[-2], ys[-1], color="C0", alpha=0.2, linewidth=0, label=band_label)
    for i, (name, y) in enumerate(zip(preds, ys)):
      ax.plot(x, y, linewidth=1.1 if i == 0 else 0.9, linestyle="-" if i == 0 else "--",
              alpha=1.0 if i == 0 else 0.8, label=name)
    ax.set_ylabel(ylabel)
    ax.set_title(f"forecast {_horizon_label(h)} ahead", fontsize="medium", loc="left")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right", fontsize="small", ncol=min(len(preds) + 1, 4))
  locator = mdates.AutoDateLocator()
  axes[-1].xaxis.set_major_locator(locator)
  axes[-1].xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
  fig.suptitle(title or "forecast against actual")
  _save(fig, path)


def mae_by_horizon(results_split: Mapping[str, Mapping], horizons_minutes: Sequence[float],
                   path: str | os.PathLike, *, ylabel: str, title: str | None = None) -> None:
  """Grouped bars of every method's MAE by horizon; ``results_split``: method -> ``{"mae": [one
  per horizon]}`` (results.json), the model first; a None or NaN leaves its bar out."""
  horizons = _horizons(horizons_minutes)
  if not results_split:
    raise ValueError("results_split: expected at least one method")
  values = {}
  for name, result in results_split.items():
    mae = result.get("mae") if isinstance(result, Mapping) else None
    if mae is None or isinstance(mae, (str, bytes)) or not hasattr(mae, "__len__"):
      raise ValueError(f"results_split[{name!r}]: expected a dict with an 'mae' list")
    if len(mae) != len(horizons):
      raise ValueError(f"results_split[{name!r}]['mae']: {len(mae)} values for "
                       f"{len(horizons)} horizons")
    values[name] = np.asarray([np.nan if v is None else float(v) for v in mae])
  n_m, x, colors = len(values), np.arange(len(horizons)), _colors()
  fig, ax = _figure((max(6.0, 1.2 + len(horizons) * (0.5 + 0.35 * n_m)), 4.5))
  for i, (name, v) in enumerate(values.items()):
    pos, ok = x + (i - (n_m - 1) / 2) * 0.8 / n_m, np.isfinite(v)
    ax.bar(pos[ok], v[ok], 0.8 / n_m, label=name, color=colors[i % len(colors)],
           edgecolor="black" if i == 0 else None, linewidth=1.0 if i == 0 else 0)
    for p in pos[~ok]:
      ax.text(p, 0, "n/a", ha="center", va="bottom", fontsize="x-small", rotation=90)
  ax.set_xticks(x, [_horizon_label(h) for h in horizons])
  ax.set(xlabel="forecast horizon", ylabel=ylabel, title=title or "mean absolute error by horizon")
  ax.grid(True, axis="y", alpha=0.3)
  ax.legend(fontsize="small", ncol=min(n_m, 3))
  _save(fig, path)


def grad_norms(norms, path: str | os.PathLike, *, title: str | None = None) -> None:
  """``||dL/dh_t||`` against t (1: the oldest step, T: next to the loss) on a log axis, a line per
  row of ``norms [T]`` or ``[n, T]`` and their median in black; zeros and non-finite values
  leave gaps. The title gives ``||dL/dh_1|| / ||dL/dh_T||`` of the (median) curve."""
  norms = np.asarray(norms, float)
  norms = norms[None, :] if norms.ndim == 1 else norms
  if norms.ndim != 2 or norms.size == 0:
    raise ValueError(f"norms: expected shape [T] or [n, T] with T >= 1, got {list(norms.shape)}")
  t = np.arange(1, norms.shape[1] + 1)
  plottable = np.where(np.isfinite(norms) & (norms > 0), norms, np.nan)
  fig, ax = _figure()
  many = norms.shape[0] > 1
  for row in plottable:
    ax.plot(t, row, marker="o" if len(t) <= 50 else None, markersize=3,
            linewidth=0.8 if many else 1.5, alpha=0.45 if many else 1.0,
            label=None if many else "||dL/dh_t||")
  curve = plottable[0]
  if many:
    finite_cols = np.isfinite(plottable).any(axis=0)
    curve = np.full(norms.shape[1], np.nan)
    curve[finite_cols] = np.nanmedian(plottable[:, finite_cols], axis=0)
    ax.plot(t, curve, color="black", linewidth=2, label="median")
  if np.isfinite(plottable).any():
    ax.set_yscale("log")
  else:
    ax.text(0.5, 0.5, "no positive finite norm to draw", transform=ax.transAxes, ha="center")
  ratio = curve[0] / curve[-1] if len(curve) > 1 else math.nan
  ax.set(xlabel="t (1 = oldest step of the window, T = last)", ylabel="||dL/dh_t||")
  ax.grid(True, which="both", alpha=0.3)
  ax.legend(fontsize="small")                   # one line is labelled: the only row or the median
  suffix = f"  (||dL/dh_1|| / ||dL/dh_T|| = {ratio:.3g})" if np.isfinite(ratio) else ""
  ax.set_title((title or "gradient norm through time") + suffix, fontsize="medium")
  _save(fig, path)


def ratio_grid(tables: Mapping[str, np.ndarray], rows: Sequence[str],
               horizons_minutes: Sequence[float], path: str | os.PathLike, *,
               title: str | None = None) -> None:
  """One heatmap per table (``name -> [len(rows), len(horizons)]``, e.g. ``{"val": ..., "test":
  ...}``): a row per series, a column per horizon, each cell a ratio such as the model's MAE over
  the best baseline's, written in the cell. Blue below 1, red above, on a log scale symmetric
  about 1 (a halving as strong as a doubling); a NaN cell is left grey."""
  horizons = _horizons(horizons_minutes)
  rows = [str(r) for r in rows]
  if not rows:
    raise ValueError("rows: expected at least one series")
  if not tables:
    raise ValueError("tables: expected at least one table")
  grids = {}
  for name, table in tables.items():
    grid = np.asarray(table, float)
    if grid.shape != (len(rows), len(horizons)):
      raise ValueError(f"tables[{name!r}]: expected shape [{len(rows)}, {len(horizons)}] (a row "
                       f"per series, a column per horizon), got {list(grid.shape)}")
    if (grid[np.isfinite(grid)] <= 0).any():
      raise ValueError(f"tables[{name!r}]: expected positive ratios")
    grids[name] = grid
  finite = np.concatenate([g[np.isfinite(g)] for g in grids.values()])
  spread = max(1.25, float(np.exp(np.abs(np.log(finite)).max())) if finite.size else 1.25)
  norm = matplotlib.colors.LogNorm(vmin=1 / spread, vmax=spread)
  cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="0.85")
  n = len(grids)
  fig = Figure(figsize=(2.4 + 0.07 * max(map(len, rows)) + 2.2 * n * max(1, len(horizons) / 3),
                        max(3.0, 1.8 + 0.42 * len(rows))), layout="constrained")
  axes = fig.subplots(1, n, sharey=True, squeeze=False)[0]
  for ax, (name, grid) in zip(axes, grids.items()):
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, norm=norm, aspect="auto")
    for (i, j), v in np.ndenumerate(grid):
      ax.text(j, i, "n/a" if not np.isfinite(v) else f"{v:.3f}", ha="center", va="center",
              fontsize="small", color="white" if np.isfinite(v) and abs(np.log(v)) >
              0.6 * np.log(spread) else "black")
    ax.set_xticks(range(len(horizons)), [_horizon_label(h) for h in horizons])
    ax.set_yticks(range(len(rows)), rows)
    ax.set_title(name, fontsize="medium")
  bar = fig.colorbar(image, ax=axes.tolist(), shrink=0.9, label="ratio (below 1: the model wins)")
  ticks = np.geomspace(1 / spread, spread, 5)
  bar.set_ticks(ticks, labels=[f"{t:.2f}" for t in ticks])
  bar.minorticks_off()
  fig.suptitle(title or "model MAE / best baseline MAE")
  _save(fig, path)

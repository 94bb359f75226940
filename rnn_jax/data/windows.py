"""Windows: ``WindowSpec``, the chronological splits, ``make_dataset`` and ``newest_window``.
Axes as in rnn_jax.core.model: ``xs [N, T, D]`` windows of T steps with D = 1 input per step
(occupancy fraction, the derivation notes' ``x in R^24``) or D = 5 with calendar features;
``ys [N, K]`` targets in [0, 1], ``K = len(horizons)`` for the task ``horizons`` (the notes' 3
sigmoid outputs), ``K = 3`` (low / medium / high) for ``levels``."""
from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple, Sequence

import numpy as np

from rnn_jax.common import cli
from rnn_jax.common.errors import InputError
from rnn_jax.common.checks import check_capacity, check_int, check_step, choice
from rnn_jax.data.grid import N_CALENDAR, Grid, to_grid
from rnn_jax.data.readings import Readings

FEATURES = ("occupancy", "calendar")
TASKS = ("horizons", "levels")
SPLITS = ("train", "val", "test")
LEVELS = ("low", "medium", "high")


@dataclasses.dataclass(frozen=True)
class WindowSpec:
  """How readings become windows and targets. Fields map one to one onto script flags."""
  window: int = cli.option(24,
      "input steps per window T (24 x 10 min = 4 hours, the notes' x in R^24)")
  horizons: tuple[int, ...] = cli.option((1, 3, 6),
      "steps ahead to predict, one sigmoid output each (1,3,6 = +10, +30, +60 min)")
  features: tuple[str, ...] = cli.option(("occupancy",),
      "inputs per step: occupancy (reading / capacity) and optionally calendar (sin/cos of "
      "local time of day and of week)")
  task: str = cli.option("horizons",
      "horizons: occupancy fraction at each horizon; levels: low/medium/high at level_horizon")
  level_horizon: int | None = cli.option(None,
      "for task levels: steps ahead (none = the last of horizons)")
  splits: tuple[float, ...] = cli.option((0.7, 0.15, 0.15),
      "chronological train,val,test fractions of the grid")
  step_minutes: int = cli.option(10, "grid step in minutes (a divisor of 1440)")
  max_gap: int = cli.option(2,
      "longest run of empty bins that is interpolated; longer runs are gaps")

  def __post_init__(self):
    set_ = lambda name, value: object.__setattr__(self, name, value)
    set_("window", check_int("window", self.window, 1))
    horizons = self.horizons
    if isinstance(horizons, (int, np.integer)) and not isinstance(horizons, bool):
      horizons = (horizons,)
    if isinstance(horizons, str) or not isinstance(horizons, Sequence) or not horizons:
      raise InputError(f"--horizons: expected one or more integers >= 1, got {self.horizons!r}")
    horizons = tuple(check_int("horizons", h, 1) for h in horizons)
    if len(set(horizons)) != len(horizons):
      raise InputError(f"--horizons: expected distinct steps, got {self.horizons!r}")
    set_("horizons", horizons)
    features = (self.features,) if isinstance(self.features, str) else tuple(self.features)
    unknown = [f for f in features if f not in FEATURES]
    if unknown or not features:
      raise InputError(f"--features: unknown name {unknown[0]!r}; expected names from "
                       f"{', '.join(FEATURES)}" if unknown else
                       "features: expected at least 'occupancy'")
    if "occupancy" not in features:
      raise InputError(f"--features: expected 'occupancy' among them (the notes' input), got "
                       f"{','.join(features)}")
    set_("features", tuple(f for f in FEATURES if f in features))
    choice("task", self.task, TASKS)
    if self.level_horizon is not None:
      set_("level_horizon", check_int("level_horizon", self.level_horizon, 1))
    splits = self.splits
    if isinstance(splits, str) or not isinstance(splits, Sequence) or len(splits) != 3:
      raise InputError(f"--splits: expected three fractions train,val,test, got {splits!r}")
    try:
      splits = tuple(float(s) for s in splits)
    except (TypeError, ValueError):
      raise InputError(f"--splits: expected three numbers, got {self.splits!r}") from None
    if not all(math.isfinite(s) and s > 0 for s in splits) or abs(sum(splits) - 1) > 1e-6:
      raise InputError(f"--splits: expected three fractions > 0 that sum to 1, got {self.splits!r}")
    set_("splits", splits)
    set_("step_minutes", check_step(self.step_minutes))
    set_("max_gap", check_int("max_gap", self.max_gap, 0))

  @property
  def target_horizons(self) -> tuple[int, ...]:
    if self.task == "levels":
      return (self.level_horizon if self.level_horizon is not None else self.horizons[-1],)
    return self.horizons

  @property
  def input_size(self) -> int:
    return 1 + (N_CALENDAR if "calendar" in self.features else 0)

  @property
  def output_size(self) -> int:
    return len(LEVELS) if self.task == "levels" else len(self.horizons)

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True, eq=False)
class Split:
  """The windows of one split. N windows, T input steps, D inputs, K outputs, H target horizons."""
  name: str
  xs: np.ndarray             # [N, T, D] float32 model inputs
  ys: np.ndarray             # [N, K] float32 targets in [0, 1]
  window_people: np.ndarray  # [N, T] float64 the window's readings in people
  target_people: np.ndarray  # [N, H] float64 the readings at the target horizons, in people
  naive_day: np.ndarray      # [N, H] float64 the reading one day before each target (NaN: none)
  naive_week: np.ndarray     # [N, H] float64 the reading one week before each target (NaN: none)
  end_index: np.ndarray      # [N] int64 grid bin of the window's last input step
  end_times: np.ndarray      # [N] datetime64[ns] UTC start of that bin (the forecast origin)
  target_times: np.ndarray   # [N, H] datetime64[ns] UTC start of each target bin
  calendar: np.ndarray       # [N, 4] float64 calendar features at the window's last step
  levels: np.ndarray | None  # [N] int64 level 0/1/2 of the target (task levels), else None
  bounds: tuple[int, int]    # [start, stop) grid bins of the split

  def __len__(self) -> int:
    return int(self.xs.shape[0])


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
  """Windows for training and evaluation, and everything fitted on the training split."""
  spec: WindowSpec
  grid: Grid
  capacity: float                    # people; inputs and targets are divided by it
  capacity_fitted: bool              # True: fitted on the training split (``robust_max``)
  tertiles: tuple[float, float] | None  # people: level boundaries (task levels), from training
  horizons: tuple[int, ...]          # the target horizons H (spec.target_horizons)
  train: Split
  val: Split
  test: Split
  path: str
  sha256: str | None
  n_readings: int = 0                # readings the grid was made of (after masking faults)
  masked: dict | None = None         # ``Readings.masked()``: sensor faults dropped before the grid
  whole_counts: bool = False         # every training reading is a whole number (people, cars)

  def __getitem__(self, name: str) -> Split:
    if name not in SPLITS:
      raise KeyError(f"split: expected one of {SPLITS}, got {name!r}")
    return getattr(self, name)

  def to_people(self, fractions) -> np.ndarray:
    return np.asarray(fractions, np.float64) * self.capacity

  def median_point(self, people) -> np.ndarray:
    """A median forecast in people as the point forecast: rounded to whole numbers when the
    series counts (``whole_counts``). A median of whole-number values can always be taken whole,
    and the MAE rewards a median; rounding an estimate recovers it when within 0.5 of it."""
    people = np.asarray(people, np.float64)
    return np.round(people) if self.whole_counts else people

  def summary(self) -> dict:
    """JSON-ready facts about the data (for config.json and the README)."""
    times, step = self.grid.times, np.timedelta64(self.grid.step_minutes, "m")
    return {
        "path": self.path, "sha256": self.sha256, "capacity": self.capacity,
        "capacity_fitted": self.capacity_fitted, "readings": self.n_readings,
        "masked": self.masked, "whole_counts": self.whole_counts,
        "tertiles": list(self.tertiles) if self.tertiles is not None else None,
        "horizons": list(self.horizons), "grid_bins": len(self.grid),
        "grid_valid_bins": int(self.grid.valid.sum()),
        "grid_interpolated_bins": int(self.grid.interpolated.sum()),
        "grid_start_utc": str(times[0]), "grid_end_utc": str(times[-1] + step),
        "splits": {s.name: {"n_windows": len(s), "start_utc": str(times[s.bounds[0]]),
                            "end_utc": str(times[s.bounds[1] - 1] + step)}
                   for s in (self.train, self.val, self.test)}}


def levels_of(people, tertiles: tuple[float, float]) -> np.ndarray:
  """int64 level: 0 low (<= tertiles[0]), 1 medium (<= tertiles[1]), 2 high."""
  people = np.asarray(people, np.float64)
  return (people > tertiles[0]).astype(np.int64) + (people > tertiles[1]).astype(np.int64)


def _window_ends(valid: np.ndarray, lo: int, hi: int, window: int, ahead: int) -> np.ndarray:
  """Grid bins e such that bins e-window+1 .. e+ahead all lie in [lo, hi) and are valid."""
  bad = np.concatenate([[0], np.cumsum(~valid)])
  ends = np.arange(lo + window - 1, hi - ahead, dtype=np.int64)
  n_bad = bad[ends + ahead + 1] - bad[ends - window + 1]
  return ends[n_bad == 0]


def _longest_run(valid: np.ndarray) -> int:
  if not valid.any():
    return 0
  edges = np.diff(np.concatenate([[0], valid.astype(np.int8), [0]]))
  return int((np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)).max())


def _inputs(grid: Grid, calendar: np.ndarray | None, ends: np.ndarray, window: int,
            capacity: float) -> tuple[np.ndarray, np.ndarray]:
  """xs [N, T, D] float32 and the windows' readings [N, T] float64."""
  idx = ends[:, None] + np.arange(-window + 1, 1)[None, :]
  people = grid.values[idx]
  parts = [(people / capacity)[..., None]]
  if calendar is not None:
    parts.append(calendar[idx])
  return np.concatenate(parts, -1).astype(np.float32), people


def make_dataset(readings: Readings, spec: WindowSpec | None = None) -> Dataset:
  """Windows for every split, with targets and what the baselines need. Splits are chronological
  fractions of the grid's bins; a window (its T inputs and every bin up to its furthest target)
  lies inside one split and contains no gap bin. InputError when a split has no window. Fitted
  on the training split only:
  * capacity, when ``readings.capacity`` is None: ``robust_max`` of the training readings, the
    smallest value at which the sigmoid outputs (at most 1) reach every training target except a
    single-reading spike; a high quantile would clip the busiest days. A reading above it (a
    spike, or a later busier day) gives an input above 1 and a target clipped to 1 (``ys``);
    ``target_people`` keep the real value, so errors in people stay honest. The gym file's
    maximum, 145 people on Monday 2015-08-24 13:20 local (two days before its
    ``is_during_semester`` turns 1), follows 134, 139 and 119 (12:40..13:00) and precedes 105
    (13:30): a real peak within a quarter of the 139 that two of three consecutive readings
    reach, not a glitch, so its fitted capacity is 145.
  * whole_counts: every training reading is a whole number (the series counts people or cars),
    so a median forecast can be rounded to one (rnn_jax.forecasting.occupancy.point_forecast).
  * tertiles (task levels): the 1/3 and 2/3 quantiles of the training windows' targets at the
    level horizon; low is ``<= t1``, medium ``<= t2``, high above (ties at 0 go to low)."""
  spec = spec if spec is not None else WindowSpec()
  grid = to_grid(readings, spec.step_minutes, spec.max_gap)
  horizons = np.asarray(spec.target_horizons, np.int64)
  m, f = len(grid), spec.splits
  b1, b2 = int(round(m * f[0])), int(round(m * (f[0] + f[1])))
  bounds = {"train": (0, b1), "val": (b1, b2), "test": (b2, m)}
  ends = _usable_ends(readings.path, grid.valid, bounds, spec, int(horizons.max()))
  train_end = grid.times[0] + np.timedelta64(b1 * spec.step_minutes, "m")
  train_values = readings.value[readings.time_utc < train_end]
  capacity = readings.capacity
  if capacity is None:
    capacity = robust_max(train_values)
    if not capacity > 0:
      spikes = (f" but for single-reading spikes (up to {train_values.max():g}), which do not "
                "count" if train_values.size and train_values.max() > 0 else "")
      raise InputError(f"{readings.path}: cannot fit the capacity: every reading in the training "
                       f"split is 0{spikes}; give a capacity")
  capacity = float(capacity)
  tertiles = None
  if spec.task == "levels":
    t1, t2 = np.quantile(grid.values[ends["train"] + horizons[0]], [1 / 3, 2 / 3])
    tertiles = (float(t1), float(t2))
  calendar = grid.calendar()
  splits = {name: _split(name, grid, calendar, ends[name], bounds[name], spec, horizons,
                         capacity, tertiles)
            for name in SPLITS}
  return Dataset(spec=spec, grid=grid, capacity=capacity,
                 capacity_fitted=readings.capacity is None, tertiles=tertiles,
                 horizons=tuple(int(h) for h in horizons), path=readings.path,
                 sha256=readings.sha256, n_readings=len(readings), masked=readings.masked(),
                 whole_counts=bool(np.all(train_values == np.round(train_values))), **splits)


SPIKE_FACTOR = 1.25


def robust_max(values: np.ndarray) -> float:
  """The largest reading (in time order) that is not a single-reading spike; 0.0 for none.

  The level that two of three consecutive readings reach, ``top``, is the largest rolling
  median of 3, which no single reading can raise. A reading above it counts when it is at most
  ``SPIKE_FACTOR`` (1.25) times ``top``: a short real peak rises a little above its neighbours
  (the gym file's 145 is 4% above its 139), a sensor glitch far above them (the parking panel's
  Düsseldorf file reads 1,381 cars in 693 spaces). With fewer than three readings: the largest.
  """
  v = np.asarray(values, np.float64)
  if v.size < 3:
    return float(v.max()) if v.size else 0.0
  a, b, c = v[:-2], v[1:-1], v[2:]
  top = float(np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c)).max())
  return float(v[v <= SPIKE_FACTOR * top].max()) if (v <= SPIKE_FACTOR * top).any() else 0.0


def _usable_ends(path: str, valid: np.ndarray, bounds: dict[str, tuple[int, int]],
                 spec: WindowSpec, ahead: int) -> dict[str, np.ndarray]:
  """The window ends of each split; InputError when no split, or one split, has none."""
  m = len(valid)
  window = spec.window
  ends = {name: _window_ends(valid, lo, hi, window, ahead) for name, (lo, hi) in bounds.items()}
  counts = ", ".join(f"{name} {len(e)}" for name, e in ends.items())
  what = (f"a window needs {window + ahead} consecutive {spec.step_minutes}-minute bins without "
          f"a gap (window {window} + horizon {ahead})")
  if not any(len(e) for e in ends.values()):
    run = _longest_run(valid)
    total = len(_window_ends(valid, 0, m, window, ahead))
    raise InputError(f"{path}: too few readings: {what}; the data gives {m} bins, the "
                     f"longest run without a gap is {run} bins, {total} usable windows in all "
                     f"and none within a split ({counts})")
  for name in SPLITS:
    if not len(ends[name]):
      lo, hi = bounds[name]
      run = _longest_run(valid[lo:hi])
      raise InputError(f"{path}: split {name!r} (bins {lo}..{hi} of {m}, splits "
                       f"{','.join(f'{s:g}' for s in spec.splits)}) has no usable window: {what}, "
                       f"its longest run without a gap is {run} bins; usable windows: {counts}")
  return ends


def _seasonal(grid: Grid, e: np.ndarray, horizons: np.ndarray, lag: int) -> np.ndarray:
  """[N, H] the value ``lag`` bins before each target; NaN for a gap, before the grid, or not
  yet known at the window's end."""
  src = e[:, None] + horizons[None, :] - lag
  known = (src >= 0) & (src <= e[:, None])
  out = np.full(src.shape, np.nan)
  out[known] = grid.values[src[known]]
  return out


def _split(name: str, grid: Grid, calendar: np.ndarray, e: np.ndarray, bounds: tuple[int, int],
           spec: WindowSpec, horizons: np.ndarray, capacity: float,
           tertiles: tuple[float, float] | None) -> Split:
  """The arrays of one split's windows, ending at grid bins ``e`` [N]."""
  day_bins = 1440 // spec.step_minutes
  xs, window_people = _inputs(grid, calendar if "calendar" in spec.features else None, e,
                              spec.window, capacity)
  target_idx = e[:, None] + horizons[None, :]
  target_people = grid.values[target_idx]
  if spec.task == "levels":
    levels = levels_of(target_people[:, 0], tertiles)
    ys = np.eye(len(LEVELS), dtype=np.float32)[levels]
  else:
    levels = None
    ys = np.clip(target_people / capacity, 0.0, 1.0).astype(np.float32)
  return Split(
      name=name, xs=xs, ys=ys, window_people=window_people, target_people=target_people,
      naive_day=_seasonal(grid, e, horizons, day_bins),
      naive_week=_seasonal(grid, e, horizons, 7 * day_bins), end_index=e,
      end_times=grid.times[e], target_times=grid.times[target_idx], calendar=calendar[e],
      levels=levels, bounds=bounds)


class NewestWindow(NamedTuple):
  xs: np.ndarray            # [1, T, D] float32
  end_time: np.datetime64   # UTC start of the window's last bin; horizon h is end_time + h*step


def newest_window(readings: Readings, spec: WindowSpec, capacity: float) -> NewestWindow:
  """The newest T gap-free grid bins of ``readings``, scaled by the trained run's ``capacity``."""
  capacity = check_capacity(capacity)
  grid = to_grid(readings, spec.step_minutes, spec.max_gap)
  ends = _window_ends(grid.valid, 0, len(grid), spec.window, 0)
  if not len(ends):
    raise InputError(f"{readings.path}: no complete window: a window needs {spec.window} "
                     f"consecutive {spec.step_minutes}-minute bins without a gap; the longest "
                     f"run is {_longest_run(grid.valid)} bins")
  e = ends[-1:]
  calendar = grid.calendar() if "calendar" in spec.features else None
  xs, _ = _inputs(grid, calendar, e, spec.window, capacity)
  return NewestWindow(xs=xs, end_time=grid.times[e[0]])

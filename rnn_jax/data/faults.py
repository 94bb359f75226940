"""Sensor faults in a series of readings: impossible values and frozen stretches (``find_faults``).

``read_csv`` drops the readings found here before anything is gridded, so the grid
(``grid.to_grid``) treats their times as missing: short runs are interpolated (``max_gap``),
longer ones are gaps that no window crosses. Nothing is clipped. With ``strict`` it refuses the
file instead (``first_fault`` gives the message's facts).

* **Impossible** readings: negative, or above a known capacity (``--capacity`` or the row's
  capacity column). A garage that publishes a negative number of free spaces when full gives
  ``occupied`` above its capacity (Düsseldorf's Schadow Arkaden: 2,887 rows, up to 1,381 cars in
  693 spaces); a glitch can give a negative count (Dresden's Semperoper: -438 and -43).
* **Frozen** stretches: the source stops updating and the last value repeats for hours or days
  (the parking panel's Bielefeld file is flat for 47 days). A run of identical consecutive
  readings is frozen when the time it spans *inside the hours of the day at which the series
  usually changes* exceeds ``max_flat_hours``; all of it after its first reading is masked.
  Those hours are a property of the sensor, derived from the whole file (``change_rates``): per
  local hour of day, the value changes per hour of readings; an hour is active when its rate is
  at least ``ACTIVE_FRACTION`` of the busiest hour's. A gym closed at night or a car park at
  night changes rarely, so hours of night do not count and a quiet night never looks frozen.
  Runs at **0 are never frozen**: empty is a real state (a gym closed for a holiday reads 0 for
  days); a count stuck above zero is not. A run is broken by a step longer than ``GAP_STEPS``
  median steps: there the file has no readings, which the grid already treats as missing.
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from rnn_jax.data.timestamps import NS_PER_MINUTE

NS_PER_HOUR = 60 * NS_PER_MINUTE
REASONS = ("negative", "above_capacity", "frozen")
ACTIVE_FRACTION = 0.5   # an hour of day is active at >= half the busiest hour's rate of change
GAP_STEPS = 6           # a step longer than 6 median steps is an outage: it breaks a flat run
# A value may stay unchanged for 12 hours of active time (a whole day: the parking files are
# active about 14 hours a day, 06-20 local). The longest legitimate flat stretches measured in the
# parking panel and the gym file outside the faults that its README lists are a car park full on
# a Saturday afternoon (about 5 hours) and a closed gym or an empty car park (0, exempt);
# the listed frozen stretches span days to weeks (tests/data/test_parking_faults.py).
DEFAULT_MAX_FLAT_HOURS = 12.0


class FlatRun(NamedTuple):
  """A frozen run: readings ``start .. stop - 1`` (time order) hold one value."""
  start: int
  stop: int
  active_hours: float   # hours of the run inside the active hours of the day
  hours: float          # wall-clock hours from its first reading to its last


@dataclasses.dataclass(frozen=True, eq=False)
class Faults:
  """The faulty readings of a series of R readings in time order."""
  reason: np.ndarray            # [R] int8: -1 ok, else an index into REASONS
  runs: tuple[FlatRun, ...]     # the frozen runs (their first reading is kept)
  active_hours: tuple[int, ...]  # local hours of day counted as active (empty: no check)
  hours: np.ndarray             # [R] float64 hours each reading stands for (to the next one)

  @property
  def mask(self) -> np.ndarray:
    """[R] bool: the reading is dropped."""
    return self.reason >= 0

  def counts(self) -> dict[str, dict[str, float]]:
    """Per reason the number of masked readings and the hours they stand for."""
    return {name: {"readings": int((self.reason == k).sum()),
                   "hours": round(float(self.hours[self.reason == k].sum()), 2)}
            for k, name in enumerate(REASONS)}


def median_step_ns(time_ns: np.ndarray) -> float:
  """The median step between consecutive readings (ns; 0 with fewer than two)."""
  steps = np.diff(time_ns)
  return float(np.median(steps)) if steps.size else 0.0


def _pairs(time_ns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Steps [R-1] in ns and whether each is short enough to link two readings (no outage)."""
  steps = np.diff(time_ns).astype(np.float64)
  return steps, steps <= GAP_STEPS * median_step_ns(time_ns)


def change_rates(time_ns: np.ndarray, local_offset_minutes: np.ndarray,
                 value: np.ndarray) -> np.ndarray:
  """[24] changes of value per hour of readings, by local hour of day at the step's start; only
  steps without an outage count. Rates, not shares of steps: the parking files are read every 5
  minutes by day and every 15 minutes at night, so a share of steps would favour the night."""
  steps, linked = _pairs(time_ns)
  local_hour = ((time_ns[:-1] + local_offset_minutes[:-1] * NS_PER_MINUTE)
                // NS_PER_HOUR) % 24
  changed = (value[1:] != value[:-1]) & linked
  hours = np.bincount(local_hour, weights=np.where(linked, steps, 0.0), minlength=24) / NS_PER_HOUR
  n = np.bincount(local_hour, weights=changed.astype(np.float64), minlength=24)
  return np.divide(n, hours, out=np.zeros(24), where=hours > 0)


def active_hours(rates: np.ndarray, fraction: float = ACTIVE_FRACTION) -> np.ndarray:
  """[24] bool: hours whose rate of change is at least ``fraction`` of the busiest hour's."""
  top = rates.max()
  return rates >= fraction * top if top > 0 else np.zeros(24, bool)


def find_faults(time_ns: np.ndarray, local_offset_minutes: np.ndarray, value: np.ndarray,
                capacity: np.ndarray | float | None,
                max_flat_hours: float | None = DEFAULT_MAX_FLAT_HOURS) -> Faults:
  """The faults of readings in time order: negative, above ``capacity`` (a number or one per
  reading; None: unknown) and frozen (``max_flat_hours`` None or 0: not looked for)."""
  r = len(value)
  reason = np.full(r, -1, np.int8)
  reason[value < 0] = REASONS.index("negative")
  if capacity is not None:
    reason[(reason < 0) & (value > capacity)] = REASONS.index("above_capacity")
  time_ns = np.asarray(time_ns, np.int64)
  steps, linked = _pairs(time_ns)
  hours = np.zeros(r)
  hours[:-1] = np.where(linked, steps, 0.0) / NS_PER_HOUR
  runs: list[FlatRun] = []
  active = np.zeros(24, bool)
  if max_flat_hours and r > 2:
    keep = np.flatnonzero(reason < 0)
    t, v, off = time_ns[keep], value[keep], local_offset_minutes[keep]
    active = active_hours(change_rates(t, off, v))
    _, linked_k = _pairs(t)
    hour = ((t[:-1] + off[:-1] * NS_PER_MINUTE) // NS_PER_HOUR) % 24
    same = linked_k & (v[1:] == v[:-1]) & (v[1:] != 0)
    credit = np.where(same & active[hour], np.diff(t), 0)   # ns, int64: sums are exact
    edges = np.diff(np.concatenate([[0], same.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    cumulative = np.concatenate([[0], np.cumsum(credit)])
    totals = (cumulative[stops] - cumulative[starts]) / NS_PER_HOUR
    for a, b, total in zip(starts, stops, totals):
      if total > max_flat_hours:   # pairs a .. b-1 link readings a .. b (positions in ``keep``)
        reason[keep[a + 1:b + 1]] = REASONS.index("frozen")
        runs.append(FlatRun(int(keep[a]), int(keep[b]) + 1, float(total),
                            float(t[b] - t[a]) / NS_PER_HOUR))
  return Faults(reason=reason, runs=tuple(runs),
                active_hours=tuple(int(h) for h in np.flatnonzero(active)), hours=hours)

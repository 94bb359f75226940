"""The built-in synthetic gym."""
from __future__ import annotations

import numpy as np

from rnn_jax.common.errors import InputError
from rnn_jax.data.readings import Readings
from rnn_jax.data.timestamps import NS_PER_MINUTE

_CAPACITY = 120  # people in the made-up gym


def _bump(hours: np.ndarray, centre: float, width: float) -> np.ndarray:
  return np.exp(-0.5 * ((hours - centre) / width) ** 2)


def synthetic_readings(seed: int = 0, days: int = 120, step_minutes: int = 10) -> Readings:
  """The default occupancy series when no CSV is given, deterministic per seed: a made-up gym of
  capacity 120, starting Monday 2024-01-01, times in UTC (local = UTC):
  * opening hours 06:00-23:00 on weekdays and 08:00-20:00 at weekends, 0 people otherwise;
  * a daily rhythm (morning, lunch and a big evening peak on weekdays; one broad midday peak at
    weekends), a slow 8-week "term" cycle, a random factor per day and AR(1) noise, with counts
    drawn binomially from the capacity (so they never exceed it);
  * about 3% of days (plus day 0, New Year's Day) closed all day, reading 0;
  * a reading every ``step_minutes`` with 0-90 s of jitter, 3% dropped, a few 30 s bursts;
  * outages (no readings at all): about one per 20 days, 2-30 hours long, and one of 3 days.
  120 days at 10 minutes are about 16,000 readings: ~11,000 training windows of 24 steps, which
  a 200-unit RNN trains on in about a minute on a CPU. One numpy generator draws, in this order,
  the occupancy probabilities, counts, kept readings, jitter and bursts; reordering changes
  every series."""
  for name, value in (("seed", seed), ("days", days), ("step_minutes", step_minutes)):
    if isinstance(value, bool) or int(value) != value:
      raise InputError(f"{name}: expected an integer, got {value!r}")
  if days < 1:
    raise InputError(f"days: expected an integer >= 1, got {days!r}")
  if step_minutes < 1 or step_minutes > 720:
    raise InputError(f"step_minutes: expected an integer from 1 to 720, got {step_minutes!r}")
  rng = np.random.default_rng(int(seed))
  n_days, step = int(days), int(step_minutes)
  n = n_days * 1440 // step
  since_start = np.arange(n, dtype=np.int64) * (step * NS_PER_MINUTE)
  p = _occupancy_probability(rng, since_start, n_days)
  counts = rng.binomial(_CAPACITY, p).astype(np.float64)
  keep = _kept(rng, n, n_days, step)
  times = (np.datetime64("2024-01-01T00:00", "ns").astype(np.int64) + since_start
           + rng.integers(0, 90 * 10**9, n))
  extra_t, extra_v = _bursts(rng, times, keep, p, n_days)
  times = np.concatenate([times[keep], *extra_t])
  values = np.concatenate([counts[keep], *extra_v])
  order = np.argsort(times, kind="stable")
  zeros = np.zeros(len(order), np.int64)
  return Readings(path="<synthetic>", time_utc=times[order].astype("datetime64[ns]"),
                  value=values[order], capacity=float(_CAPACITY), timezone=None,
                  local_offset_minutes=zeros, sha256=None, line=zeros.copy(), format="synthetic")


def _occupancy_probability(rng: np.random.Generator, since_start: np.ndarray,
                           n_days: int) -> np.ndarray:
  """[n] probability that each place is taken, for ns since Monday 00:00 [n] int64."""
  day = since_start // (1440 * NS_PER_MINUTE)
  hours = (since_start % (1440 * NS_PER_MINUTE)) / (60 * NS_PER_MINUTE)
  weekend = (day % 7) >= 5
  weekday_rate = (0.12 + 0.25 * _bump(hours, 7.5, 1.0) + 0.22 * _bump(hours, 12.5, 0.8)
                  + 0.55 * _bump(hours, 18.0, 1.5))
  weekend_rate = 0.08 + 0.35 * _bump(hours, 12.0, 2.0) + 0.15 * _bump(hours, 16.5, 1.2)
  rate = np.where(weekend, weekend_rate, weekday_rate)
  open_hours = np.where(weekend, (hours >= 8) & (hours < 20), (hours >= 6) & (hours < 23))
  closed_days = rng.random(n_days) < 0.03
  closed_days[0] = True
  term = 0.8 + 0.25 * np.sin(2 * np.pi * np.arange(n_days) / 56.0)
  day_factor = np.exp(rng.normal(0.0, 0.12, n_days))
  n = since_start.shape[0]
  ar = np.zeros(n)
  eps = rng.normal(0.0, 0.08, n)
  for t in range(1, n):
    ar[t] = 0.9 * ar[t - 1] + eps[t]
  p = np.clip(rate * term[day] * day_factor[day] * np.exp(ar), 0.0, 0.98)
  return np.where(open_hours & ~closed_days[day], p, 0.0)


def _kept(rng: np.random.Generator, n: int, n_days: int, step_minutes: int) -> np.ndarray:
  """[n] bool: the reading survives 3% random drops, the short outages and the 3-day one."""
  keep = rng.random(n) >= 0.03
  n_outages = max(1, n_days // 20)
  for _ in range(n_outages):
    begin = int(rng.integers(0, n))
    length = int(rng.integers(2, 31)) * 60 // step_minutes
    keep[begin:begin + length] = False
  if n_days >= 10:
    begin = int(rng.integers(n // 3, 2 * n // 3))
    keep[begin:begin + 3 * 1440 // step_minutes] = False
  return keep


def _bursts(rng: np.random.Generator, times: np.ndarray, keep: np.ndarray, p: np.ndarray,
            n_days: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
  """A few bursts of readings 30 s apart, as in the gym file, each with its own count."""
  extra_t, extra_v = [], []
  for _ in range(max(1, n_days // 40)):
    i = int(rng.integers(0, len(times)))
    if keep[i]:
      m = int(rng.integers(5, 20))
      extra_t.append(times[i] + 30 * 10**9 * np.arange(1, m + 1))
      extra_v.append(rng.binomial(_CAPACITY, p[i], m).astype(np.float64))
  return extra_t, extra_v

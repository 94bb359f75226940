"""``rnn_jax.bench.timing.measure``'s arithmetic on a fake clock: every call advances it by a
known amount, so the rate, the median and the spread it must report are known exactly."""
from __future__ import annotations

from rnn_jax import bench as bm
from rnn_jax.bench import timing


class FakeClock:
  def __init__(self, durations):
    self.t, self.durations, self.calls = 0.0, list(durations), 0

  def now(self):
    return self.t

  def call(self):
    self.t += self.durations[min(self.calls, len(self.durations) - 1)]
    self.calls += 1
    return self.calls


def test_rate_median_and_spread_are_exact_and_the_warm_up_is_not_timed(monkeypatch):
  # d = 1/128 s (exact in binary). Call 0: the warm-up (8 s, must not count); calls 1-3: the
  # calibration (3 calls of d), so 10 calls fill a repetition of 10 d; then the repetitions:
  # 10 calls of d, 10 of 2 d, 10 of d, at 4 samples a call.
  d = 2.0 ** -7
  clock = FakeClock([8.0] + [d] * 3 + [d] * 10 + [2 * d] * 10 + [d] * 10)
  monkeypatch.setattr(timing.time, "perf_counter", clock.now)
  r = bm.measure(bm.Workload("fake", 4, clock.call, block=lambda x: x), seconds=30 * d,
                 repeats=3)
  assert r["calls"] == 10
  assert r["per_repeat"] == [512.0, 256.0, 512.0]          # 40 samples in 10 d or 20 d
  assert r["samples_per_s"] == 512.0                       # the median, not the mean (426.7)
  assert r["spread"]["min"] == 256.0 and r["spread"]["max"] == 512.0
  assert clock.calls == 1 + 3 + 30


def test_side_by_side_runs_one_repetition_of_each_workload_per_round(monkeypatch):
  # Two workloads on one fake clock; a slow spell (every call 4x as long) covers exactly the
  # second round. Timed in rounds, it slows repetition 2 of BOTH, so the medians keep the true
  # ratio (a: 1 sample per d, b: 2 samples per d -> 2x); timed one after the other it would fall
  # on one workload only.
  d = 2.0 ** -7
  t, order = [0.0], []
  slow = {"on": False}

  def make(name, samples_d):
    def call():
      t[0] += d * samples_d * (4 if slow["on"] else 1)
      order.append(name)
      return len(order)
    return call

  monkeypatch.setattr(timing.time, "perf_counter", lambda: t[0])
  a, b = bm.Workload("a", 1, make("a", 1.0), block=lambda x: x), \
      bm.Workload("b", 2, make("b", 1.0), block=lambda x: x)
  real = timing._repetition
  rounds = []

  def repetition(work, n):
    rounds.append(work.variant)
    slow["on"] = len(rounds) in (3, 4)                       # round 2: a's and b's repetition
    return real(work, n)

  monkeypatch.setattr(timing, "_repetition", repetition)
  ra, rb = timing.measure_side_by_side([a, b], seconds=[30 * d, 30 * d], repeats=3)
  assert rounds == ["a", "b"] * 3                              # one of each per round
  assert ra["per_repeat"] == [128.0, 32.0, 128.0] and rb["per_repeat"] == [256.0, 64.0, 256.0]
  assert rb["samples_per_s"] / ra["samples_per_s"] == 2.0

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

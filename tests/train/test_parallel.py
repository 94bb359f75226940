"""Data-parallel training (rnn_jax.train.parallel) on 4 simulated CPU devices.

XLA_FLAGS=--xla_force_host_platform_device_count=4 must be set before JAX is imported, so the
check runs in one subprocess (one JAX import, a few small compiles) and reports JSON.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from rnn_jax.train import parallel
from rnn_jax.common.errors import InputError

from conftest import REPO

SCRIPT = r"""
import json
import jax
import numpy as np
from rnn_jax import train
from rnn_jax.train import parallel
from rnn_jax.common.errors import InputError

out = {"devices": jax.device_count()}
rng = np.random.default_rng(0)
N, T, D, K, H, B = 40, 5, 2, 3, 6, 8
xs = rng.uniform(size=(N, T, D)).astype(np.float32)
ys = rng.uniform(size=(N, K)).astype(np.float32)
cfg = train.TrainConfig(hidden_size=H, batch_size=B, lr=3e-2, epochs=2, patience=0, devices=1)

# One optimizer step: sharded over a 4-device mesh against one device.
opt = train.make_optimizer(cfg)
params, _ = train.init_models(np.array([0], np.int32), D=D, H=H, K=K, scheme="normal",
                              dtype="float32")
params = jax.tree.map(lambda a: np.asarray(a[0]), params)
step = train.make_train_step(opt)
mesh = parallel.data_mesh(4)
sharded, single = parallel.shard_step(step, mesh), jax.jit(step)
p1 = p4 = params
s1 = s4 = opt.init(params)
for i in range(3):
  xb, yb = xs[i * B:(i + 1) * B], ys[i * B:(i + 1) * B]
  p1, s1, l1, _ = single(p1, s1, xb, yb)
  p4, s4, l4, _ = sharded(p4, s4, xb, yb)
out["params_devices"] = len(p4.U.sharding.device_set)
out["params_replicated"] = bool(p4.U.sharding.is_fully_replicated)
hlo = sharded.lower(p4, s4, xs[:B], ys[:B]).compile().as_text()
out["all_reduce"] = "all-reduce" in hlo
out["step_diff"] = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
                       for a, b in zip(p1, p4))
out["loss_diff"] = abs(float(l1) - float(l4))

# fit: 2 epochs on 4 devices against 1 device.
val = (xs[:12], ys[:12])
r1 = train.fit(cfg, (xs, ys), val, progress=False)
r4 = train.fit(cfg.__class__(**{**cfg.to_dict(), "devices": 4}), (xs, ys), val, progress=False)
out["fit_diff"] = max(float(np.max(np.abs(a - b))) for a, b in zip(r1.params, r4.params))
out["fit_val"] = [r1.best_val_loss, r4.best_val_loss]
for name, kw in (("indivisible", {"batch_size": 6, "devices": 4}), ("too_many", {"devices": 5})):
  try:
    train.fit(cfg.__class__(**{**cfg.to_dict(), **kw}), (xs, ys), val, progress=False)
  except InputError as err:
    out[name] = str(err)
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def four_devices():
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
         "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)}
  env.pop("JAX_ENABLE_X64", None)
  proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
  return json.loads(line[len("RESULT "):])


def test_sharded_step_equals_single_device_step(four_devices):
  r = four_devices
  assert r["devices"] == 4
  assert r["params_devices"] == 4 and r["params_replicated"]     # parameters replicated
  assert r["all_reduce"]                 # the batch was split: gradients are summed over devices
  assert r["step_diff"] < 1e-6 and r["loss_diff"] < 1e-6, r


def test_fit_on_four_devices_equals_one_device(four_devices):
  r = four_devices
  assert r["fit_diff"] < 1e-5, r
  assert abs(r["fit_val"][0] - r["fit_val"][1]) < 1e-5, r


def test_device_errors_are_input_errors(four_devices):
  assert "--batch-size: 6 is not a multiple of the 4 devices" in four_devices["indivisible"]
  assert "--devices: asked for 5 devices, only 4 available" in four_devices["too_many"]
  with pytest.raises(InputError, match="--devices"):
    parallel.device_count(10_000)

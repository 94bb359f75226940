"""rnn_jax.train: the step, the fused epoch, fit / fit_many, resume, faults, JAX's failure modes.

Sizes are tiny (N=50 windows of T=5 steps, H=6) and most fit() runs share one configuration
(BASE below: only epochs, patience and seed vary, which do not change the compiled program),
so the compiled code is reused across tests.
"""
from __future__ import annotations

import dataclasses
import json
import os
import signal

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_jax import train
from rnn_jax.train import programs
from rnn_jax.core import gradients, model
from rnn_jax.train import checkpoint
from rnn_jax.common.errors import InputError
from rnn_jax.train import TrainConfig

N, T, D, K, H, B = 50, 5, 2, 3, 6, 8        # 6 steps per epoch, 2 windows dropped
BASE = TrainConfig(hidden=H, batch_size=B, lr=3e-2, epochs=6, patience=0, seed=0)


def make_data(n, seed, flip=False):
  """Windows whose targets depend on the inputs (so training has something to learn)."""
  rng = np.random.default_rng(seed)
  xs = rng.uniform(0, 1, (n, T, D)).astype(np.float32)
  m = xs.mean(axis=(1, 2))
  ys = np.stack([m, xs[:, -1, 0], 1 - m], axis=1).astype(np.float32)
  if flip:                                   # a validation set that disagrees with training
    ys = 1 - ys
  return xs, ys


TRAIN = make_data(N, 0)
VAL = make_data(20, 1)


def evaluate(params):
  """A stand-in for a caller's metric (e.g. validation MAE): here a norm, computed by numpy."""
  return {"u_norm": float(np.linalg.norm(np.asarray(params.U)))}


def strip_time(history):
  return [{k: v for k, v in row.items() if k != "elapsed_s"} for row in history]


def assert_trees_equal(a, b):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def read_metrics(path):
  return [json.loads(line) for line in path.read_text().splitlines()]


# --------------------------------------------------------------------------- config

@pytest.mark.parametrize("field,value,flag", [
    ("batch_size", 0, "--batch-size"), ("lr", float("nan"), "--lr"), ("lr", 0.0, "--lr"),
    ("lr", "fast", "--lr"), ("lr", float("inf"), "--lr"), ("seeds", 0, "--seeds"),
    ("epochs", 0, "--epochs"), ("optimizer", "rmsprop", "--optimizer"),
    ("grad", "finite-diff", "--grad"), ("init", "zeros", "--init"), ("hidden", 0, "--hidden"),
    ("clip", -1.0, "--clip"), ("patience", -1, "--patience"), ("unroll", 0, "--unroll"),
    ("seed", -1, "--seed"), ("devices", -2, "--devices"), ("hidden", 2.5, "--hidden"),
    ("remat", "yes", "--remat"),
])
def test_validate_names_the_bad_argument(field, value, flag):
  cfg = dataclasses.replace(TrainConfig(), **{field: value})
  with pytest.raises(InputError, match=flag) as err:
    cfg.validate()
  assert "\n" not in str(err.value)


def test_config_defaults_are_valid_and_round_trip():
  cfg = TrainConfig().validate()
  assert (cfg.hidden, cfg.optimizer, cfg.lr, cfg.clip, cfg.batch_size) == (200, "adam", 1e-3,
                                                                           1.0, 64)
  assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
  with pytest.raises(InputError, match="unknown"):
    TrainConfig.from_dict({"hidden": 3, "colour": "red"})


def test_make_optimizer_is_sgd_or_adam_with_global_norm_clipping():
  params = {"a": jnp.array([3.0, 4.0])}                       # gradient of global norm 5
  grads = params
  sgd = train.make_optimizer(TrainConfig(optimizer="sgd", lr=0.1, clip=0))
  upd, _ = sgd.update(grads, sgd.init(params), params)
  np.testing.assert_allclose(upd["a"], [-0.3, -0.4], rtol=1e-6)
  clipped = train.make_optimizer(TrainConfig(optimizer="sgd", lr=0.1, clip=1.0))
  upd, _ = clipped.update(grads, clipped.init(params), params)
  np.testing.assert_allclose(upd["a"], [-0.06, -0.08], rtol=1e-6)   # norm clipped to 1
  adam = train.make_optimizer(TrainConfig(optimizer="adam", lr=0.1, clip=0))
  upd, _ = adam.update(grads, adam.init(params), params)
  np.testing.assert_allclose(upd["a"], [-0.1, -0.1], rtol=1e-4)     # adam's first step: lr*sign


# --------------------------------------------------------------------------- the step

def small_problem(dtype=jnp.float32, scheme="normal"):
  """Parameters drawn with numpy (no jax.random program to compile) and one batch."""
  rng = np.random.default_rng(3)
  draw = lambda *shape: rng.normal(0, 1 / np.sqrt(shape[-1]), shape)
  U = np.eye(H) if scheme == "irnn" else draw(H, H)
  params = model.RNNParams(U=U, V=draw(H, D), b=np.zeros(H), W=draw(K, H), c=np.zeros(K))
  params = jax.tree.map(lambda a: jnp.asarray(a, dtype), params)
  return params, jnp.asarray(TRAIN[0][:B], dtype), jnp.asarray(TRAIN[1][:B], dtype)


@pytest.fixture(scope="module")
def base_fns():
  """BASE's optimizer with its jitted step and (trace-counted) jitted epoch, shared below."""
  opt = train.make_optimizer(BASE)
  step = jax.jit(train.make_train_step(opt))
  epoch = jax.jit(chex.assert_max_traces(train.make_epoch_fn(opt, B), n=1))
  return opt, step, epoch


def test_one_step_changes_every_parameter(base_fns):
  opt, step, _ = base_fns
  params, xs, ys = small_problem()
  new, state, loss, finite = step(params, opt.init(params), xs, ys)
  assert bool(finite) and np.isfinite(float(loss))
  for name in model.RNNParams._fields:
    assert not np.array_equal(getattr(new, name), getattr(params, name)), name
  np.testing.assert_allclose(loss, model.loss(params, xs, ys), rtol=1e-6)


def test_step_reports_nonfinite_gradients(base_fns):
  opt, step, _ = base_fns
  params, xs, ys = small_problem()
  _, _, _, finite = step(params, opt.init(params), xs.at[0, 0, 0].set(jnp.nan), ys)
  assert not bool(finite)
  _, _, _, finite = step(params, opt.init(params), xs, ys)
  assert bool(finite)


def test_dtypes_survive_a_step_under_x64(x64):
  params, xs, ys = small_problem(jnp.float64)
  opt = train.make_optimizer(TrainConfig(optimizer="adam", clip=1.0))
  state = opt.init(params)
  new, state, loss, _ = jax.jit(train.make_train_step(opt))(params, state, xs, ys)
  assert all(leaf.dtype == jnp.float64 for leaf in jax.tree.leaves(new))
  assert loss.dtype == jnp.float64
  assert {leaf.dtype for leaf in jax.tree.leaves(state)} == {jnp.dtype("float64"),
                                                             jnp.dtype("int32")}


def test_bptt_and_autodiff_train_to_the_same_params(x64):
  params, xs, ys = small_problem(jnp.float64, scheme="irnn")
  opt = train.make_optimizer(TrainConfig(optimizer="adam", lr=1e-2))
  out = {}
  for method in ("autodiff", "bptt"):
    step = jax.jit(train.make_train_step(opt, method))
    p, s = params, opt.init(params)
    for i in range(4):
      p, s, loss, _ = step(p, s, xs[::-1] if i % 2 else xs, ys[::-1] if i % 2 else ys)
    out[method] = p
  for a, b in zip(out["autodiff"], out["bptt"]):
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_remat_gives_identical_gradients_and_reaches_the_step(x64):
  params, xs, ys = small_problem(jnp.float64)
  plain = jax.jit(gradients.loss_and_grad("autodiff"))(params, xs, ys)
  remat = jax.jit(gradients.loss_and_grad("autodiff", remat=True))(params, xs, ys)
  for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(remat)):
    np.testing.assert_allclose(a, b, rtol=1e-14, atol=0)
  # cfg.remat reaches the loss: the step's program contains the rematerialised scan body.
  for flag in (False, True):
    cfg = TrainConfig(remat=flag)
    opt = train.make_optimizer(cfg)
    jaxpr = str(jax.make_jaxpr(train.make_train_step(cfg))(params, opt.init(params), xs, ys))
    assert ("remat" in jaxpr or "checkpoint" in jaxpr) == flag


# --------------------------------------------------------------------------- the fused epoch

def test_epoch_is_the_steps_over_the_permutation_and_compiles_once(base_fns):
  opt, step, epoch = base_fns
  params, _, _ = small_problem()
  xs, ys = jnp.asarray(TRAIN[0]), jnp.asarray(TRAIN[1])
  p, s = params, opt.init(params)
  for e in (1, 2, 3):                                 # the same compiled call every epoch
    perm = np.random.default_rng(e).permutation(N)
    p_ref, s_ref, losses_ref = p, s, []
    for i in range(N // B):
      idx = perm[i * B:(i + 1) * B]
      p_ref, s_ref, loss, _ = step(p_ref, s_ref, xs[idx], ys[idx])
      losses_ref.append(loss)
    p, s, losses, finite = epoch(p, s, xs, ys, perm)
    assert losses.shape == (N // B,) and bool(finite.all())
    np.testing.assert_allclose(losses, losses_ref, rtol=1e-5)
    for a, b in zip(p, p_ref):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_epoch_flags_the_first_nonfinite_step(base_fns):
  opt, step, epoch = base_fns
  params, _, _ = small_problem()
  xs, ys = jnp.asarray(TRAIN[0]), jnp.asarray(TRAIN[1])
  perm = jnp.arange(N)
  bad = 2 * B + 3                                      # a window of step 3
  _, _, losses, finite = epoch(params, opt.init(params), xs.at[bad].set(jnp.inf), ys, perm)
  np.testing.assert_array_equal(np.asarray(finite)[:3], [True, True, False])
  p_ref, s_ref, losses_ref = params, opt.init(params), []
  for i in range(2):
    p_ref, s_ref, loss, _ = step(p_ref, s_ref, xs[i * B:(i + 1) * B], ys[i * B:(i + 1) * B])
    losses_ref.append(loss)
  np.testing.assert_allclose(np.asarray(losses)[:2], losses_ref, rtol=1e-5)


# --------------------------------------------------------------------------- fit

@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
  """BASE trained for 6 epochs without interruption."""
  out = tmp_path_factory.mktemp("reference")
  return train.fit(BASE, TRAIN, VAL, out_dir=out, progress=False, evaluate=evaluate), out


def test_fit_writes_metrics_and_checkpoint_and_is_deterministic(reference_run, tmp_path):
  res, out = reference_run
  assert res.stopped == "completed" and len(res.history) == 6
  assert [r["epoch"] for r in res.history] == [1, 2, 3, 4, 5, 6]
  assert list(res.history[0]) == ["epoch", "train_loss", "val_loss", "u_norm", "elapsed_s"]
  assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
  vals = [r["val_loss"] for r in res.history]
  assert res.best_epoch == 1 + int(np.argmin(vals)) and res.best_val_loss == min(vals)
  assert read_metrics(out / train.METRICS) == res.history
  assert_trees_equal(checkpoint.load_params(out / checkpoint.FILENAME), res.params)
  again = train.fit(BASE, TRAIN, VAL, out_dir=tmp_path, progress=False, evaluate=evaluate)
  assert_trees_equal(again.params, res.params)                # same seed, same numbers
  assert strip_time(again.history) == strip_time(res.history)
  other = train.fit(dataclasses.replace(BASE, seed=1), TRAIN, VAL, progress=False)
  assert not np.array_equal(other.params.U, res.params.U)


def test_resume_equals_an_uninterrupted_run(reference_run, tmp_path, capsys):
  res, _ = reference_run
  first = train.fit(dataclasses.replace(BASE, epochs=3), TRAIN, VAL, out_dir=tmp_path,
                    progress=True, evaluate=evaluate)
  assert first.stopped == "completed" and len(first.history) == 3
  bar = capsys.readouterr().err                              # the tqdm bar over epochs
  assert "3/3" in bar and "train_loss=" in bar and "val_loss=" in bar and "u_norm=" in bar
  resumed = train.fit(BASE, TRAIN, VAL, out_dir=tmp_path, resume=True, progress=False,
                      evaluate=evaluate)
  assert_trees_equal(resumed.params, res.params)
  assert strip_time(resumed.history) == strip_time(res.history)
  assert strip_time(read_metrics(tmp_path / train.METRICS)) == strip_time(res.history)
  assert resumed.best_epoch == res.best_epoch
  ckpt = checkpoint.load(tmp_path / checkpoint.FILENAME)
  assert int(ckpt["epoch"]) == 6


def test_ctrl_c_saves_a_checkpoint_and_the_resumed_run_is_identical(reference_run, tmp_path):
  res, _ = reference_run

  def interrupt_at_epoch_3(params):
    interrupt_at_epoch_3.calls += 1
    if interrupt_at_epoch_3.calls == 3:
      os.kill(os.getpid(), signal.SIGINT)                     # a real Ctrl-C
    return evaluate(params)
  interrupt_at_epoch_3.calls = 0

  stopped = train.fit(BASE, TRAIN, VAL, out_dir=tmp_path, progress=False,
                      evaluate=interrupt_at_epoch_3)
  assert stopped.stopped == "interrupted"
  assert "--resume" in stopped.message and "epoch 2" in stopped.message
  assert len(stopped.history) == 2                            # the interrupted epoch is dropped
  assert int(checkpoint.load(tmp_path / checkpoint.FILENAME)["epoch"]) == 2
  resumed = train.fit(BASE, TRAIN, VAL, out_dir=tmp_path, resume=True, progress=False,
                      evaluate=evaluate)
  assert resumed.stopped == "completed"
  assert_trees_equal(resumed.params, res.params)
  assert strip_time(resumed.history) == strip_time(res.history)


def test_nonfinite_loss_stops_naming_epoch_and_step_and_keeps_the_checkpoint(tmp_path):
  # One window of inputs +-3.4e38 (finite, near float32's maximum) aligned with the signs of a
  # row j of V with |V_j1| + |V_j2| > 1 overflows A_1j to inf, so the gradient is not finite at
  # the step that sees the window. Take a window that epoch 1 drops (the last N mod B of its
  # permutation) and epoch 2 uses, so epoch 1 completes and epoch 2 fails at a known step.
  params, data_keys = train.init_models(np.array([BASE.seed], np.int32), D=D, H=H, K=K,
                                        scheme=BASE.init, dtype="float32")
  V, data_key = np.asarray(params.V[0]), data_keys[0]
  j = int(np.argmax(np.abs(V).sum(axis=1)))
  assert np.abs(V[j]).sum() > 1.4, "V has no row large enough to overflow; change the seed"
  perm1 = np.asarray(train.permutation(data_key, 1, N))
  perm2 = np.asarray(train.permutation(data_key, 2, N))
  candidates = [w for w in perm1[N // B * B:] if w in perm2[:N // B * B]]
  assert candidates, "choose another seed: no window dropped in epoch 1 is used in epoch 2"
  bad = candidates[0]
  step = int(np.where(perm2 == bad)[0][0]) // B + 1
  xs = TRAIN[0].copy()
  xs[bad] = 3.4e38 * np.sign(V[j])
  res = train.fit(BASE, (xs, TRAIN[1]), VAL, out_dir=tmp_path, progress=False)
  assert res.stopped == "nonfinite"
  assert f"epoch 2, step {step} of {N // B}" in res.message
  for cure in ("--lr", "--clip", "--init irnn"):
    assert cure in res.message
  assert len(res.history) == 1 and res.best_epoch == 1
  ckpt = checkpoint.load(tmp_path / checkpoint.FILENAME)
  assert int(ckpt["epoch"]) == 1                              # the last good checkpoint
  assert_trees_equal(checkpoint.load_params(tmp_path / checkpoint.FILENAME), res.params)
  assert all(np.isfinite(leaf).all() for leaf in res.params)


def test_early_stopping_returns_the_best_params(tmp_path):
  val_flipped = make_data(20, 1, flip=True)                   # learning train hurts val
  cfg = dataclasses.replace(BASE, epochs=20, patience=2)
  res = train.fit(cfg, TRAIN, val_flipped, out_dir=tmp_path / "a", progress=False)
  assert res.stopped == "early_stop"
  vals = [r["val_loss"] for r in res.history]
  assert res.best_epoch == 1 + int(np.argmin(vals))
  assert len(res.history) == res.best_epoch + cfg.patience
  latest = checkpoint.load_params(tmp_path / "a" / checkpoint.FILENAME, best=False)
  assert not np.array_equal(latest.U, res.params.U)
  # The returned params are those after best_epoch epochs.
  short = dataclasses.replace(cfg, epochs=res.best_epoch)
  train.fit(short, TRAIN, val_flipped, out_dir=tmp_path / "b", progress=False)
  assert_trees_equal(checkpoint.load_params(tmp_path / "b" / checkpoint.FILENAME, best=False),
                     res.params)


def test_the_epoch_compiles_once_and_later_epochs_compile_nothing():
  names, counts = [], []

  def listener(event, duration, **kwargs):
    if event == "/jax/core/compile/backend_compile_duration":
      names.append(kwargs.get("fun_name"))

  programs.build.cache_clear()                        # compile this run's epoch afresh
  jax.monitoring.register_event_duration_secs_listener(listener)
  try:
    train.fit(dataclasses.replace(BASE, epochs=4), TRAIN, VAL, progress=False,
              evaluate=lambda params: counts.append(len(names)) or {})
  finally:
    jax.monitoring.unregister_event_duration_listener(listener)
  assert names.count("jit(epoch)") == 1, names
  assert set(names[counts[0]:counts[1]]) <= {"jit(commit)"}, names   # epoch 2: only the
  assert names[counts[1]:] == [], names                                 # first commit; then none


def test_bad_arrays_are_input_errors():
  xs, ys = TRAIN
  cases = [((xs[0], ys), "train xs"), ((xs, ys[:10]), "train ys"),
           ((xs, ys[:, :, None]), "train ys")]
  for pair, match in cases:
    with pytest.raises(InputError, match=match):
      train.fit(BASE, pair, VAL, progress=False)
  with pytest.raises(InputError, match="val"):
    train.fit(BASE, TRAIN, (VAL[0][:, :, :1], VAL[1]), progress=False)
  bad = xs.copy()
  bad[3, 2, 1] = np.nan
  with pytest.raises(InputError, match="train xs: contains NaN"):
    train.fit(BASE, (bad, ys), VAL, progress=False)


def test_unwritable_or_full_out_dir_fails_before_training(tmp_path, monkeypatch):
  def no_training(*args, **kwargs):
    raise AssertionError("training started")
  monkeypatch.setattr(programs, "build", no_training)
  blocker = tmp_path / "file"
  blocker.write_text("x")
  with pytest.raises(InputError, match="cannot write the output directory"):
    train.fit(BASE, TRAIN, VAL, out_dir=blocker / "run", progress=False)
  with pytest.raises(InputError, match="is an existing file"):
    train.fit(BASE, TRAIN, VAL, out_dir=blocker, progress=False)

  def full_disk(fd):
    raise OSError(28, "No space left on device")
  monkeypatch.setattr(checkpoint.os, "fsync", full_disk)
  with pytest.raises(InputError, match="No space left on device") as err:
    train.fit(BASE, TRAIN, VAL, out_dir=tmp_path / "new" / "run", progress=False)
  assert str(tmp_path / "new" / "run") in str(err.value)
  assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]   # nothing left behind


def test_resume_refuses_a_missing_or_different_run(reference_run, tmp_path):
  _, out = reference_run
  with pytest.raises(InputError, match="no checkpoint to resume from"):
    train.fit(BASE, TRAIN, VAL, out_dir=tmp_path, resume=True, progress=False)
  with pytest.raises(InputError, match="lr=0.03.*lr=0.1"):
    train.fit(dataclasses.replace(BASE, lr=0.1), TRAIN, VAL, out_dir=out, resume=True,
              progress=False)
  with pytest.raises(InputError, match="different data"):
    train.fit(BASE, TRAIN, make_data(20, 2), out_dir=out, resume=True, progress=False)
  (tmp_path / checkpoint.FILENAME).write_bytes(b"\x93garbage")
  with pytest.raises(InputError, match=str(tmp_path / checkpoint.FILENAME)):
    train.fit(BASE, TRAIN, VAL, out_dir=tmp_path, resume=True, progress=False)


def test_batch_larger_than_the_data_uses_all_windows():
  assert train.effective_batch_size(64, 50) == 50
  assert train.effective_batch_size(64, 50, n_devices=4) == 48
  assert train.effective_batch_size(16, 50, n_devices=4) == 16


# --------------------------------------------------------------------------- fit_many

def test_fit_many_model_i_equals_fit_with_seed_i(tmp_path):
  val_flipped = make_data(20, 1, flip=True)
  cfg = dataclasses.replace(BASE, epochs=5, patience=2, seeds=3, seed=0)
  many = train.fit_many(cfg, TRAIN, val_flipped, out_dir=tmp_path, progress=False)
  assert many.seeds == [0, 1, 2]
  assert many.params.U.shape == (3, H, H)
  for i in range(3):
    alone = train.fit(dataclasses.replace(cfg, seed=i, seeds=1), TRAIN, val_flipped,
                      progress=False)
    mine = many.model(i)
    assert mine.stopped == alone.stopped and mine.best_epoch == alone.best_epoch
    assert len(mine.history) == len(alone.history)
    for a, b in zip(mine.params, alone.params):
      np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose([r["val_loss"] for r in mine.history],
                               [r["val_loss"] for r in alone.history], rtol=1e-5)
  assert not np.allclose(many.params.U[0], many.params.U[1])
  s = many.summary("val_loss")
  np.testing.assert_allclose(s["mean"], np.mean(many.best_val_losses))
  np.testing.assert_allclose(s["std"], np.std(many.best_val_losses, ddof=1))
  rows = read_metrics(tmp_path / train.METRICS)
  assert sorted({r["model"] for r in rows}) == [0, 1, 2]
  assert len(rows) == sum(len(h) for h in many.histories)
  assert int(checkpoint.load(tmp_path / checkpoint.FILENAME)["n_models"]) == 3

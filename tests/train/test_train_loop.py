"""rnn_jax.train.loop: fit / fit_many, metrics and checkpoints, resume, Ctrl-C and non-finite
faults, input errors, compiled once."""
from __future__ import annotations

import dataclasses
import os
import signal

import jax
import numpy as np
import pytest

from rnn_jax import train
from rnn_jax.common.errors import InputError
from rnn_jax.train import checkpoint, loop

from train_helpers import (B, BASE, D, H, K, N, TRAIN, VAL, assert_trees_equal, evaluate,
                           make_data, read_metrics, strip_time)


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

  jax.clear_caches()                                  # compile this run's epoch afresh
  jax.monitoring.register_event_duration_secs_listener(listener)
  try:
    train.fit(dataclasses.replace(BASE, epochs=4), TRAIN, VAL, progress=False,
              evaluate=lambda params: counts.append(len(names)) or {})
  finally:
    jax.monitoring.unregister_event_duration_listener(listener)
  assert names.count("jit(train_epoch)") == 1, names
  assert set(names[counts[0]:counts[1]]) <= {"jit(commit)"}, names   # epoch 2: only the
  assert names[counts[1]:] == [], names                                 # first commit; then none


def test_fit_validates_the_settings_once(monkeypatch):
  calls = []
  real = train.TrainConfig.validate
  monkeypatch.setattr(train.TrainConfig, "validate", lambda self: calls.append(1) or real(self))
  train.fit(dataclasses.replace(BASE, epochs=1), TRAIN, VAL, progress=False)
  assert len(calls) == 1


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
  monkeypatch.setattr(loop, "init_state", no_training)
  monkeypatch.setattr(loop, "train_epoch", no_training)
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

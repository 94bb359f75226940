"""rnn_jax.train.loop's rules between epochs as pure functions, on hand-made numbers (no
training): the initial state, the verdict on an epoch (which models' epoch counts, early
stopping) and the commit of new and best params."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from rnn_jax.train import loop


def test_initial_state_has_no_best_yet():
  st = loop.initial_state({"w": np.ones(2)}, (), 3)
  assert st.epoch == 0 and st.status == ("running",) * 3 and st.history == ((), (), ())
  assert st.best_params is st.params and np.isinf(st.best_val).all()
  assert st.best_epoch.tolist() == [0, 0, 0] and st.wait.tolist() == [0, 0, 0]


def test_judge_epoch_names_the_first_bad_step_and_skips_stopped_models():
  finite = np.array([[True, False, False], [True, True, True], [True, True, True],
                     [False, True, True]])
  losses = np.array([[1.0, np.inf, np.nan], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [np.nan, 1, 1]])
  val = np.array([0.5, np.nan, 0.5, 0.5])
  st = loop.initial_state(None, None, 4)._replace(
      epoch=6, status=("running", "running", "running", "early_stop"))
  labels = [f"m{i}: " for i in range(4)]
  new, advance, improved, faults = loop.judge_epoch(st, finite, losses, val, patience=0,
                                                    labels=labels)
  assert new.epoch == 7
  assert new.status == ("nonfinite", "nonfinite", "running", "early_stop")
  assert advance.tolist() == [False, False, True, False]
  assert improved.tolist() == [False, False, True, False]
  assert new.best_epoch.tolist() == [0, 0, 7, 0]
  assert faults == ["m0: the loss or gradient became non-finite at epoch 7, step 2 of 3 (loss inf)",
                    "m1: the validation loss became non-finite after epoch 7"]


def test_early_stopping_improves_waits_and_stops_after_patience():
  st = loop.initial_state(None, None, 3)._replace(
      epoch=2, best_epoch=np.array([2, 2, 2]), best_val=np.array([1.0, 1.0, 1.0]),
      wait=np.array([0, 1, 1]), status=("running", "running", "early_stop"))
  finite = np.ones((3, 4), bool)
  new, advance, improved, _ = loop.judge_epoch(st, finite, np.ones((3, 4)),
                                               np.array([0.5, 1.0, 0.1]), patience=2,
                                               labels=[""] * 3)
  assert new.best_epoch.tolist() == [3, 2, 2] and new.best_val.tolist() == [0.5, 1.0, 1.0]
  assert new.wait.tolist() == [0, 2, 1] and improved.tolist() == [True, False, False]
  assert advance.tolist() == [True, True, False]
  assert new.status == ("running", "early_stop", "early_stop")   # equal is not better
  assert st.best_epoch.tolist() == [2, 2, 2] and st.wait.tolist() == [0, 1, 1]   # unchanged
  st = st._replace(status=("running",) * 3)
  new, *_ = loop.judge_epoch(st, finite, np.ones((3, 4)), np.array([2.0, 2.0, 2.0]),
                             patience=0, labels=[""] * 3)
  assert new.status == ("running",) * 3                        # patience 0 never stops


def test_commit_keeps_new_params_where_advanced_and_best_where_improved():
  new = ({"w": jnp.array([[1.0, 1.0], [2.0, 2.0]])}, jnp.array([10, 20]))
  old = ({"w": jnp.zeros((2, 2))}, jnp.array([0, 0]))
  best = {"w": jnp.full((2, 2), -1.0)}
  params, opt_state, best_params = loop.commit(jnp.array([True, False]),
                                               jnp.array([False, True]), new, old, best)
  np.testing.assert_array_equal(params["w"], [[1, 1], [0, 0]])
  np.testing.assert_array_equal(opt_state, [10, 0])
  np.testing.assert_array_equal(best_params["w"], [[-1, -1], [2, 2]])
  one = loop.commit(True, True, ({"w": jnp.ones(2)}, ()), ({"w": jnp.zeros(2)}, ()),
                    {"w": jnp.zeros(2)})
  np.testing.assert_array_equal(one[2]["w"], [1, 1])

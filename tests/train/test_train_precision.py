"""The matmul precision of a run (rnn_jax.core.precision): TrainConfig's ``precision`` is checked,
recorded and read back from runs made before it existed, and reaches every product of the
programs fit runs (the step, the fused epoch and the validation loss of ``loop.train_epoch``).

XLA:CPU computes IEEE float32 whatever is asked, so the setting is read off the lowered program:
each ``stablehlo.dot_general`` carries the precision it was traced at (HIGHEST for "highest",
HIGH for "tf32", DEFAULT for "bf16" and "default")."""
from __future__ import annotations

import dataclasses
import json
import re

import jax
import numpy as np
import pytest

from rnn_jax import train
from rnn_jax.common.errors import InputError
from rnn_jax.core import precision
from rnn_jax.train import TrainConfig, checkpoint, loop

from train_helpers import BASE, TRAIN, VAL, assert_trees_equal

STABLEHLO = {"highest": "HIGHEST", "tf32": "HIGH", "bf16": "DEFAULT", "default": "DEFAULT"}


def dot_precisions(lowered) -> set[str]:
  """The precisions of every ``dot_general`` in a lowered program's StableHLO."""
  found = re.findall(r"stablehlo\.dot_general.*?precision = \[(\w+), (\w+)\]", lowered.as_text())
  assert found, "no dot_general in the program"
  return {p for pair in found for p in pair}


def test_precision_is_a_checked_setting_recorded_in_the_config():
  assert TrainConfig().precision == precision.DEFAULT_PRECISION == "highest"
  assert TrainConfig(precision="tf32").validate().to_dict()["precision"] == "tf32"
  with pytest.raises(InputError) as err:
    TrainConfig(precision="fp16").validate()
  assert str(err.value) == ("--precision: expected one of highest, tf32, bf16, default, "
                            "got 'fp16'")


def test_a_config_recorded_before_precision_existed_reads_as_the_default():
  recorded = TrainConfig(hidden_size=7).to_dict()
  del recorded["precision"]
  assert TrainConfig.from_dict(recorded) == TrainConfig(hidden_size=7)


@pytest.mark.parametrize("name", precision.PRECISIONS)
def test_the_step_and_the_epoch_carry_the_precision_asked_for(name):
  cfg = dataclasses.replace(BASE, precision=name, devices=1)   # as fit passes it
  params, opt_state, keys = loop.init_state(np.zeros(1, np.int32), prog=cfg, many=False,
                                            D=TRAIN[0].shape[2], K=TRAIN[1].shape[1],
                                            dtype="float32")
  data = tuple(np.asarray(a) for a in (*TRAIN, *VAL))
  step = jax.jit(train.make_train_step(cfg))
  assert dot_precisions(step.lower(params, opt_state, *data[:2])) == {STABLEHLO[name]}
  # loop.train_epoch is what fit runs: its epoch and its validation loss
  lowered = loop.train_epoch.lower(params, opt_state, data, keys, 1, prog=cfg, many=False)
  assert dot_precisions(lowered) == {STABLEHLO[name]}


def test_the_precision_holds_whatever_the_callers_setting():
  step = jax.jit(train.make_train_step(dataclasses.replace(BASE, precision="highest")))
  params, opt_state, _ = loop.init_state(np.zeros(1, np.int32), prog=BASE, many=False, D=2, K=3,
                                         dtype="float32")
  with precision.matmul_precision("bf16"):
    assert dot_precisions(step.lower(params, opt_state, *TRAIN)) == {"HIGHEST"}


def test_resume_reads_a_checkpoint_that_predates_precision(tmp_path):
  cfg = dataclasses.replace(BASE, epochs=2)
  train.fit(dataclasses.replace(cfg, epochs=1), TRAIN, VAL, out_dir=tmp_path, progress=False)
  path = tmp_path / checkpoint.FILENAME
  raw = checkpoint.load(path)
  recorded = json.loads(raw["config"])
  assert recorded["precision"] == "highest"
  del recorded["precision"]
  checkpoint.save(path, dict(raw, config=json.dumps(recorded)))
  resumed = train.fit(cfg, TRAIN, VAL, out_dir=tmp_path, resume=True, progress=False)
  straight = train.fit(cfg, TRAIN, VAL, progress=False)
  assert resumed.stopped == "completed" and len(resumed.history) == 2
  assert_trees_equal(resumed.params, straight.params)
  with pytest.raises(InputError, match="precision='highest'.*precision='tf32'"):
    train.fit(dataclasses.replace(cfg, epochs=3, precision="tf32"), TRAIN, VAL,
              out_dir=tmp_path, resume=True, progress=False)

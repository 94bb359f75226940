"""rnn_jax.train.TrainConfig: its checks name the flag, its JSON round trip, the optimizer."""
from __future__ import annotations

import dataclasses
import json

import jax.numpy as jnp
import numpy as np
import pytest

from rnn_jax import train
from rnn_jax.common.errors import InputError
from rnn_jax.train import TrainConfig


@pytest.mark.parametrize("field,value,flag", [
    ("batch_size", 0, "--batch-size"), ("lr", float("nan"), "--lr"), ("lr", 0.0, "--lr"),
    ("lr", "fast", "--lr"), ("lr", float("inf"), "--lr"), ("seeds", 0, "--seeds"),
    ("epochs", 0, "--epochs"), ("optimizer", "rmsprop", "--optimizer"),
    ("grad", "finite-diff", "--grad"), ("init", "zeros", "--init"), ("hidden_size", 0, "--hidden-size"),
    ("clip", -1.0, "--clip"), ("patience", -1, "--patience"), ("unroll", 0, "--unroll"),
    ("seed", -1, "--seed"), ("devices", -2, "--devices"), ("hidden_size", 2.5, "--hidden-size"),
    ("remat", "yes", "--remat"), ("remat", 1, "--remat"), ("epochs", True, "--epochs"),
    ("clip", float("nan"), "--clip"), ("devices", 1.5, "--devices"),
])
def test_validate_names_the_bad_argument(field, value, flag):
  cfg = dataclasses.replace(TrainConfig(), **{field: value})
  with pytest.raises(InputError, match=flag) as err:
    cfg.validate()
  assert "\n" not in str(err.value)
  assert str(err.value).startswith(f"{flag}: expected ") and str(err.value).endswith(repr(value))


@pytest.mark.parametrize("field,value,message", [
    ("hidden_size", 0, "--hidden-size: expected a positive integer, got 0"),
    ("patience", -1, "--patience: expected an integer >= 0, got -1"),
    ("lr", 0.0, "--lr: expected a finite positive number, got 0.0"),
    ("clip", -1.0, "--clip: expected a finite number >= 0 (0 = off), got -1.0"),
    ("optimizer", "rmsprop", "--optimizer: expected one of sgd, adam, got 'rmsprop'"),
    ("remat", "yes", "--remat: expected true or false, got 'yes'"),
])
def test_validate_messages(field, value, message):
  with pytest.raises(InputError) as err:
    dataclasses.replace(TrainConfig(), **{field: value}).validate()
  assert str(err.value) == message


def test_validate_stores_whole_floats_as_int():
  """An integer setting read as 12.0 (JSON) is accepted and stored as int; 12.5 is refused."""
  cfg = TrainConfig(hidden_size=12.0, batch_size=np.float64(8.0), epochs=3, devices=1.0).validate()
  assert (cfg.hidden_size, cfg.batch_size, cfg.devices) == (12, 8, 1)
  assert all(type(v) is int for v in (cfg.hidden_size, cfg.batch_size, cfg.devices))
  assert cfg == TrainConfig(hidden_size=12, batch_size=8, epochs=3, devices=1)


def test_config_defaults_are_valid_and_round_trip():
  cfg = TrainConfig().validate()
  assert (cfg.hidden_size, cfg.optimizer, cfg.lr, cfg.clip, cfg.batch_size) == (200, "adam", 1e-3,
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


def test_grad_has_one_vocabulary():
  assert TrainConfig(grad="hand").validate().grad == "hand"
  with pytest.raises(InputError, match="--grad: expected one of"):
    TrainConfig(grad="bptt").validate()

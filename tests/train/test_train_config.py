"""rnn_jax.train.config: TrainConfig's checks name the flag, its JSON round trip, the optimizer."""
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
    ("remat", "yes", "--remat"),
])
def test_validate_names_the_bad_argument(field, value, flag):
  cfg = dataclasses.replace(TrainConfig(), **{field: value})
  with pytest.raises(InputError, match=flag) as err:
    cfg.validate()
  assert "\n" not in str(err.value)


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


def test_grad_has_one_vocabulary_and_bptt_is_the_old_name_of_hand():
  assert TrainConfig(grad="bptt").grad == "hand"
  assert TrainConfig(grad="hand").validate().grad == "hand"
  assert TrainConfig.from_dict({**TrainConfig().to_dict(), "grad": "bptt"}).grad == "hand"

"""rnn_jax.train.checkpoint: exact round trips, damaged files as one-line InputErrors, atomic writes,
the writability probe."""
from __future__ import annotations

import os

import jax
import numpy as np
import optax
import pytest
from flax import serialization

from rnn_jax.common import fileio
from rnn_jax.train import checkpoint
from rnn_jax.common.errors import InputError
from rnn_jax.core.model import RNNParams


def params_like(dtype, seed=0, H=4, D=2, K=3):
  """Numpy RNNParams of ``dtype`` with random values."""
  rng = np.random.default_rng(seed)
  params = RNNParams(U=rng.normal(size=(H, H)), V=rng.normal(size=(H, D)), b=rng.normal(size=H),
                     W=rng.normal(size=(K, H)), c=rng.normal(size=K))
  return jax.tree.map(lambda a: a.astype(dtype), params)


def state_for(params):
  """A checkpoint-like dict; opt_state has the structure of chain(clip, adam)'s (built with
  numpy, so that no JAX program is compiled here)."""
  adam = optax.ScaleByAdamState(count=np.asarray(7, np.int32),
                                mu=jax.tree.map(lambda a: a * 0.5, params),
                                nu=jax.tree.map(lambda a: a * a, params))
  opt_state = (optax.EmptyState(), (adam, optax.EmptyState()))
  return {"params": params, "opt_state": opt_state, "epoch": 3, "note": "text",
          "best_val_loss": np.array([0.25, np.inf])}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trip_is_bit_exact(tmp_path, dtype):
  params = params_like(dtype)
  state = state_for(params)
  path = tmp_path / "ckpt.msgpack"
  checkpoint.save(path, state)
  raw = checkpoint.load(path)
  assert raw["format"] == checkpoint.FORMAT and int(raw["epoch"]) == 3 and raw["note"] == "text"
  np.testing.assert_array_equal(raw["best_val_loss"], [0.25, np.inf])
  got = checkpoint.restore(state["params"], raw["params"], path=path, name="params")
  assert isinstance(got, RNNParams)
  for a, b in zip(got, params):
    assert a.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(a, b)
  got_state = checkpoint.restore(state["opt_state"], raw["opt_state"], path=path,
                                 name="opt_state")
  assert jax.tree.structure(got_state) == jax.tree.structure(state["opt_state"])
  for a, b in zip(jax.tree.leaves(got_state), jax.tree.leaves(state["opt_state"])):
    assert np.asarray(a).dtype == np.asarray(b).dtype
    np.testing.assert_array_equal(a, np.asarray(b))


def test_load_params_reads_best_or_latest(tmp_path):
  path = tmp_path / "c.msgpack"
  best, latest = params_like("float32", 1), params_like("float32", 2)
  checkpoint.save(path, {"params": latest, "best_params": best})
  for a, b in zip(checkpoint.load_params(path), best):
    np.testing.assert_array_equal(a, b)
  for a, b in zip(checkpoint.load_params(path, best=False), latest):
    np.testing.assert_array_equal(a, b)


def test_restore_names_the_mismatching_array(tmp_path):
  path = tmp_path / "c.msgpack"
  checkpoint.save(path, {"params": params_like("float32", H=4)})
  raw = checkpoint.load(path)
  with pytest.raises(InputError, match=r"params\.U.*float32\[4, 4\].*float32\[5, 5\]"):
    checkpoint.restore(params_like("float32", H=5), raw["params"], path=path, name="params")
  with pytest.raises(InputError, match="opt_state"):
    checkpoint.restore({"a": np.zeros(2)}, raw["params"], path=path, name="opt_state")


def damaged_files(tmp_path):
  good = tmp_path / "good.msgpack"
  checkpoint.save(good, state_for(params_like("float32")))
  data = good.read_bytes()
  cases = {
      "missing": (tmp_path / "nope.msgpack", "not found"),
      "directory": (tmp_path, "found a directory"),
      "empty": (b"", "empty file"),
      "truncated": (data[:len(data) // 2], "truncated or damaged"),
      "garbage": (bytes(range(256)) * 3, "not"),
      "text": ("hello\n".encode(), "not"),
      "other msgpack": (serialization.msgpack_serialize({"a": np.zeros(3)}),
                        "not an rnn_jax checkpoint"),
  }
  out = {}
  for name, (content, match) in cases.items():
    if isinstance(content, bytes):
      path = tmp_path / f"{name.replace(' ', '_')}.msgpack"
      path.write_bytes(content)
    else:
      path = content
    out[name] = (path, match)
  return out


def test_damaged_files_are_one_line_input_errors_naming_the_file(tmp_path):
  for name, (path, match) in damaged_files(tmp_path).items():
    with pytest.raises(InputError, match=match) as err:
      checkpoint.load(path)
    msg = str(err.value)
    assert str(path) in msg and "\n" not in msg, name


def test_a_crash_while_writing_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
  path = tmp_path / checkpoint.FILENAME
  first = params_like("float32", 1)
  checkpoint.save(path, {"params": first})

  def killed(*args, **kwargs):                                 # dies just before the rename
    raise KeyboardInterrupt
  monkeypatch.setattr(fileio.os, "replace", killed)
  with pytest.raises(KeyboardInterrupt):
    checkpoint.save(path, {"params": params_like("float32", 2)})
  monkeypatch.undo()
  for a, b in zip(checkpoint.restore(first, checkpoint.load(path)["params"], path=path,
                                     name="params"), first):
    np.testing.assert_array_equal(a, b)
  assert sorted(os.listdir(tmp_path)) == [checkpoint.FILENAME]   # no temporary file left


def test_check_writable_creates_the_directory_and_removes_the_probe(tmp_path):
  target = tmp_path / "a" / "b"
  assert checkpoint.check_writable(target, 3 << 20) == target
  assert target.is_dir() and list(target.iterdir()) == []


def test_check_writable_failures_leave_nothing_behind(tmp_path, monkeypatch):
  blocker = tmp_path / "file"
  blocker.write_text("x")
  with pytest.raises(InputError, match=r"file/run: cannot write the output directory"):
    checkpoint.check_writable(blocker / "run")
  with pytest.raises(InputError, match="existing file"):
    checkpoint.check_writable(blocker)

  def full(fd):
    raise OSError(28, "No space left on device")
  monkeypatch.setattr(checkpoint.os, "fsync", full)
  with pytest.raises(InputError, match="No space left on device"):
    checkpoint.check_writable(tmp_path / "x" / "y")
  assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
  existing = tmp_path / "existing"
  existing.mkdir()
  with pytest.raises(InputError, match="No space left"):
    checkpoint.check_writable(existing)
  assert existing.is_dir() and list(existing.iterdir()) == []   # kept (not ours), probe gone


def _payload_span(data: bytes) -> tuple[int, int]:
  """Where the state's bytes sit inside a saved checkpoint file."""
  payload = serialization.msgpack_restore(data)["payload"]
  start = data.index(payload)
  return start, start + len(payload)


def test_every_flipped_byte_of_the_state_is_refused_naming_the_file(tmp_path):
  """A flipped bit anywhere in the stored state (weights, optimizer state, data order, the
  history) fails the checksum: before checksums, a flip inside an array loaded silently."""
  good = tmp_path / "good.msgpack"
  checkpoint.save(good, state_for(params_like("float32")))
  data = good.read_bytes()
  start, stop = _payload_span(data)
  bad = tmp_path / "bad.msgpack"
  for i in range(start, stop):
    flipped = bytearray(data)
    flipped[i] ^= 0x01
    bad.write_bytes(bytes(flipped))
    with pytest.raises(InputError) as err:
      checkpoint.load(bad)
    msg = str(err.value)
    assert msg.startswith(str(bad)) and "\n" not in msg, i


def test_a_flip_inside_a_stored_weight_is_refused_by_load_params(tmp_path):
  path = tmp_path / checkpoint.FILENAME
  params = params_like("float32", 3)
  checkpoint.save(path, {"params": params, "best_params": params})
  data = bytearray(path.read_bytes())
  weight = np.asarray(params.U).tobytes()
  at = bytes(data).index(weight) + len(weight) // 2           # the middle of U's raw bytes
  data[at] ^= 0x80
  path.write_bytes(bytes(data))
  with pytest.raises(InputError, match="do not match their SHA-256 checksum"):
    checkpoint.load_params(path)


def test_an_older_checkpoint_without_a_checksum_is_refused_saying_so(tmp_path):
  path = tmp_path / checkpoint.FILENAME
  state = {"format": "rnn_jax.checkpoint/1", "epoch": 1,
           "params": serialization.to_state_dict(params_like("float32"))}
  path.write_bytes(serialization.msgpack_serialize(state))
  with pytest.raises(InputError, match="has no checksum") as err:
    checkpoint.load(path)
  assert str(path) in str(err.value)

"""Flags derived from config dataclasses: strict parsing, one-line errors, exit status 2."""
from __future__ import annotations

import dataclasses

import pytest

from rnn_jax.common import cli
from rnn_jax.common.errors import InputError


@dataclasses.dataclass(frozen=True)
class Config:
  window: int = cli.option(24, "steps per window")
  lr: float = cli.option(1e-3, "learning rate")
  horizons: tuple[int, ...] = cli.option((1, 3, 6), "steps ahead")
  name: str | None = cli.option(None, "optional name")
  remat: bool = cli.option(False, "rematerialise")


def parse(argv, defaults=None):
  parser = cli.ArgumentParser(prog="prog")
  cli.add_config_flags(parser, Config, defaults)
  return cli.config_from_args(Config, parser.parse_args(argv))


def test_defaults_and_values():
  assert parse([]) == Config()
  assert parse(["--window", "12", "--lr", "0.5", "--horizons", "2,4", "--name", "x",
                "--remat"]) == Config(12, 0.5, (2, 4), "x", True)
  assert parse(["--remat", "--no-remat"]).remat is False
  assert parse(["--name", "none"]).name is None


def test_script_defaults_override_dataclass_defaults():
  assert parse([], {"window": 6}).window == 6
  assert parse(["--window", "3"], {"window": 6}).window == 3


@pytest.mark.parametrize("argv, flag", [
    (["--window", "2.5"], "--window"), (["--lr", "fast"], "--lr"), (["--lr", "nan"], "--lr"),
    (["--horizons", "1,,3"], "--horizons"), (["--horizons", "a"], "--horizons"),
    (["--remat=yes"], "--remat"), (["--remat", "true"], "true"), (["--bogus", "1"], "--bogus")])
def test_bad_flags_name_the_flag(argv, flag):
  with pytest.raises(InputError, match=flag) as err:
    parse(argv)
  assert "\n" not in str(err.value)


def test_booleans_are_on_off_flags_and_script_defaults_apply():
  assert parse([], {"remat": True}).remat is True
  assert parse(["--no-remat"], {"remat": True}).remat is False


def test_a_field_without_help_is_refused():
  @dataclasses.dataclass(frozen=True)
  class Bare:
    window: int = 24                    # a comment is not help: help comes from cli.option

  with pytest.raises(TypeError, match="Bare.window"):
    cli.add_config_flags(cli.ArgumentParser(prog="prog"), Bare)


def test_help_shows_option_help_and_default(capsys):
  parser = cli.ArgumentParser(prog="prog")
  cli.add_config_flags(parser, Config, {"window": 6})
  parser.print_help()
  out = capsys.readouterr().out
  assert "steps per window (default: 6)" in out and "(default: 1,3,6)" in out


def test_main_turns_input_error_into_exit_2(capsys):
  def run(argv):
    raise InputError("data.csv: line 3: expected a number,\n got 'x'")
  assert cli.entry_point(run)([]) == 2
  err = capsys.readouterr().err
  assert err == "error: data.csv: line 3: expected a number, got 'x'\n"

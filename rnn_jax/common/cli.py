"""What every script in experiments/ shares: one-line errors with exit status 2, and flags
derived mechanically from a frozen config dataclass.

Every config field is declared with ``option(default, help)``: field ``name`` becomes the flag
``--name`` (``_`` -> ``-``) with that help. Flag vocabulary, the same in every script: one value
takes the singular (``--window``, ``--hidden-size``, ``--batch-size``), a sweep the plural of the
same stem (``--windows``, ``--hidden-sizes``, ``--batch-sizes``); a boolean is a plain on/off
pair (``--remat`` / ``--no-remat``); ``--grad`` is ``autodiff`` or ``hand``.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import sys
import types
import typing
from typing import Any, Callable

from rnn_jax.common.errors import InputError


class ArgumentParser(argparse.ArgumentParser):
  """argparse, but a bad argument raises InputError (one line, exit 2) instead of usage + exit,
  and abbreviated flags are refused (``--batch-size`` must not silently mean ``--batch-sizes``)."""

  def __init__(self, *args, **kwargs):
    kwargs.setdefault("allow_abbrev", False)
    super().__init__(*args, **kwargs)

  def error(self, message: str):
    raise InputError(f"{self.prog}: {message} (see --help)")


def entry_point(run: Callable[[list[str] | None], int | None]) -> Callable[..., int]:
  """A script's ``main(argv=None) -> exit status`` from ``run(argv)``: an InputError becomes
  the one line ``error: <message>`` on stderr and exit status 2. Every script in experiments/
  defines ``main`` with it and ends with ``sys.exit(main())``."""
  @functools.wraps(run)
  def main(argv: list[str] | None = None) -> int:
    try:
      return int(run(argv) or 0)
    except InputError as err:
      print(f"error: {err}", file=sys.stderr)
      return 2
  return main


def flag(name: str) -> str:
  """The command-line flag of config field ``name``: ``batch_size`` -> ``--batch-size``."""
  return "--" + name.replace("_", "-")



def option(default, help: str, **metadata):  # noqa: A002  (``help`` as argparse calls it)
  """A config dataclass field whose flag help is ``help`` (the one place flag help comes from).

  ``metadata`` passes on, e.g. ``cli=False`` for a field that has no flag of its own.
  """
  if isinstance(default, (list, dict, set)):
    raise TypeError("option: use a tuple for a sequence default")
  return dataclasses.field(default=default, metadata={"help": help, **metadata})


def _base_type(tp):
  """(element type, is_tuple, is_optional) of a field annotation."""
  optional = False
  origin = typing.get_origin(tp)
  if origin in (typing.Union, types.UnionType):
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    optional = len(args) < len(typing.get_args(tp))
    tp = args[0]
    origin = typing.get_origin(tp)
  if origin is tuple:
    return typing.get_args(tp)[0], True, optional
  return tp, False, optional


def _parse_scalar(flag: str, kind, text: str):
  if kind is bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
      return True
    if lowered in ("0", "false", "no", "off"):
      return False
    raise InputError(f"{flag}: expected true or false, got {text!r}")
  try:
    value = kind(text.strip())
  except ValueError:
    expected = {int: "an integer", float: "a number"}.get(kind, kind.__name__)
    raise InputError(f"{flag}: expected {expected}, got {text!r}") from None
  if kind is float and not math.isfinite(value):
    raise InputError(f"{flag}: expected a finite number, got {text!r}")
  return value


def add_config_flags(parser: argparse.ArgumentParser, cls,
                     defaults: dict[str, Any] | None = None) -> None:
  """One flag per field of the dataclass ``cls``: ``field_name`` -> ``--field-name``.

  Help comes from ``field.metadata["help"]`` (declare fields with ``option``); tuples are
  comma-separated; ``None`` is "none"; a bool field is the pair ``--name`` / ``--no-name``.
  Values are parsed strictly (InputError naming the flag) when ``config_from_args`` runs.
  ``defaults`` overrides the dataclass defaults for this script (shown in --help and used when
  the flag is absent).
  """
  defaults = defaults or {}
  hints = typing.get_type_hints(cls)
  for field in dataclasses.fields(cls):
    if field.metadata.get("cli") is False:
      continue
    if "help" not in field.metadata:
      raise TypeError(f"{cls.__name__}.{field.name}: declare it with cli.option(default, help)")
    kind, is_tuple, _ = _base_type(hints[field.name])
    default = defaults.get(field.name, field.default)
    shown = ",".join(map(str, default)) if is_tuple and default is not None else default
    help_text = field.metadata["help"].replace("%", "%%")
    if kind is bool and not is_tuple:
      parser.add_argument(flag(field.name), dest=field.name, default=defaults.get(field.name),
                          action=argparse.BooleanOptionalAction,
                          help=f"{help_text} (default: {'on' if default else 'off'})")
      continue
    given = defaults.get(field.name)
    if is_tuple and given is not None:
      given = ",".join(map(str, given))
    parser.add_argument(flag(field.name), dest=field.name, default=(
        str(given) if field.name in defaults else None), metavar=(
        "A,B,..." if is_tuple else kind.__name__.upper()),
        help=f"{help_text} (default: {'none' if shown is None else shown})")


def config_from_args(cls, args: argparse.Namespace, **overrides: Any):
  """Builds ``cls`` from parsed flags (strings) over its defaults; errors name the flag."""
  hints = typing.get_type_hints(cls)
  values = {}
  for field in dataclasses.fields(cls):
    text = getattr(args, field.name, None)
    if text is None:
      continue
    if isinstance(text, bool):                        # an on/off flag, parsed by argparse
      values[field.name] = text
      continue
    name = flag(field.name)
    kind, is_tuple, optional = _base_type(hints[field.name])
    if optional and text.strip().lower() in ("none", ""):
      values[field.name] = None
    elif is_tuple:
      parts = [p for p in text.split(",")]
      if not text.strip() or any(not p.strip() for p in parts):
        raise InputError(f"{name}: expected a comma-separated list, got {text!r}")
      values[field.name] = tuple(_parse_scalar(name, kind, p) for p in parts)
    else:
      values[field.name] = _parse_scalar(name, kind, text)
  values.update(overrides)
  return cls(**values)

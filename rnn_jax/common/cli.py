"""What every script in experiments/ shares: one-line errors with exit status 2, and flags
derived from a config dataclass whose fields are declared with ``option(default, help)``.

Flag vocabulary: one value takes the singular (``--batch-size``), a sweep the plural of the same
stem (``--batch-sizes``); a boolean is an on/off pair (``--remat`` / ``--no-remat``)."""
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
  """``main(argv=None)`` of ``run``: InputError becomes ``error: <message>`` on stderr, exit 2."""
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


def option(default, help: str):  # noqa: A002  (``help`` as argparse calls it)
  """A config dataclass field whose flag help is ``help``; a sequence default is a tuple."""
  return dataclasses.field(default=default, metadata={"help": help})


def _base_type(tp):
  """(element type, is_tuple, is_optional) of a field annotation."""
  optional = typing.get_origin(tp) in (typing.Union, types.UnionType)
  if optional:
    args = typing.get_args(tp)
    optional, tp = type(None) in args, [a for a in args if a is not type(None)][0]
  if typing.get_origin(tp) is tuple:
    return typing.get_args(tp)[0], True, optional
  return tp, False, optional


def _parse_scalar(flag: str, kind, text: str):
  try:
    value = kind(text.strip())
  except ValueError:
    expected = {int: "an integer", float: "a number"}.get(kind, kind.__name__)
    raise InputError(f"{flag}: expected {expected}, got {text!r}") from None
  if kind is float and not math.isfinite(value):
    raise InputError(f"{flag}: expected a finite number, got {text!r}")
  return value


def add_config_flags(parser: argparse.ArgumentParser, cls,
                     defaults: dict[str, Any] | None = None, *,
                     several: tuple[str, ...] = ()) -> None:
  """One flag per field of ``cls`` (tuples comma-separated, ``None`` as "none", a bool ``--name`` /
  ``--no-name``); ``defaults`` overrides the dataclass defaults (shown in --help). A field in
  ``several`` takes one or more values (a list; the caller picks one for ``config_from_args``)."""
  defaults = defaults or {}
  hints = typing.get_type_hints(cls)
  for field in dataclasses.fields(cls):
    if "help" not in field.metadata:
      raise TypeError(f"{cls.__name__}.{field.name}: declare it with cli.option(default, help)")
    kind, is_tuple, _ = _base_type(hints[field.name])
    default = defaults.get(field.name, field.default)
    help_text = field.metadata["help"].replace("%", "%%")
    if kind is bool and not is_tuple:
      parser.add_argument(flag(field.name), dest=field.name, default=defaults.get(field.name),
                          action=argparse.BooleanOptionalAction,
                          help=f"{help_text} (default: {'on' if default else 'off'})")
      continue
    text = ",".join(map(str, default)) if is_tuple and default is not None else default
    parser.add_argument(flag(field.name), dest=field.name,
                        default=str(text) if field.name in defaults else None,
                        nargs="+" if field.name in several else None,
                        metavar="A,B,..." if is_tuple else kind.__name__.upper(),
                        help=f"{help_text} (default: {'none' if text is None else text})")


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
      parts = text.split(",")
      if any(not p.strip() for p in parts):
        raise InputError(f"{name}: expected a comma-separated list, got {text!r}")
      values[field.name] = tuple(_parse_scalar(name, kind, p) for p in parts)
    else:
      values[field.name] = _parse_scalar(name, kind, text)
  values.update(overrides)
  return cls(**values)

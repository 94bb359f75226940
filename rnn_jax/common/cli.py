"""What every script in experiments/ shares: one-line errors with exit status 2, and flags
derived mechanically from a frozen config dataclass (each field's comment is its help)."""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import math
import re
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


def main(run: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> int:
  """Runs ``run(argv)``; an InputError becomes ``error: <message>`` on stderr and exit 2."""
  try:
    return int(run(argv) or 0)
  except InputError as err:
    print(f"error: {err}", file=sys.stderr)
    return 2


def _flag(name: str) -> str:
  return "--" + name.replace("_", "-")


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


def _field_comments(cls) -> dict[str, str]:
  """``{field: comment}`` from lines ``name: type = default  # comment`` of the class source."""
  try:
    source = inspect.getsource(cls)
  except (OSError, TypeError):
    return {}
  found = {}
  for line in source.splitlines():
    m = re.match(r"\s+(\w+)\s*:[^#]*#\s*(.+)$", line)
    if m:
      found[m.group(1)] = m.group(2).strip()
  return found


def add_config_flags(parser: argparse.ArgumentParser, cls,
                     defaults: dict[str, Any] | None = None) -> None:
  """One flag per field of the dataclass ``cls``: ``field_name`` -> ``--field-name``.

  Help comes from ``field.metadata["help"]`` or else the field's trailing comment in the class
  source; tuples are comma-separated; ``None`` is "none". Values are parsed strictly
  (InputError naming the flag) when ``config_from_args`` runs. ``defaults`` overrides the
  dataclass defaults for this script (shown in --help and used when the flag is absent).
  """
  defaults = defaults or {}
  hints = typing.get_type_hints(cls)
  comments = _field_comments(cls)
  for field in dataclasses.fields(cls):
    if field.metadata.get("cli") is False:
      continue
    kind, is_tuple, _ = _base_type(hints[field.name])
    default = defaults.get(field.name, field.default)
    shown = ",".join(map(str, default)) if is_tuple and default is not None else default
    help_text = field.metadata.get("help", comments.get(field.name, "")).replace("%", "%%")
    parser.add_argument(_flag(field.name), dest=field.name, default=(
        str(defaults[field.name]) if field.name in defaults else None), metavar=(
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
    flag = _flag(field.name)
    kind, is_tuple, optional = _base_type(hints[field.name])
    if optional and text.strip().lower() in ("none", ""):
      values[field.name] = None
    elif is_tuple:
      parts = [p for p in text.split(",")]
      if not text.strip() or any(not p.strip() for p in parts):
        raise InputError(f"{flag}: expected a comma-separated list, got {text!r}")
      values[field.name] = tuple(_parse_scalar(flag, kind, p) for p in parts)
    else:
      values[field.name] = _parse_scalar(flag, kind, text)
  values.update(overrides)
  return cls(**values)

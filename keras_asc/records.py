"""Stage results as frozen dataclasses that round-trip through JSON.

A stage returns a record (``ExportResult``, ``ValidationReport``, ...) and writes it with
:func:`to_json`; the next stage reads it back with :func:`from_json` and uses attributes, never
string keys. Field types drive the conversion: nested records, ``tuple[X, ...]``,
``dict[str, X]``, ``X | None`` and plain JSON scalars. A record class may name derived
properties in ``JSON_PROPERTIES``: they are written for readers of the file and ignored on
reading.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from keras_asc import artifacts

R = TypeVar("R")


class PassedWithoutFailures:
    """A report's verdict, for a record with a ``failures`` tuple: passed when it names none
    (written to its JSON as ``passed``)."""

    JSON_PROPERTIES: ClassVar[tuple[str, ...]] = ("passed",)
    failures: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.failures


def to_json(record: Any) -> Any:
    """A record (or a value inside one) as plain JSON types; tuples become lists."""
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        names = [f.name for f in dataclasses.fields(record)] + list(getattr(record, "JSON_PROPERTIES", ()))
        return {name: to_json(getattr(record, name)) for name in names}
    if isinstance(record, (list, tuple)):
        return [to_json(v) for v in record]
    if isinstance(record, dict):
        return {str(k): to_json(v) for k, v in record.items()}
    return record


def from_json(cls: type[R], data: Any, *, source: str = "record") -> R:
    """``data`` (from :func:`to_json`) as an instance of record type ``cls``; keys the record does
    not declare are ignored, a missing key raises :class:`artifacts.ArtifactError` naming
    ``source`` (usually the file)."""
    return _convert(cls, data, source)


def _convert(tp: Any, value: Any, where: str) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return _convert(inner[0], value, where) if len(inner) == 1 else value
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, where) for v in value)
        return tuple(_convert(a, v, where) for a, v in zip(args, value)) if args else tuple(value)
    if origin is dict:
        _, val = typing.get_args(tp)
        return {k: _convert(val, v, where) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise artifacts.ArtifactError(f"{where}: expected an object for {tp.__name__}, got {type(value).__name__}")
        hints = typing.get_type_hints(tp)
        kwargs = {}
        for f in dataclasses.fields(tp):
            if not f.init:
                continue
            if f.name not in value:
                if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING:
                    continue
                raise artifacts.ArtifactError(
                    f"{where}: field {f.name!r} of {tp.__name__} is missing: the file was written by another "
                    "version of this toolkit or edited. Run the stage that writes it again")
            kwargs[f.name] = _convert(hints[f.name], value[f.name], where)
        return tp(**kwargs)
    if tp is float and isinstance(value, int):
        return float(value)
    return value


def write(path: Path, record: Any) -> None:
    artifacts.write_json(path, to_json(record))


def read(cls: type[R], path: Path) -> R:
    """Read a record written by :func:`write`; errors name ``path``."""
    return from_json(cls, artifacts.read_json(path), source=str(path))

"""Deterministic wire form of the model: dataclass -> list of field values
(in declaration order), enums -> ints, tuples -> lists; decoded back through
the constructors so validation runs on everything that crosses the wire.

msgpack of these lists is byte-identical for equal objects on every process
(no dict ordering, no Python ``hash()``), which Raft snapshots rely on.
"""
from __future__ import annotations

import dataclasses
import enum
import typing
from typing import Any, Callable

import msgpack

from scheduler import model
from scheduler.errors import MalformedEntry, SchedulerError

_ENCODERS: dict[type, Callable[[Any], Any]] = {}
_DECODERS: dict[Any, Callable[[Any], Any]] = {}


def encode(obj: Any) -> Any:
    """Model object -> msgpack-able value."""
    cls = type(obj)
    encoder = _ENCODERS.get(cls)
    if encoder is None:
        encoder = _ENCODERS[cls] = _make_encoder(cls)
    return encoder(obj)


def _make_encoder(cls: type) -> Callable[[Any], Any]:
    if dataclasses.is_dataclass(cls):
        names = tuple(f.name for f in dataclasses.fields(cls))

        def encode_dataclass(obj: Any) -> list:
            return [encode(getattr(obj, name)) for name in names]
        return encode_dataclass
    if issubclass(cls, enum.IntEnum):
        return int
    if cls in (tuple, list):
        return lambda value: [encode(item) for item in value]
    if cls in (str, int, float, bytes, bool, type(None)):
        return lambda value: value
    raise TypeError(f"cannot encode {cls.__name__}")


def decoder_for(annotation: Any) -> Callable[[Any], Any]:
    """A function turning the wire value back into ``annotation``'s type."""
    cached = _DECODERS.get(annotation)
    if cached is None:
        cached = _DECODERS[annotation] = _make_decoder(annotation)
    return cached


def _make_decoder(annotation: Any) -> Callable[[Any], Any]:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Union:
        inner = decoder_for(next(a for a in args if a is not type(None)))
        return lambda value: None if value is None else inner(value)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            item = decoder_for(args[0])

            def decode_varlen(value: Any) -> tuple:
                if not isinstance(value, (list, tuple)):
                    raise MalformedEntry(f"expected a list, got {type(value).__name__}")
                return tuple(item(x) for x in value)
            return decode_varlen
        items = [decoder_for(a) for a in args]

        def decode_fixed(value: Any) -> tuple:
            if not isinstance(value, (list, tuple)) or len(value) != len(items):
                raise MalformedEntry(f"expected a list of {len(items)}")
            return tuple(d(x) for d, x in zip(items, value))
        return decode_fixed
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        hints = typing.get_type_hints(annotation, vars(model))
        fields = [decoder_for(hints[f.name]) for f in dataclasses.fields(annotation)]
        cls = annotation

        def decode_dataclass(value: Any) -> Any:
            if not isinstance(value, (list, tuple)) or len(value) != len(fields):
                raise MalformedEntry(f"{cls.__name__}: expected a list of {len(fields)} fields")
            return cls(*[d(x) for d, x in zip(fields, value)])
        return decode_dataclass
    if isinstance(annotation, type) and issubclass(annotation, enum.IntEnum):
        enum_cls = annotation

        def decode_enum(value: Any) -> Any:
            try:
                return enum_cls(value)
            except ValueError:
                raise MalformedEntry(f"{value!r} is not a {enum_cls.__name__}") from None
        return decode_enum
    if annotation in (str, int, bytes, bool):
        expected = annotation

        def decode_scalar(value: Any) -> Any:
            if type(value) is not expected:
                raise MalformedEntry(f"expected {expected.__name__}, got {type(value).__name__}")
            return value
        return decode_scalar
    if annotation is float:
        def decode_float(value: Any) -> float:
            if type(value) not in (int, float):
                raise MalformedEntry(f"expected a number, got {type(value).__name__}")
            return float(value)
        return decode_float
    raise TypeError(f"no decoder for {annotation!r}")


def decode(cls: type, value: Any) -> Any:
    """Wire value -> ``cls`` instance; bad input -> MalformedEntry."""
    try:
        return decoder_for(cls)(value)
    except SchedulerError as error:
        if isinstance(error, MalformedEntry):
            raise
        raise MalformedEntry(f"{cls.__name__}: {error}") from error
    except (TypeError, ValueError) as error:
        raise MalformedEntry(f"{cls.__name__}: {error}") from error


def pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def unpack(data: bytes) -> Any:
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as error:  # msgpack raises several unrelated types on garbage
        raise MalformedEntry(f"not msgpack: {error}") from None

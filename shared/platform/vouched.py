"""Reading an event whose record is vouched for, at a third of the cost of validating it.

A replay from a trusted checkpoint reads the records the checkpoint vouches for: the live fold read,
placed and signature-checked each of them when it applied it, and the replay is held to the checkpoint's
chain heads and ledger checksum afterwards (``services/registry/replay.py``). Validating such a record
again with the contract's pydantic models costs about 10 µs; decoding it with msgspec into typed structs
and building the same models from them without validation costs about 5 (docs/performance.md).

The structs are generated from the contract's classes (``EVENT_TYPES``, the envelope), so there is still one
home for the contract: a field added there is read here. They check the wire form's shape and types, not the
contract's constraints (patterns, ranges, model validators), and they do what the models do to a value on
the way in (text stripped, times in UTC). Anything they cannot read the same way (an older schema version, a
number for a time, an unknown type or field) gives ``None``, and the caller reads the record the full way.

Never for a record nobody has vouched for: what would be refused is not refused here.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
from pydantic import AwareDatetime, BaseModel

from shared.contract.events import EVENT_TYPES, Envelope, Event

_Convert = Callable[[Any], Any]
_set = object.__setattr__


def read_vouched(raw: bytes) -> Envelope | None:
    """The envelope in ``raw``, equal to ``Envelope.from_bytes(raw)``, or None if this reader cannot read it so."""
    try:
        struct = _DECODER.decode(raw)  # one pass: the envelope's type picks the struct of its payload
        envelope: Envelope = _ENVELOPES[type(struct)](struct)
    except (msgspec.MsgspecError, ArithmeticError, ValueError):
        # An older schema version (for the upcasters), an unknown type, a time out of range in UTC: the full way
        # reads it, or says why not.
        return None
    return envelope


def _wire_type(annotation: Any) -> Any:
    """The msgspec type that reads what ``annotation`` reads (its constraints left out)."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _wire_type(typing.get_args(annotation)[0])
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _struct(annotation)
    if origin is tuple:
        return tuple[_wire_type(typing.get_args(annotation)[0]), ...]  # type: ignore[misc]
    if origin in (typing.Union, types.UnionType):
        return typing.Union[tuple(_wire_type(a) for a in typing.get_args(annotation))]  # noqa: UP007
    if annotation in (datetime, AwareDatetime):
        return Annotated[datetime, msgspec.Meta(tz=True)]  # a time without its offset is not read
    return annotation


def _convert(annotation: Any, metadata: Iterable[Any] = ()) -> _Convert | None:
    """What turns a decoded value of ``annotation`` into the model's value (None: it is that already)."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        inner, *more = typing.get_args(annotation)
        return _convert(inner, [*metadata, *more])
    if any(getattr(m, "to_upper", None) or getattr(m, "to_lower", None) for m in metadata):
        raise TypeError(f"no vouched reading of {annotation} {metadata}: it changes case")
    if any(getattr(m, "strip_whitespace", None) for m in metadata):
        return str.strip
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _builder(annotation)
    if origin is tuple:
        item = _convert(typing.get_args(annotation)[0])
        return None if item is None else lambda value: tuple(map(item, value))
    if origin in (typing.Union, types.UnionType):
        converts = [_convert(a) for a in typing.get_args(annotation) if a is not type(None)]
        if len(converts) != 1:
            raise TypeError(f"no vouched reading of {annotation}: one type or None only")
        return converts[0]  # a None is left as it is
    return None


_STRUCTS: dict[type[BaseModel], type[msgspec.Struct]] = {}
_BUILDERS: dict[type[BaseModel], _Convert] = {}


def _fields(model: type[BaseModel], wire: dict[str, Any]) -> list[Any]:
    """The struct fields of ``model``'s: a field with a default may be left out (``UNSET``), as on the wire."""
    fields: list[Any] = []
    for name, info in model.model_fields.items():
        kind = wire.get(name) or _wire_type(info.annotation)
        fields.append((name, kind) if info.is_required() else (name, kind | msgspec.UnsetType, msgspec.UNSET))
    return fields


def _struct(model: type[BaseModel]) -> type[msgspec.Struct]:
    if model not in _STRUCTS:
        _STRUCTS[model] = msgspec.defstruct(
            f"Vouched{model.__name__}", _fields(model, {}), forbid_unknown_fields=True, kw_only=True
        )
    return _STRUCTS[model]


def _builder(
    model: type[BaseModel], own: dict[str, _Convert] | None = None, tag: tuple[str, str] | None = None
) -> _Convert:
    """Builds ``model`` from its struct: a field not given takes its default and is not marked set. ``own``:
    the conversions of fields that the model's own validators change; ``tag``: the field (and its value) that
    the struct holds as its tag, not as a field."""
    if own is None and tag is None and model in _BUILDERS:
        return _BUILDERS[model]
    order = list(model.model_fields)
    names = frozenset(order)
    defaults = [(name, info.default) for name, info in model.model_fields.items() if not info.is_required()]
    if any(not isinstance(default, tuple | str | int | None) for _, default in defaults):
        raise TypeError(f"no vouched reading of {model.__name__}: a mutable default would be shared by every event")
    converts = [
        (name, convert)
        for name, info in model.model_fields.items()
        if (convert := (own or {}).get(name) or _convert(info.annotation, info.metadata)) is not None
    ]

    asdict, unset, new = msgspec.structs.asdict, msgspec.UNSET, object.__new__
    if tag is None:
        values_of = asdict
    else:  # the tag's value in its place among the fields: the fields before it, placed first, keep their places
        placed = dict.fromkeys(order[: order.index(tag[0])]) | {tag[0]: tag[1]}

        def values_of(struct: msgspec.Struct) -> dict[str, Any]:
            values = placed.copy()
            values.update(asdict(struct))
            return values

    def build(struct: msgspec.Struct) -> Any:
        values = values_of(struct)
        given = set(names)
        for name, default in defaults:
            if values[name] is unset:
                values[name] = default
                given.discard(name)
        for name, convert in converts:
            if values[name] is not None:
                values[name] = convert(values[name])
        made = new(model)  # as pydantic's validation would have left it
        _set(made, "__dict__", values)
        _set(made, "__pydantic_fields_set__", given)
        _set(made, "__pydantic_extra__", None)
        _set(made, "__pydantic_private__", None)
        return made

    if own is None and tag is None:
        _BUILDERS[model] = build
    return build


def _envelope(kind: str, event_class: type[Event]) -> tuple[type[msgspec.Struct], _Convert]:
    """The struct of the envelope of one event type, tagged with its ``type`` and holding only its current schema
    version, and what builds the envelope from it."""
    wire = {"schema_version": Literal[event_class.SCHEMA_VERSION], "payload": _struct(event_class)}
    fields = [field for field in _fields(Envelope, wire) if field[0] != "type"]  # the tag is the type
    struct = msgspec.defstruct(
        f"Vouched{kind}Envelope", fields, forbid_unknown_fields=True, kw_only=True, tag_field="type", tag=kind
    )
    own = {"payload": _builder(event_class), "occurred_at": lambda at: at.astimezone(UTC)}  # Envelope._in_utc
    return struct, _builder(Envelope, own, tag=("type", kind))


_ENVELOPES = dict(_envelope(kind, cls) for kind, cls in EVENT_TYPES.items())
_DECODER: msgspec.json.Decoder[Any] = msgspec.json.Decoder(typing.Union[tuple(_ENVELOPES)])  # noqa: UP007

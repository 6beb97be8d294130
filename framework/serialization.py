"""Turning events and aggregate state into bytes and back.

One cattrs converter serves the whole framework. Stored payloads are compact JSON (readable in the
AWS console), compressed with zlib above a threshold so that typical events stay inside one write
capacity unit and large ones stay far from DynamoDB's item limit. The first byte tells the format:
``{`` plain JSON, ``z`` zlib-compressed JSON.

The ``EventRegistry`` maps the stable type names stored with events to the classes that read them;
it is built by the application from the handlers its aggregates declare, so two classes claiming
one name are reported at start-up. Upcasters are the exception: ``@upcaster`` registers its
function process-wide, keyed by stored type name (``upcasting.py``), and every registry reads
through them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import hashlib
import json
import typing
import uuid
import zlib
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import attrs
import cattrs
from cattrs.preconf.json import make_converter

from framework.domain import (
    Aggregate,
    Event,
    aggregate_state_fields,
    event_schema_version,
    event_type_name,
    personal_fields,
    personal_specs,
    require_text_fields,
    undeclared_state,
)
from framework.encryption import ENCRYPTED_MARK, KeyRing
from framework.errors import CorruptEvent, DefinitionError, UnknownEventType
from framework.store.keys import check_aggregate_id
from framework.subjects import ERASED, Subject, split_subject_name, subject_name
from framework.typecheck import text_field_kind
from framework.upcasting import check_upcasters, upcast

COMPRESSION_THRESHOLD = 1024
"""Payloads longer than this many bytes are stored zlib-compressed."""

_PLAIN = ord("{")
_ZLIB = ord("z")


def make_framework_converter() -> cattrs.Converter:
    """The converter for events and snapshots: exact round trips of Decimal, datetime, UUID."""
    converter = make_converter()
    converter.register_unstructure_hook(Decimal, str)
    converter.register_structure_hook(Decimal, lambda value, _: Decimal(value))
    converter.register_unstructure_hook(uuid.UUID, str)
    converter.register_structure_hook(uuid.UUID, lambda value, _: uuid.UUID(value))
    converter.register_unstructure_hook(dt.datetime, dt.datetime.isoformat)
    converter.register_structure_hook(
        dt.datetime, lambda value, _: dt.datetime.fromisoformat(value)
    )
    return converter


converter = make_framework_converter()


def encode_json(document: Any, *, threshold: int = COMPRESSION_THRESHOLD) -> bytes:
    """Encode an unstructured document as compact JSON, compressed when that pays off."""
    raw = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
    if len(raw) > threshold:
        compressed = zlib.compress(raw, 6)
        if len(compressed) + 1 < len(raw):
            return bytes([_ZLIB]) + compressed
    return raw


def decode_json(payload: bytes) -> Any:
    """Inverse of ``encode_json``. Raises ``ValueError`` on anything it does not recognise."""
    if not payload:
        raise ValueError("empty payload")
    tag = payload[0]
    if tag == _PLAIN:
        return json.loads(payload.decode())
    if tag == _ZLIB:
        try:
            return json.loads(zlib.decompress(payload[1:]))
        except zlib.error as error:
            raise ValueError(f"bad compressed payload: {error}") from error
    raise ValueError(f"unknown payload format byte {tag:#04x}")


@attrs.frozen
class EncodedEvent:
    """An event as the store sees it: type name, schema version and payload bytes."""

    event_type: str
    schema: int
    payload: bytes


class EventRegistry:
    """Maps stored event type names to event classes and back."""

    def __init__(
        self, event_classes: Iterable[type[Event]] = (), *, keys: KeyRing | None = None
    ) -> None:
        self._by_name: dict[str, type[Event]] = {}
        self.keys = keys
        for event_class in event_classes:
            self.register(event_class)

    def register(self, event_class: type[Event]) -> None:
        """Register ``event_class`` under its stable name; a clash with another class fails."""
        name = event_type_name(event_class)
        known = self._by_name.get(name)
        if known is not None and known is not event_class:
            raise DefinitionError(
                f"event type name {name!r} is used by both {known.__module__}."
                f"{known.__qualname__} and {event_class.__module__}.{event_class.__qualname__}"
            )
        check_upcasters(event_class)
        require_text_fields(event_class)
        self._by_name[name] = event_class

    def classes(self) -> list[type[Event]]:
        """Every registered event class."""
        return list(self._by_name.values())

    def encode(self, event: Event, stream: Subject | None = None) -> EncodedEvent:
        """Serialize ``event`` of ``stream`` for storage, personal fields encrypted.

        Each personal field is sealed with its subject's key (``stream`` itself unless the field
        names another aggregate). Raises ``SubjectForgotten`` for a forgotten subject.
        """
        event_class = type(event)
        name = event_type_name(event_class)
        document = converter.unstructure(event, event_class)
        for spec in personal_specs(event_class):
            value = document.get(spec.name)
            if value is None:
                continue
            if self.keys is None or (stream is None and spec.subject_field is None):
                raise DefinitionError(
                    f"{event_class.__name__}.{spec.name} is personal data: give the Application "
                    "a KeyRing (keys=...) so that it is stored encrypted with its subject's key"
                )
            subject_type, subject_id = spec.subject(event, stream or ("", ""))
            check_aggregate_id(subject_type, subject_id)  # a declared owner's id is input too
            subject = subject_name((subject_type, subject_id))
            document[spec.name] = self.keys.encrypt_text(subject, value, f"{name}.{spec.name}")
        return EncodedEvent(name, event_schema_version(event_class), encode_json(document))

    def decode(
        self, event_type: str, schema: int, payload: bytes, *, stream: str, version: int
    ) -> Event:
        """Deserialize a stored event; unknown types and undecodable payloads raise clearly."""
        event_class = self._by_name.get(event_type)
        if event_class is None:
            raise UnknownEventType(event_type, stream, version)
        current = event_schema_version(event_class)
        if schema > current:
            raise CorruptEvent(
                stream,
                version,
                f"{event_type} is stored with schema version {schema}, newer than the version "
                f"{current} that {event_class.__name__} reads: was it written by newer code?",
            )
        try:
            document = decode_json(payload)
            if schema < current:
                document = upcast(event_type, schema, current, document)
            self._decrypt_personal(event_class, event_type, document)
            event: Event = converter.structure(document, event_class)
        except Exception as error:
            raise CorruptEvent(stream, version, f"cannot decode {event_type}: {error}") from error
        return event

    def _decrypt_personal(
        self, event_class: type[Event], name: str, document: dict[str, Any]
    ) -> None:
        for field in personal_fields(event_class):
            value = document.get(field)
            if not (isinstance(value, dict) and ENCRYPTED_MARK in value):
                continue
            text = None if self.keys is None else self.keys.decrypt_text(value, f"{name}.{field}")
            if text is None:  # the subject was forgotten (or no key ring can read it)
                text = None if _optional(event_class, field) else ERASED
            document[field] = text

    def has_personal_data(self, event_classes: Iterable[type[Event]]) -> bool:
        """True when any of ``event_classes`` has personal fields."""
        return any(personal_fields(event_class) for event_class in event_classes)


def _optional(event_class: type[Event], field: str) -> bool:
    return text_field_kind(event_class, field) == "optional"


def state_schema(aggregate_class: type[Aggregate]) -> str:
    """A fingerprint of the aggregate's declared state, stored with each snapshot.

    Any change to the shape of the state changes the fingerprint: a state attribute added,
    removed, renamed or retyped, the same for a field of a nested attrs class or dataclass (at any
    depth, inside generics too), an enum's members or values, or the class's
    ``__snapshot_version__``. Older snapshots are then ignored in favour of a full replay: a
    snapshot is never applied to a class it was not written by.
    """
    fields = aggregate_state_fields(aggregate_class)
    described = ";".join(
        f"{name}:{_describe_type(hint, frozenset())[0]}" for name, hint in sorted(fields.items())
    )
    version = getattr(aggregate_class, "__snapshot_version__", 1)
    text = f"{aggregate_class.aggregate_type()}|{version}|{described}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _describe_type(hint: Any, seen: frozenset[type]) -> tuple[str, bool]:
    """The text of ``hint`` in a state fingerprint, and whether it has a structure of its own.

    Attrs classes and dataclasses are described by their fields, enums by their members and
    values, generics by their arguments, recursively; ``seen`` holds the classes being described
    on the way down, so a class that refers to itself ends the recursion. A type made only of
    plain types keeps the text it always had (``repr`` for generics), so snapshots of such
    states stay valid across this change.
    """
    arguments = typing.get_args(hint)
    if arguments:
        parts = [_describe_type(argument, seen) for argument in arguments]
        if not any(structured for _, structured in parts):
            return repr(hint), False
        origin = typing.get_origin(hint)
        return f"{origin!r}[{','.join(text for text, _ in parts)}]", True
    if not isinstance(hint, type):
        return repr(hint), False
    name = f"{hint.__module__}.{hint.__qualname__}"
    if hint in seen:
        return name, True
    if issubclass(hint, enum.Enum):
        return name + "(" + ",".join(f"{m.name}={m.value!r}" for m in hint) + ")", True
    if attrs.has(hint) or dataclasses.is_dataclass(hint):
        try:
            hints = typing.get_type_hints(hint)
        except (NameError, TypeError):
            hints = {}
        if attrs.has(hint):
            names = [f.name for f in attrs.fields(hint)]
        else:
            names = [f.name for f in dataclasses.fields(hint)]  # type: ignore[arg-type]
        inner = ";".join(
            f"{field}:{_describe_type(hints.get(field, Any), seen | {hint})[0]}" for field in names
        )
        return f"{name}{{{inner}}}", True
    return name, False


class SnapshotStateError(DefinitionError):
    """An aggregate holds state that a snapshot would silently lose."""


_ENCRYPTED_STATE = ord("E")
"""First byte of a snapshot state sealed with its subjects' keys (``KeyRing.encrypt_blob``)."""


@attrs.frozen
class DecodedState:
    """A snapshot's attribute values and the subjects whose personal data they hold."""

    values: Mapping[str, Any]
    subjects: frozenset[Subject] = frozenset()


def encode_state(aggregate: Aggregate, keys: KeyRing | None = None) -> bytes:
    """Serialize the declared state of ``aggregate`` for a snapshot.

    A state built from personal data (``aggregate.personal_subjects``) is sealed with the key of
    each of those subjects, so forgetting any one of them makes the snapshot unreadable. Raises
    ``SubjectForgotten`` when one of them is forgotten: such a state must not be stored.
    """
    undeclared = undeclared_state(aggregate)
    if undeclared:
        raise SnapshotStateError(
            f"{type(aggregate).__name__} sets attributes that are not declared as annotated "
            f"state ({', '.join(undeclared)}); annotate them on the class so snapshots keep them"
        )
    fields = aggregate_state_fields(type(aggregate))
    state = vars(aggregate)
    document = {
        name: converter.unstructure(state[name], hint)
        for name, hint in fields.items()
        if name in state
    }
    encoded = encode_json(document)
    subjects = aggregate.personal_subjects
    if not subjects:
        return encoded
    if keys is None:
        raise DefinitionError(
            f"{type(aggregate).__name__} holds personal data: its snapshots need a KeyRing"
        )
    names = [subject_name(subject) for subject in subjects]
    sealed = keys.encrypt_blob(names, encoded, f"snapshot:{aggregate.aggregate_type()}")
    return bytes([_ENCRYPTED_STATE]) + sealed


def decode_state(
    aggregate_class: type[Aggregate], payload: bytes, keys: KeyRing | None = None
) -> DecodedState:
    """Deserialize a snapshot's state into attribute values for ``aggregate_class``.

    A sealed state one of whose subjects was forgotten raises ``ValueError``: the snapshot is then
    ignored and the stream replayed, with the personal fields erased.
    """
    fields = aggregate_state_fields(aggregate_class)
    subjects: frozenset[Subject] = frozenset()
    if payload[:1] == bytes([_ENCRYPTED_STATE]):
        context = f"snapshot:{aggregate_class.aggregate_type()}"
        opened = None if keys is None else keys.decrypt_blob(payload[1:], context)
        if opened is None:
            raise ValueError("the snapshot is sealed with a key that is gone")
        payload, names = opened
        subjects = frozenset(split_subject_name(name) for name in names)
    elif payload[:1] == b"e":
        raise ValueError("the snapshot was sealed by an older format: replay instead")
    document = decode_json(payload)
    if not isinstance(document, dict):
        raise ValueError("snapshot state is not a JSON object")
    values = {
        name: converter.structure(value, fields[name])
        for name, value in document.items()
        if name in fields
    }
    return DecodedState(values, subjects)

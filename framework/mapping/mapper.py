"""The event mapper: one application's way between events (and snapshot states) and stored bytes.

An ``EventMapper`` knows the event classes by the stable type names stored with them (two classes
claiming one name are reported when the second is registered), the upcasters that read older
schema versions of them, and the key ring that seals personal fields. Each ``Application`` builds
its own from what it is given (``Application(..., upcasters=[...], keys=...)``), and the
projection engines that read the same events take that mapper (``mapper=app.mapper``) or the same
upcasters: nothing is registered process-wide, so two applications in one process may read one
stored type name in two ways.

Every class is checked when it is registered (its upcaster chain complete, its personal fields
text) and gets a prebuilt reader: its current schema version, its upcasters, its personal fields
and its structure function (``structure.py``). Decoding an event stored at the current version
is then a JSON parse and one call; the chain is only looked at for an older version.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from framework.domain import (
    Aggregate,
    Event,
    event_schema_version,
    event_type_name,
    personal_specs,
    require_text_fields,
)
from framework.encryption import KeyRing
from framework.errors import CorruptEvent, DefinitionError, UnknownEventType
from framework.mapping.converter import converter
from framework.mapping.formats import decode_json, encode_json
from framework.mapping.personal import open_fields, open_state, seal_fields, seal_state
from framework.mapping.state import DecodedState, state_document, state_schema, state_values
from framework.mapping.structure import structure_function
from framework.mapping.upcasters import Upcaster, Upcasters, run_chain
from framework.subjects import Subject
from framework.typecheck import text_field_kind


@attrs.frozen
class EncodedEvent:
    """An event as the store sees it: type name, schema version and payload bytes."""

    event_type: str
    schema: int
    payload: bytes


class _Reader:
    """What decoding one event class needs, looked up once when the class is registered."""

    __slots__ = ("current", "event_class", "name", "personal", "steps", "structure")

    def __init__(self, event_class: type[Event], upcasters: Upcasters) -> None:
        self.event_class = event_class
        self.name = event_type_name(event_class)
        self.current = event_schema_version(event_class)
        self.structure = structure_function(event_class, converter)
        self.steps = upcasters.steps(self.name)
        self.personal = tuple(
            (spec.name, text_field_kind(event_class, spec.name) == "optional")
            for spec in personal_specs(event_class)
        )


class EventMapper:
    """Events and snapshot states of one application to stored bytes and back.

    ``event_classes`` are registered now (more with ``register``); ``upcasters`` are functions
    marked ``@upcaster``, owned by this mapper alone; ``keys`` seals personal fields and states.
    """

    def __init__(
        self,
        event_classes: Iterable[type[Event]] = (),
        *,
        upcasters: Iterable[Upcaster] = (),
        keys: KeyRing | None = None,
    ) -> None:
        self.keys = keys
        self.upcasters = Upcasters(upcasters)
        self._readers: dict[str, _Reader] = {}
        self._state_schemas: dict[type[Aggregate], str] = {}
        for event_class in event_classes:
            self.register(event_class)

    def register(self, event_class: type[Event]) -> None:
        """Register ``event_class`` under its stable name.

        A clash with another class, an upcaster chain with a missing link, or a personal field
        that is not text fails now.
        """
        name = event_type_name(event_class)
        known = self._readers.get(name)
        if known is not None:
            if known.event_class is event_class:
                return
            other = known.event_class
            raise DefinitionError(
                f"event type name {name!r} is used by both {other.__module__}."
                f"{other.__qualname__} and {event_class.__module__}.{event_class.__qualname__}"
            )
        self.upcasters.check(event_class)
        require_text_fields(event_class)
        self._readers[name] = _Reader(event_class, self.upcasters)

    def extended(
        self, event_classes: Iterable[type[Event]], *, keys: KeyRing | None = None
    ) -> EventMapper:
        """A mapper with this one's upcasters and keys that reads ``event_classes`` too.

        A projection engine reads with the application's mapper extended by the projector's
        event classes: the same upcasters, whatever the projector handles. Where a class of
        ``event_classes`` has the stored name of one of this mapper's, it wins: a projector may
        read a stored type into a class of its own, and its handlers expect that class.
        """
        mapper = EventMapper(
            event_classes, upcasters=self.upcasters.functions, keys=keys or self.keys
        )
        for name, reader in self._readers.items():
            mapper._readers.setdefault(name, reader)
        return mapper

    def classes(self) -> list[type[Event]]:
        """Every registered event class."""
        return [reader.event_class for reader in self._readers.values()]

    def has_personal_data(self) -> bool:
        """True when any registered event class has personal fields."""
        return any(reader.personal for reader in self._readers.values())

    # -- events ------------------------------------------------------------------------------

    def encode(self, event: Event, stream: Subject | None = None) -> EncodedEvent:
        """Serialize ``event`` of ``stream`` for storage, personal fields encrypted.

        Each personal field is sealed with its subject's key (``stream`` itself unless the field
        names another aggregate). Raises ``SubjectForgotten`` for a forgotten subject.
        """
        event_class = type(event)
        name = event_type_name(event_class)
        document = converter.unstructure(event, event_class)
        specs = personal_specs(event_class)
        if specs:
            seal_fields(self.keys, event, name, specs, document, stream)
        return EncodedEvent(name, event_schema_version(event_class), encode_json(document))

    def decode(
        self, event_type: str, schema: int, payload: bytes, *, stream: str, version: int
    ) -> Event:
        """Deserialize a stored event; unknown types and undecodable payloads raise clearly."""
        reader = self._readers.get(event_type)
        if reader is None:
            raise UnknownEventType(event_type, stream, version)
        current = reader.current
        if schema > current:
            raise CorruptEvent(
                stream,
                version,
                f"{event_type} is stored with schema version {schema}, newer than the version "
                f"{current} that {reader.event_class.__name__} reads: was it written by newer "
                "code?",
            )
        try:
            document = decode_json(payload)
            if schema != current:
                document = run_chain(event_type, reader.steps, schema, current, document)
            if reader.personal:
                open_fields(self.keys, event_type, reader.personal, document)
            event = reader.structure(document)
        except Exception as error:
            raise CorruptEvent(stream, version, f"cannot decode {event_type}: {error}") from error
        return event

    # -- snapshot states ---------------------------------------------------------------------

    def state_schema(self, aggregate_class: type[Aggregate]) -> str:
        """The fingerprint of ``aggregate_class``'s declared state (computed once per class)."""
        schema = self._state_schemas.get(aggregate_class)
        if schema is None:
            schema = self._state_schemas[aggregate_class] = state_schema(aggregate_class)
        return schema

    def encode_state(self, aggregate: Aggregate) -> bytes:
        """Serialize the declared state of ``aggregate`` for a snapshot.

        A state built from personal data (``aggregate.personal_subjects``) is sealed with the key
        of each of those subjects, so forgetting any one of them makes the snapshot unreadable.
        Raises ``SubjectForgotten`` when one of them is forgotten: such a state must not be
        stored.
        """
        return seal_state(self.keys, aggregate, encode_json(state_document(aggregate)))

    def decode_state(self, aggregate_class: type[Aggregate], payload: bytes) -> DecodedState:
        """Deserialize a snapshot's state into attribute values for ``aggregate_class``.

        A sealed state one of whose subjects was forgotten raises ``ValueError``: the snapshot is
        then ignored and the stream replayed, with the personal fields erased.
        """
        opened, subjects = open_state(self.keys, aggregate_class.aggregate_type(), payload)
        return DecodedState(state_values(aggregate_class, decode_json(opened)), subjects)

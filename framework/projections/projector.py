"""The ``Projector`` base class: read models built from events.

A projector declares ``@event_handler(EventType)`` methods taking ``(self, event, envelope)``. The
runners deliver every event at least once and in any order; the framework turns that into
exactly-once, in-order application per stream (see ``engine.py``). A handler that writes to
DynamoDB queues its writes with ``self.put``/``self.update``/``self.delete``/``self.save``: they are
committed in one transaction with the projector's position, so a crash cannot apply an event to
the read model without recording it, or the other way round.

Queued writes of several events of one stream may share a transaction, so a handler must not read
back what an earlier handler call queued: express changes as writes that need no read (a ``Put``
of a row keyed by the event, an ``Update`` with ``ADD`` or ``SET``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import attrs

from framework.domain import Event, collect_event_handlers, event_type_name
from framework.encryption import KeyRing
from framework.store.keys import check_name, stream_key
from framework.store.positions import TransactItem


@attrs.frozen
class Envelope:
    """Where and when an event happened: handed to projector handlers beside the event."""

    aggregate_type: str
    aggregate_id: str
    version: int
    event_type: str
    occurred_at: dt.datetime
    change_set_id: str
    command_id: str
    correlation_id: str
    causation_id: str

    @property
    def stream(self) -> str:
        """``{aggregate_type}#{aggregate_id}``."""
        return stream_key(self.aggregate_type, self.aggregate_id)


class Projector:
    """Base class of read-model builders.

    The projector's stable name (default: the class name; set it with
    ``class Balances(Projector, name="balances")``) keys its positions: renaming it means
    rebuilding it. ``aggregate_types`` limits the streams it follows (default: all).
    """

    __projector_name__: ClassVar[str] = "Projector"
    aggregate_types: ClassVar[frozenset[str] | None] = None
    key_ring: KeyRing | None = None
    """The key ring that reads personal fields; without one they read as erased."""
    _event_handlers: ClassVar[dict[type[Event], Callable[..., Any]]] = {}
    _handlers_by_name: ClassVar[dict[str, Callable[..., Any]]] = {}

    def __init_subclass__(cls, *, name: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.__projector_name__ = check_name("projector", cls.__name__ if name is None else name)
        cls._event_handlers = collect_event_handlers(cls)
        cls._handlers_by_name = {
            event_type_name(event_class): handler
            for event_class, handler in cls._event_handlers.items()
        }

    def __init__(self) -> None:
        self._queued: list[TransactItem] = []

    @classmethod
    def projector_name(cls) -> str:
        """The stable name that keys this projector's positions."""
        return cls.__projector_name__

    @classmethod
    def event_classes(cls) -> list[type[Event]]:
        """The event classes this projector handles."""
        return list(cls._event_handlers)

    def follows(self, aggregate_type: str) -> bool:
        """True when this projector follows streams of ``aggregate_type``."""
        return self.aggregate_types is None or aggregate_type in self.aggregate_types

    def handler_for(self, event_type: str) -> Callable[..., Any] | None:
        """The handler for a stored event type name, if this projector handles it."""
        return self._handlers_by_name.get(event_type)

    def reset(self) -> None:
        """Clear the read model before a rebuild. Override it; the default does nothing."""

    # -- queued DynamoDB writes ------------------------------------------------------------

    def put(self, table: str, item: Mapping[str, Any], **options: Any) -> None:
        """Queue a ``Put`` of a low-level item (``{"pk": {"S": "..."}}``)."""
        self._queued.append({"Put": {"TableName": table, "Item": dict(item), **options}})

    def update(self, table: str, key: Mapping[str, Any], expression: str, **options: Any) -> None:
        """Queue an ``Update``: ``expression`` is the ``UpdateExpression``; options as boto3's."""
        self._queued.append(
            {
                "Update": {
                    "TableName": table,
                    "Key": dict(key),
                    "UpdateExpression": expression,
                    **options,
                }
            }
        )

    def delete(self, table: str, key: Mapping[str, Any], **options: Any) -> None:
        """Queue a ``Delete`` of the item under ``key``."""
        self._queued.append({"Delete": {"TableName": table, "Key": dict(key), **options}})

    def save(self, model: Any) -> None:
        """Queue a ``Put`` of a PynamoDB model instance (its table and serialized attributes)."""
        self.put(model.Meta.table_name, model.serialize())

    def take_queued(self) -> list[TransactItem]:
        """The writes queued since the last call (the engine commits them)."""
        queued, self._queued = self._queued, []
        return queued

"""Every error the framework raises on purpose, in one place.

They live in a module of their own (standard library only) so that the domain layer and the store
layer can both raise them without importing each other. Each error carries the facts a person needs
to act on it as attributes, not only in its message.
"""

from __future__ import annotations

__all__ = [
    "AggregateAlreadyExists",
    "AggregateNotFound",
    "BusUnavailable",
    "ChangeSetTooLarge",
    "CommandIdReused",
    "ConcurrencyError",
    "ConfigurationError",
    "ConflictError",
    "CorruptEvent",
    "DefinitionError",
    "DeliverAgain",
    "DomainError",
    "DuplicateCommand",
    "EntryTooLarge",
    "EventStoreError",
    "FrameworkError",
    "InvalidCommand",
    "InvalidDeadline",
    "InvalidEvent",
    "InvalidIdentifier",
    "InvalidMessage",
    "MissingEventHandler",
    "PublishError",
    "StoreUnavailable",
    "SubjectForgotten",
    "TableMissing",
    "Throttled",
    "TransactionConflict",
    "UniqueConstraintViolated",
    "UnknownCommand",
    "UnknownEventType",
]


class FrameworkError(Exception):
    """Base class of every error the framework raises on purpose."""


class DomainError(FrameworkError):
    """A business rule refused a command. Raised by user code inside command handlers.

    Nothing is written when a handler raises it.
    """


class InvalidMessage(FrameworkError, TypeError):
    """A command or event was built with wrongly typed fields."""


class InvalidCommand(InvalidMessage):
    """A command was built with wrongly typed fields: bad input, refused before any work."""


class InvalidIdentifier(InvalidCommand):
    """An aggregate id, command id or unique value cannot be stored: refused before any request.

    Empty, not UTF-8 text, or too long for one of the keys it ends up in (the tightest is the
    ``feed`` index's 1,024-byte sort key). ``aggregate_type`` names the aggregate for ids,
    ``length`` and ``limit`` are UTF-8 bytes when the identifier was too long.
    """

    def __init__(
        self,
        what: str,
        identifier: str,
        reason: str,
        aggregate_type: str | None = None,
        *,
        length: int | None = None,
        limit: int | None = None,
    ) -> None:
        shown = identifier if len(identifier) <= 40 else identifier[:40] + "..."
        super().__init__(f"{what} {shown!r} {reason}")
        self.what = what
        self.aggregate_type = aggregate_type
        self.length = length
        self.limit = limit


class InvalidEvent(InvalidMessage):
    """An event was built with wrongly typed fields: a bug in the handler that emits it."""


class DefinitionError(FrameworkError, TypeError):
    """An aggregate, command, event or handler is declared in a way that cannot work.

    Raised at class-definition or application start-up time, never in the middle of a request.
    """


class UnknownCommand(FrameworkError):
    """No handler is registered with the application for this command type."""


class MissingEventHandler(FrameworkError):
    """An aggregate emitted or replayed an event it has no ``@event_handler`` for."""

    def __init__(self, aggregate_type: str, event_type: str) -> None:
        super().__init__(
            f"{aggregate_type} has no @event_handler for {event_type}: add one so that the event "
            "can be applied to the aggregate's state"
        )
        self.aggregate_type = aggregate_type
        self.event_type = event_type


class AggregateNotFound(FrameworkError):
    """The command targets an aggregate that has no events yet."""

    def __init__(self, aggregate_type: str, aggregate_id: str) -> None:
        super().__init__(f"{aggregate_type} {aggregate_id!r} does not exist")
        self.aggregate_type = aggregate_type
        self.aggregate_id = aggregate_id


class AggregateAlreadyExists(FrameworkError):
    """A creating command targets an aggregate id that is already taken."""

    def __init__(self, aggregate_type: str, aggregate_id: str) -> None:
        super().__init__(f"{aggregate_type} {aggregate_id!r} already exists")
        self.aggregate_type = aggregate_type
        self.aggregate_id = aggregate_id


class ConflictError(FrameworkError):
    """Base class of the outcomes where the change set lost a race and nothing was written."""


class ConcurrencyError(ConflictError):
    """Another change set committed to the aggregate after it was loaded (optimistic concurrency).

    ``actual_version`` is ``None`` when the store could not tell it.
    """

    def __init__(
        self,
        aggregate_type: str,
        aggregate_id: str,
        expected_version: int,
        actual_version: int | None,
    ) -> None:
        actual = "unknown" if actual_version is None else str(actual_version)
        super().__init__(
            f"{aggregate_type} {aggregate_id!r} changed concurrently: expected version "
            f"{expected_version}, found {actual}"
        )
        self.aggregate_type = aggregate_type
        self.aggregate_id = aggregate_id
        self.expected_version = expected_version
        self.actual_version = actual_version


class TransactionConflict(ConflictError):
    """DynamoDB cancelled the transaction because another transaction touched the same items."""


class DuplicateCommand(ConflictError):
    """The command id was already processed; the first outcome stands."""

    def __init__(self, command_id: str) -> None:
        super().__init__(f"command {command_id!r} was already processed")
        self.command_id = command_id


class CommandIdReused(ConflictError):
    """The command id was already processed for a different command (another payload).

    A repeat of a command returns its first result; the same id with other fields is not a
    repeat but a client bug (an idempotency key reused for another request). Answering it with
    the first command's result would report as done something that never ran, so it is refused.
    """

    def __init__(self, command_id: str) -> None:
        super().__init__(
            f"command id {command_id!r} was already used for a different command: give each "
            "distinct command (each distinct request) its own id"
        )
        self.command_id = command_id


class UniqueConstraintViolated(ConflictError):
    """A unique-value claim (for example an email address) is held by another owner."""

    def __init__(self, scope: str, value: str) -> None:
        super().__init__(f"{scope} {value!r} is already taken")
        self.scope = scope
        self.value = value


class SubjectForgotten(FrameworkError):
    """A command would store personal data of a subject that was forgotten.

    Forgetting is permanent: a forgotten subject never gets a new key, so new personal data for it
    is refused (nothing is written) rather than stored readable or stored erased while the
    aggregate in memory holds it in clear.
    """

    def __init__(self, subject: str) -> None:
        super().__init__(
            f"{subject} was forgotten: its personal data can no longer be stored (a forgotten "
            "subject never gets a new key)"
        )
        self.subject = subject


class ChangeSetTooLarge(FrameworkError):
    """The change set breaks a DynamoDB transaction limit; it was refused before sending."""


class EventStoreError(FrameworkError):
    """Base class of the store's infrastructure failures."""


class ConfigurationError(EventStoreError):
    """The store is set up wrongly: no credentials, no region, a missing table, access denied, a
    request DynamoDB calls malformed. The message names the fix.

    Retrying cannot cure it (unlike ``StoreUnavailable``): a person must change the
    configuration, the tables or the code. Nothing was written.
    """


class TableMissing(ConfigurationError):
    """A table the store needs does not exist (not yet created, or the prefix is wrong)."""

    def __init__(self, table: str) -> None:
        super().__init__(
            f"table {table!r} does not exist: create it with store.create_tables() or check the "
            "table prefix (DYNAMO_TABLE_PREFIX)"
        )
        self.table = table


class StoreUnavailable(EventStoreError):
    """The store could not be reached or kept throttling after bounded retries: a retry later
    may succeed (a misconfiguration is ``ConfigurationError`` instead).

    For a commit this means its outcome is unknown; retrying the same command (same command id)
    is safe, because the command id makes a second application impossible.
    """


class Throttled(StoreUnavailable):
    """DynamoDB kept throttling the request after bounded retries."""


class UnknownEventType(EventStoreError):
    """A stored event's type name is not registered with the application."""

    def __init__(self, event_type: str, stream: str, version: int) -> None:
        super().__init__(
            f"unknown event type {event_type!r} at version {version} of stream {stream!r}: "
            "register the event class (an aggregate or projector must handle it)"
        )
        self.event_type = event_type
        self.stream = stream
        self.version = version


class CorruptEvent(EventStoreError):
    """A stored item cannot be decoded into a record or an event."""

    def __init__(self, stream: str, version: int | None, reason: str) -> None:
        where = f"version {version} of stream {stream!r}" if version is not None else repr(stream)
        super().__init__(f"corrupt stored item at {where}: {reason}")
        self.stream = stream
        self.version = version
        self.reason = reason


class PublishError(FrameworkError):
    """Base class of the EventBridge publisher's failures."""


class EntryTooLarge(PublishError):
    """An event's ``PutEvents`` entry exceeds EventBridge's 256 KB and no claim check is set up.

    The engine parks the event (its stream waits, ``projections status`` shows it): configure a
    payload store for the publisher, or skip the event with ``projections skip``.
    """

    def __init__(self, stream: str, version: int, size: int, limit: int) -> None:
        super().__init__(
            f"the EventBridge entry of version {version} of stream {stream!r} is {size} bytes, "
            f"over the {limit}-byte limit of PutEvents: give the publisher a payload store "
            "(payloads=S3PayloadStore(bucket), or PUBLISH_PAYLOAD_BUCKET) to send a claim check"
        )
        self.stream = stream
        self.version = version
        self.size = size
        self.limit = limit


class BusUnavailable(PublishError, StoreUnavailable):
    """EventBridge or the dead-letter queue refused or did not answer whole requests, after
    bounded retries. Nothing was moved past the unpublished events: the runner fails (a Lambda
    batch is retried, the Streams poller backs off) and they are delivered again."""


class DeliverAgain(FrameworkError):
    """Raised while an event is handled, when what handling it must do could not be done for a
    reason that may pass (the store or the bus unavailable, a race lost after the retries).

    The projection engine neither retries nor parks the event: it stops the delivery before any
    position moves past it, the runner fails (a Lambda batch is retried, the poller backs off, a
    catch-up run is run again) and the event comes again. Only handlers whose effects are
    idempotent may raise it: a process manager's commands, whose ids are derived from the event.
    ``__cause__`` is the error that stopped it.
    """


class InvalidDeadline(FrameworkError, ValueError):
    """A deadline that cannot be stored as given: a naive time, a lease that is not positive,
    scheduling outside a process manager's handler."""

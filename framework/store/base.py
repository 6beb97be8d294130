"""The event store port: what the unit of work and the projections need from any store."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

from framework.store.dynamodb.tables import TableNames
from framework.store.records import (
    ChangeSet,
    ProcessedCommand,
    Snapshot,
    StoredEvent,
    StreamEvent,
)


@runtime_checkable
class EventStore(Protocol):
    """Stores streams of events, snapshots, unique claims and processed command ids.

    Implementations must give the same answers and raise the same errors for the same calls; the
    contract suite ``framework.testing.contracts.EventStoreContract`` holds every implementation
    to that.
    """

    tables: TableNames
    """The names of the tables the store keeps its items in."""

    def commit(self, change_set: ChangeSet) -> None:
        """Write the whole change set atomically, or nothing.

        Raises ``ConcurrencyError``, ``DuplicateCommand``, ``UniqueConstraintViolated``,
        ``TransactionConflict``, ``ChangeSetTooLarge``, ``TableMissing`` or ``StoreUnavailable``.
        """
        ...

    def load_events(
        self, aggregate_type: str, aggregate_id: str, after_version: int = 0
    ) -> list[StoredEvent]:
        """Events of one stream with a version above ``after_version``, in version order."""
        ...

    def load_history(
        self, aggregate_type: str, aggregate_id: str, after_version: int = 0
    ) -> Sequence[StreamEvent]:
        """What ``load_events`` gives, for rebuilding an aggregate: each event's version, type,
        schema and payload (resolved, when it was offloaded), without its commit's metadata.

        An aggregate is loaded through this. A store may leave the metadata unread (DynamoDB
        then sends a fraction of each item); one whose metadata is malformed loads all the
        same, and ``load_events`` still refuses it. A missing or malformed history attribute
        raises ``CorruptEvent``.
        """
        ...

    def stream_exists(self, aggregate_type: str, aggregate_id: str) -> bool:
        """True when the stream has at least one event (a cheap, consistent check)."""
        ...

    def load_snapshot(self, aggregate_type: str, aggregate_id: str) -> Snapshot | None:
        """The latest snapshot of the aggregate, if one was written."""
        ...

    def read_feed(
        self, since: dt.datetime | None = None, until: dt.datetime | None = None
    ) -> Iterator[StoredEvent]:
        """Every event of every stream committed in [``since``, ``until``), in commit order.

        Lazily, hour by hour: memory use does not grow with the number of events. Commit time
        is not a gap-free total order (see the projections docs); within a stream, versions
        ascend.
        """
        ...

    def resolve_payload(self, record: StoredEvent) -> StoredEvent:
        """The record with its real payload: fetched from S3 when it was offloaded there.

        The store's own reads do this already; runners that receive items from elsewhere (a
        DynamoDB Stream) call it.
        """
        ...

    def get_processed_command(self, command_id: str) -> ProcessedCommand | None:
        """The record of a committed command, if its id was processed (and not yet expired)."""
        ...

    def create_tables(self) -> None:
        """Provision what the store needs; idempotent."""
        ...

    def delete_tables(self) -> None:
        """Remove everything the store holds."""
        ...


_OPERATIONS = tuple(
    name for name, member in vars(EventStore).items() if callable(member) and name[0] != "_"
)


def missing_operations(store: object) -> list[str]:
    """The methods of the ``EventStore`` port that ``store`` does not offer (none: complete).

    An application checks its store with this when it is built: a store written for an older
    port (without ``load_history``, say) is then refused by name before any command runs,
    instead of failing on the first load.
    """
    return [name for name in _OPERATIONS if not callable(getattr(store, name, None))]

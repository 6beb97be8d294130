"""An in-memory event store with exactly the DynamoDB store's semantics.

It keeps the very items the DynamoDB store would write (built by the same functions in
``items.py``), checks the same limits, evaluates the same conditions and explains a refused change
set with the same rules. Users' fast unit tests therefore see the errors production would raise.
"""

from __future__ import annotations

import bisect
import datetime as dt
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from framework.store.dynamodb.tables import TableNames
from framework.store.items import (
    Item,
    PlannedWrite,
    explain_cancellation,
    item_to_command,
    item_to_event,
    item_to_snapshot,
    item_to_stream_event,
    plan_transaction,
)
from framework.store.keys import checked_stream_key, command_key
from framework.store.large_payloads import PayloadStore, forget_uploads, offload, resolve
from framework.store.records import (
    ChangeSet,
    ProcessedCommand,
    Snapshot,
    StoredEvent,
    StreamEvent,
)
from framework.tracing import annotate

_OK: Mapping[str, Any] = {"Code": "None"}


class InMemoryEventStore:
    """A thread-safe event store held in process memory. Nothing survives the process."""

    def __init__(
        self,
        *,
        table_prefix: str = "memory",
        command_retention: dt.timedelta = dt.timedelta(days=7),
        large_payloads: PayloadStore | None = None,
    ) -> None:
        self.tables = TableNames(table_prefix)
        self.large_payloads = large_payloads
        self.command_retention = command_retention
        self._lock = threading.Lock()
        self._aggregates: dict[str, Item] = {}
        self._events: dict[str, dict[int, Item]] = {}
        # Each stream's versions in order, so that a load after a snapshot finds its first event
        # by bisection instead of walking (and sorting) every version the stream ever had.
        self._versions: dict[str, list[int]] = {}
        # Records read back from the event items, kept beside them per stream: the items never
        # change once written, so each is decoded once instead of on every load.
        self._records: dict[str, dict[int, StoredEvent]] = {}
        self._history: dict[str, dict[int, StreamEvent]] = {}  # the same, for load_history
        self._snapshots: dict[str, Item] = {}

    # -- EventStore ------------------------------------------------------------------------

    def commit(self, change_set: ChangeSet) -> None:
        """Apply the change set atomically, under the same conditions as DynamoDB."""
        change_set, uploaded = offload(change_set, self.large_payloads)
        try:
            plan = plan_transaction(
                change_set, self.tables, command_retention=self.command_retention
            )
            keyed = [(write, write.key) for write in plan.writes]  # each key built once
            annotate(
                lambda: {
                    "db.system": "framework.memory",
                    "aws.dynamodb.table_names": sorted({write.table for write in plan.writes}),
                    "framework.commit.items": len(plan.writes),
                }
            )
            with self._lock:
                reasons = [self._check(write, key) for write, key in keyed]
                if any(reason is not _OK for reason in reasons):
                    raise explain_cancellation(plan, reasons)
                self._apply(keyed)
        except BaseException:
            forget_uploads(self.large_payloads, uploaded)
            raise

    def load_events(
        self, aggregate_type: str, aggregate_id: str, after_version: int = 0
    ) -> list[StoredEvent]:
        """Events of one stream after ``after_version``, in version order."""
        key = checked_stream_key(aggregate_type, aggregate_id)
        with self._lock:
            stream = self._events.get(key)
            if not stream:
                return []
            decoded = self._records.setdefault(key, {})
            records = [
                decoded.get(v) or self._record(key, v, stream[v])
                for v in self._versions_after(key, after_version)
            ]
        return [self.resolve_payload(record) for record in records]

    def load_history(
        self, aggregate_type: str, aggregate_id: str, after_version: int = 0
    ) -> list[StreamEvent]:
        """The stream's events after ``after_version`` as an aggregate is rebuilt from them.

        Read from the items as DynamoDB's store reads them, the history attributes only, so
        that both stores accept and refuse the same items; each is read once and kept.
        """
        key = checked_stream_key(aggregate_type, aggregate_id)
        stream = (aggregate_type, aggregate_id)
        with self._lock:
            items = self._events.get(key)
            if not items:
                return []
            read = self._history.setdefault(key, {})
            history = []
            for version in self._versions_after(key, after_version):
                event = read.get(version)
                if event is None:
                    event = read[version] = item_to_stream_event(items[version], stream)
                history.append(event)
        return [resolve(event, self.large_payloads) for event in history]

    def resolve_payload(self, record: StoredEvent) -> StoredEvent:
        """The record with its offloaded payload fetched back (see ``large_payloads``)."""
        return resolve(record, self.large_payloads)

    def _record(self, key: str, version: int, item: Item) -> StoredEvent:
        decoded = self._records.setdefault(key, {})
        record = decoded.get(version)
        if record is None:
            record = item_to_event(item)
            decoded[version] = record
        return record

    def stream_exists(self, aggregate_type: str, aggregate_id: str) -> bool:
        """True when the stream has at least one event."""
        with self._lock:
            return bool(self._events.get(checked_stream_key(aggregate_type, aggregate_id)))

    def load_snapshot(self, aggregate_type: str, aggregate_id: str) -> Snapshot | None:
        """The latest snapshot of the aggregate, if any."""
        with self._lock:
            item = self._snapshots.get(checked_stream_key(aggregate_type, aggregate_id))
        return None if item is None else item_to_snapshot(item)

    def read_feed(
        self, since: dt.datetime | None = None, until: dt.datetime | None = None
    ) -> Iterator[StoredEvent]:
        """Every event committed in [``since``, ``until``), in the feed index's order."""
        with self._lock:
            items = [
                (item["feed_sk"]["S"], key, version, item)
                for key, stream in self._events.items()
                for version, item in stream.items()
            ]
        items.sort(key=lambda entry: str(entry[0]))
        for _, key, version, item in items:
            with self._lock:
                event = self._record(key, version, item)
            if since is not None and event.occurred_at < since:
                continue
            if until is not None and event.occurred_at >= until:
                continue
            yield self.resolve_payload(event)

    def get_processed_command(self, command_id: str) -> ProcessedCommand | None:
        """The stored record of a processed command id, if any."""
        with self._lock:
            item = self._aggregates.get(command_key(command_id))
        return None if item is None else item_to_command(item)

    def create_tables(self) -> None:
        """Nothing to provision in memory."""

    def delete_tables(self) -> None:
        """Forget everything."""
        with self._lock:
            self._aggregates.clear()
            self._events.clear()
            self._versions.clear()
            self._records.clear()
            self._history.clear()
            self._snapshots.clear()

    # -- test support ------------------------------------------------------------------------

    def put_raw_item(self, table: str, item: Item) -> None:
        """Store an item as is in ``table`` (one of ``self.tables``), bypassing every check.

        The in-memory twin of a raw ``PutItem``: tests use it to plant corrupt or old data.
        """
        with self._lock:
            if table == self.tables.events:
                version = int(item["sk"]["N"])
                self._put_event_item(item["pk"]["S"], version, item)
                self._records.get(item["pk"]["S"], {}).pop(version, None)
                self._history.get(item["pk"]["S"], {}).pop(version, None)
            elif table == self.tables.snapshots:
                self._snapshots[item["pk"]["S"]] = item
            elif table == self.tables.aggregates:
                self._aggregates[item["pk"]["S"]] = item
            else:
                raise ValueError(f"no table {table!r} in this store")

    def aggregate_item(self, key: str) -> Item | None:
        """The aggregates-table item under ``key`` (metadata, claim or command), if any."""
        with self._lock:
            return self._aggregates.get(key)

    # -- internals ---------------------------------------------------------------------------

    def _check(self, write: PlannedWrite, key: tuple[str, str, int | None]) -> Mapping[str, Any]:
        """The write's cancellation reason, as DynamoDB would give it (``_OK`` when it holds)."""
        condition = write.condition
        if condition is None:
            return _OK
        existing = self._existing(key)
        if condition.holds(existing):
            return _OK
        if existing is None:
            return {"Code": "ConditionalCheckFailed"}
        return {"Code": "ConditionalCheckFailed", "Item": existing}

    def _existing(self, key: tuple[str, str, int | None]) -> Item | None:
        table, pk, sk = key
        if table == self.tables.events:
            return self._events.get(pk, {}).get(sk) if sk is not None else None
        if table == self.tables.snapshots:
            return self._snapshots.get(pk)
        return self._aggregates.get(pk)

    def _put_event_item(self, key: str, version: int, item: Item) -> None:
        """Store an event item under its stream and version, keeping the versions in order."""
        stream = self._events.setdefault(key, {})
        if version not in stream:  # a commit's version lands at the end, a planted one anywhere
            bisect.insort(self._versions.setdefault(key, []), version)
        stream[version] = item

    def _versions_after(self, key: str, after_version: int) -> list[int]:
        """The stream's versions above ``after_version``, in order, found by bisection."""
        versions = self._versions.get(key, [])
        return versions[bisect.bisect_right(versions, after_version) :]

    def _apply(self, keyed: list[tuple[PlannedWrite, tuple[str, str, int | None]]]) -> None:
        for write, (_, pk, sk) in keyed:
            if write.action == "ConditionCheck":
                continue
            if write.table == self.tables.events:
                assert sk is not None
                self._put_event_item(pk, sk, write.item)
            elif write.table == self.tables.snapshots:
                self._snapshots[pk] = write.item
            elif write.action == "Update":
                self._aggregates[pk] = {**self._aggregates[pk], **write.item}
            elif write.action == "Delete":
                self._aggregates.pop(pk, None)
            else:
                self._aggregates[pk] = write.item

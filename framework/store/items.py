"""The DynamoDB item layout, the transaction plan of a change set, and DynamoDB's limits.

Everything here is pure: records in, low-level DynamoDB items out (and back). Both stores build the
same ``TransactionPlan`` from a change set, check it against the same limits and explain a
cancelled transaction with the same rules, which is how the in-memory store keeps exactly the
DynamoDB store's semantics.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import functools
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import attrs
import structlog

from framework.errors import (
    ChangeSetTooLarge,
    ConcurrencyError,
    CorruptEvent,
    DuplicateCommand,
    EventStoreError,
    Throttled,
    TransactionConflict,
    UniqueConstraintViolated,
)
from framework.store.conditions import Absent, Condition, FreeOrOwnedBy, VersionIs
from framework.store.dynamodb.tables import COMMAND_TTL_ATTRIBUTE, TableNames
from framework.store.keys import (
    FEED_SHARDS,
    MAX_PARTITION_KEY_BYTES,
    check_aggregate_id,
    check_command_id,
    command_key,
    data_key_key,
    feed_key,
    split_command_key,
    split_stream,
    stream_key,
)
from framework.store.records import (
    AggregateChange,
    ChangeSet,
    ProcessedCommand,
    Snapshot,
    StoredEvent,
    StreamEvent,
    UniqueClaim,
    VersionCheck,
)

log = structlog.get_logger(__name__)

Item = dict[str, dict[str, Any]]
"""A DynamoDB item in the low-level attribute-value format (``{"pk": {"S": "..."}}``)."""

MAX_TRANSACTION_ITEMS = 100
MAX_TRANSACTION_BYTES = 4 * 1024 * 1024
MAX_ITEM_BYTES = 400 * 1024


# ---------------------------------------------------------------------------------------------
# attribute values


def s(value: str) -> dict[str, Any]:
    """A string attribute value."""
    return {"S": value}


def n(value: int) -> dict[str, Any]:
    """A number attribute value."""
    return {"N": str(value)}


def b(value: bytes) -> dict[str, Any]:
    """A binary attribute value."""
    return {"B": value}


def timestamp(moment: dt.datetime) -> str:
    """ISO-8601 text in UTC with microseconds: sorts as it reads."""
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds")


def _text(item: Mapping[str, Any], name: str) -> str:
    value = item[name]["S"]
    if not isinstance(value, str):
        raise TypeError(f"{name} is not a string")
    return value


def _number(item: Mapping[str, Any], name: str) -> int:
    return int(item[name]["N"])


def _binary(item: Mapping[str, Any], name: str) -> bytes:
    value = item[name]["B"]
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if not isinstance(value, bytes):
        raise TypeError(f"{name} is not binary")
    return value


# ---------------------------------------------------------------------------------------------
# events


def event_item(event: StoredEvent, feed_shards: int = FEED_SHARDS) -> Item:
    """The events-table item of ``event``."""
    stream = event.stream
    feed_pk, feed_sk = feed_key(stream, event.version, event.occurred_at, feed_shards)
    item: Item = {
        "pk": s(stream),
        "sk": n(event.version),
        "event_type": s(event.event_type),
        "schema": n(event.schema),
        "payload": b(event.payload),
        "occurred_at": s(timestamp(event.occurred_at)),
        "change_set_id": s(event.change_set_id),
        "command_id": s(event.command_id),
        "correlation_id": s(event.correlation_id),
        "causation_id": s(event.causation_id),
        "feed_pk": s(feed_pk),
        "feed_sk": s(feed_sk),
    }
    # The trace context is optional (no tracing, or events written before it was stored).
    if event.traceparent:
        item["traceparent"] = s(event.traceparent)
        if event.tracestate:
            item["tracestate"] = s(event.tracestate)
    return item


_MALFORMED = (KeyError, TypeError, ValueError, AttributeError)
"""What reading a missing or mistyped attribute of a low-level item raises."""


def item_to_event(item: Mapping[str, Any], stream: tuple[str, str] | None = None) -> StoredEvent:
    """Read an events-table item; a malformed item raises ``CorruptEvent`` naming it.

    ``stream`` is the (aggregate type, id) the item is known to belong to (a stream's own
    ``Query``): its ``pk`` is then neither read nor needed. Every event a replay or a load reads
    comes through here, so the attributes are read inline, the record is built positionally and
    the text attributes are checked by their exact type, without a helper call or a generator
    per attribute (together about a third of this function's time).
    """
    try:
        aggregate_type, aggregate_id = stream or split_stream(item["pk"]["S"])
        event_type = item["event_type"]["S"]
        occurred_at = item["occurred_at"]["S"]
        change_set_id = item["change_set_id"]["S"]
        command_id = item["command_id"]["S"]
        correlation_id = item["correlation_id"]["S"]
        causation_id = item["causation_id"]["S"]
        if (
            type(event_type) is not str
            or type(occurred_at) is not str
            or type(change_set_id) is not str
            or type(command_id) is not str
            or type(correlation_id) is not str
            or type(causation_id) is not str
        ):
            raise TypeError("a text attribute is not a string")
        payload = item["payload"]["B"]
        if type(payload) is not bytes:
            payload = _binary(item, "payload")
        traceparent = item.get("traceparent")
        tracestate = item.get("tracestate")
        return StoredEvent(
            aggregate_type,
            aggregate_id,
            int(item["sk"]["N"]),
            event_type,
            int(item["schema"]["N"]),
            payload,
            dt.datetime.fromisoformat(occurred_at),
            change_set_id,
            command_id,
            correlation_id,
            causation_id,
            None if traceparent is None else _text(item, "traceparent"),
            None if tracestate is None else _text(item, "tracestate"),
        )
    except _MALFORMED as error:
        where = stream_key(*stream) if stream else str(item.get("pk", {}).get("S", "?"))
        raise _malformed_event(item, where, error) from error


def item_to_stream_event(item: Mapping[str, Any], stream: tuple[str, str]) -> StreamEvent:
    """Read an item of ``stream`` as an aggregate's history needs it: ``sk``, ``event_type``,
    ``schema`` and ``payload``, nothing else (the rest may not even have been sent). One of
    them missing or malformed raises ``CorruptEvent`` naming the item.
    """
    try:
        event_type = item["event_type"]["S"]
        if type(event_type) is not str:
            raise TypeError("event_type is not a string")
        payload = item["payload"]["B"]
        if type(payload) is not bytes:
            payload = _binary(item, "payload")
        return StreamEvent(
            stream[0],
            stream[1],
            int(item["sk"]["N"]),
            event_type,
            int(item["schema"]["N"]),
            payload,
        )
    except _MALFORMED as error:
        raise _malformed_event(item, stream_key(*stream), error) from error


def _malformed_event(item: Mapping[str, Any], where: str, error: Exception) -> CorruptEvent:
    """The error of an event item of stream ``where`` that could not be read: its version too,
    when the item at least has one."""
    version: int | None = None
    with contextlib.suppress(*_MALFORMED):
        version = int(item["sk"]["N"])
    return CorruptEvent(where, version, f"malformed event item ({error!r})")


# ---------------------------------------------------------------------------------------------
# snapshots


def snapshot_item(snapshot: Snapshot) -> Item:
    """The snapshots-table item of ``snapshot``."""
    return {
        "pk": s(stream_key(snapshot.aggregate_type, snapshot.aggregate_id)),
        "version": n(snapshot.version),
        "state": b(snapshot.state),
        "schema": s(snapshot.schema),
        "created_at": s(timestamp(snapshot.created_at)),
    }


def item_to_snapshot(item: Mapping[str, Any]) -> Snapshot:
    """Read a snapshots-table item; a malformed item raises ``CorruptEvent``."""
    stream = str(item.get("pk", {}).get("S", "?"))
    try:
        aggregate_type, aggregate_id = split_stream(_text(item, "pk"))
        return Snapshot(
            aggregate_type=aggregate_type,
            aggregate_id=aggregate_id,
            version=_number(item, "version"),
            state=_binary(item, "state"),
            schema=_text(item, "schema"),
            created_at=dt.datetime.fromisoformat(_text(item, "created_at")),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise CorruptEvent(stream, None, f"malformed snapshot item ({error!r})") from error


# ---------------------------------------------------------------------------------------------
# processed commands


def item_to_command(item: Mapping[str, Any]) -> ProcessedCommand:
    """Read a processed-command item."""
    key = _text(item, "pk")
    return ProcessedCommand(
        command_id=split_command_key(key),
        change_set_id=_text(item, "change_set_id"),
        result=_binary(item, "result"),
        fingerprint=_text(item, "fingerprint") if "fingerprint" in item else None,
    )


# ---------------------------------------------------------------------------------------------
# the transaction plan


class WriteKind(enum.Enum):
    """What a write in a change set's transaction does; decides how its failure is explained."""

    CREATE_AGGREGATE = "create_aggregate"
    UPDATE_AGGREGATE = "update_aggregate"
    EVENT = "event"
    SNAPSHOT = "snapshot"
    CHECK_VERSION = "check_version"
    CLAIM = "claim"
    HANDOVER = "handover"
    RELEASE = "release"
    COMMAND = "command"
    FORGET_KEY = "forget_key"


_ITEM_ABSENT = Absent()
_VERSION_ABSENT = Absent("sk")


@attrs.frozen
class PlannedWrite:
    """One item of the transaction, independent of how a store carries it out.

    ``item`` is the full item for puts, and the key plus the attributes to set for updates and
    deletes (the key alone for a version check, which writes nothing). ``expected_version`` is
    the aggregate version the write is conditional on (0: the aggregate item must not exist).
    ``previous_owner`` is, for a handover, the owner the claimed value is taken from.
    """

    kind: WriteKind
    table: str
    item: Item
    aggregate: AggregateChange | None = None
    claim: UniqueClaim | None = None
    check: VersionCheck | None = None
    expected_version: int = 0
    previous_owner: str | None = None

    @property
    def action(self) -> Literal["Put", "Update", "Delete", "ConditionCheck"]:
        """How the write changes its item (a version check changes nothing)."""
        if self.kind is WriteKind.UPDATE_AGGREGATE:
            return "Update"
        if self.kind is WriteKind.CHECK_VERSION:
            return "ConditionCheck"
        if self.kind is WriteKind.RELEASE:
            return "Delete"
        return "Put"

    @property
    def condition(self) -> Condition | None:
        """What must hold of the item for the transaction to go (see ``conditions.py``)."""
        kind = self.kind
        if kind in (WriteKind.CREATE_AGGREGATE, WriteKind.COMMAND):
            return _ITEM_ABSENT
        if kind is WriteKind.EVENT:
            return _VERSION_ABSENT
        if kind in (WriteKind.UPDATE_AGGREGATE, WriteKind.CHECK_VERSION):
            return VersionIs(self.expected_version)
        if kind in (WriteKind.CLAIM, WriteKind.RELEASE):
            return FreeOrOwnedBy(self.item["owner"]["S"])
        if kind is WriteKind.HANDOVER:
            assert self.previous_owner is not None
            return FreeOrOwnedBy(self.previous_owner)
        return None  # snapshots and tombstones overwrite whatever is there

    @functools.cached_property
    def key(self) -> tuple[str, str, int | None]:
        """(table, pk, sk) identifying the item written (asked for by every check of a plan)."""
        sk = self.item.get("sk")
        return (self.table, self.item["pk"]["S"], int(sk["N"]) if sk else None)


@attrs.frozen
class TransactionPlan:
    """All writes of one change set, in the order they are sent."""

    change_set: ChangeSet
    writes: tuple[PlannedWrite, ...]


def plan_transaction(
    change_set: ChangeSet,
    tables: TableNames,
    *,
    command_retention: dt.timedelta,
    feed_shards: int = FEED_SHARDS,
) -> TransactionPlan:
    """Lay out ``change_set`` as transaction writes and check DynamoDB's limits before sending.

    Raises ``ChangeSetTooLarge`` (too many items, an item or the whole request too big),
    ``UniqueConstraintViolated`` (two aggregates claiming one value in the same change set) and
    ``InvalidIdentifier`` (an id or claim that cannot be stored: see ``keys``). Version checks of
    the aggregates read but not changed are transaction items too: they count toward the 100-item
    limit like any write.

    Snapshots only speed up loading, so they never fail a command: when a limit is broken and
    the change set carries snapshots (one too large for its item, key and attributes counted, or
    one that pushes the transaction over 4 MB or 100 items), the plan is laid out again without
    them, and only a change set still too large without them is refused.
    """
    plan = _lay_out(change_set, tables, command_retention, feed_shards)
    try:
        _check_plan(plan)
    except ChangeSetTooLarge as error:
        snapshots = [c.stream for c in change_set.aggregates if c.snapshot is not None]
        if not snapshots:
            raise
        without = attrs.evolve(
            change_set,
            aggregates=tuple(attrs.evolve(c, snapshot=None) for c in change_set.aggregates),
        )
        plan = _lay_out(without, tables, command_retention, feed_shards)
        _check_plan(plan)
        log.warning(
            "snapshot.skipped_too_large",
            change_set_id=change_set.change_set_id,
            streams=snapshots,
            reason=str(error),
        )
    return plan


def _lay_out(
    change_set: ChangeSet,
    tables: TableNames,
    command_retention: dt.timedelta,
    feed_shards: int,
) -> TransactionPlan:
    now = timestamp(change_set.committed_at)
    writes: list[PlannedWrite] = []
    check_command_id(change_set.command_id)
    for change in change_set.aggregates:
        check_aggregate_id(change.aggregate_type, change.aggregate_id)
        writes.append(_aggregate_write(change, change_set, tables, now))
        for event in change.events:
            item = event_item(event, feed_shards)
            writes.append(PlannedWrite(WriteKind.EVENT, tables.events, item, change))
        if change.snapshot is not None:
            writes.append(
                PlannedWrite(
                    WriteKind.SNAPSHOT, tables.snapshots, snapshot_item(change.snapshot), change
                )
            )
    for check in change_set.checks:
        writes.append(
            PlannedWrite(
                WriteKind.CHECK_VERSION,
                tables.aggregates,
                {"pk": s(check.stream)},
                check=check,
                expected_version=check.expected_version,
            )
        )
    writes.extend(_claim_writes(change_set.claims, tables, now))
    for subject in change_set.forget_keys:
        # A tombstone, not a deletion: key creation is conditional on the item being absent, so
        # a forgotten subject can never get a fresh key.
        tombstone = {"pk": s(data_key_key(subject)), "forgotten_at": s(now)}
        writes.append(PlannedWrite(WriteKind.FORGET_KEY, tables.aggregates, tombstone))
    expires = change_set.committed_at + command_retention
    command_item = {
        "pk": s(command_key(change_set.command_id)),
        "change_set_id": s(change_set.change_set_id),
        "result": b(change_set.result),
        COMMAND_TTL_ATTRIBUTE: n(int(expires.timestamp())),
    }
    if change_set.command_fingerprint is not None:
        command_item["fingerprint"] = s(change_set.command_fingerprint)
    writes.append(PlannedWrite(WriteKind.COMMAND, tables.aggregates, command_item))
    return TransactionPlan(change_set, tuple(writes))


def _claim_writes(
    claims: Sequence[UniqueClaim], tables: TableNames, now: str
) -> list[PlannedWrite]:
    """One write per claimed or released value; a value handed over is one write, not two.

    When one owner releases a value and another claims it in the same change set, both would
    target the same item, which a transaction cannot do twice: the claim becomes a handover, a
    put of the new owner conditional on the value being free or still held by the releasing one.
    Any other pair of writes on one value (two claims by different owners) is left to the plan
    check, which refuses it as ``UniqueConstraintViolated``.
    """
    by_key: dict[str, list[UniqueClaim]] = {}
    for claim in claims:
        by_key.setdefault(claim.key, []).append(claim)
    writes: list[PlannedWrite] = []
    for group in by_key.values():
        released = [claim for claim in group if not claim.claim]
        taken = [claim for claim in group if claim.claim]
        if len(released) == 1 and len(taken) == 1 and released[0].owner != taken[0].owner:
            claim = taken[0]
            item = {"pk": s(claim.key), "owner": s(claim.owner), "claimed_at": s(now)}
            writes.append(
                PlannedWrite(
                    WriteKind.HANDOVER,
                    tables.aggregates,
                    item,
                    claim=claim,
                    previous_owner=released[0].owner,
                )
            )
            continue
        for claim in group:
            if claim.claim:
                item = {"pk": s(claim.key), "owner": s(claim.owner), "claimed_at": s(now)}
                writes.append(PlannedWrite(WriteKind.CLAIM, tables.aggregates, item, claim=claim))
            else:
                item = {"pk": s(claim.key), "owner": s(claim.owner)}
                writes.append(PlannedWrite(WriteKind.RELEASE, tables.aggregates, item, claim=claim))
    return writes


def _aggregate_write(
    change: AggregateChange, change_set: ChangeSet, tables: TableNames, now: str
) -> PlannedWrite:
    item = {
        "pk": s(change.stream),
        "version": n(change.new_version),
        "updated_at": s(now),
        "last_change_set_id": s(change_set.change_set_id),
    }
    if change.expected_version == 0:
        item["aggregate_type"] = s(change.aggregate_type)
        item["created_at"] = s(now)
        return PlannedWrite(WriteKind.CREATE_AGGREGATE, tables.aggregates, item, change)
    return PlannedWrite(
        WriteKind.UPDATE_AGGREGATE,
        tables.aggregates,
        item,
        change,
        expected_version=change.expected_version,
    )


def attribute_size(value: Mapping[str, Any]) -> int:
    """DynamoDB's billing size of one attribute value, in bytes (a safe upper estimate)."""
    ((kind, content),) = value.items()
    if kind == "S":
        return len(content.encode())
    if kind == "N":
        digits = len(content.lstrip("-").replace(".", "").lstrip("0")) or 1
        return (digits + 1) // 2 + 1
    if kind == "B":
        return len(content)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(k.encode()) + attribute_size(v) + 1 for k, v in content.items())
    if kind == "L":
        return 3 + sum(attribute_size(v) + 1 for v in content)
    if kind in ("SS", "BS"):
        return sum(len(x.encode()) if isinstance(x, str) else len(x) for x in content)
    if kind == "NS":
        return sum(attribute_size({"N": x}) for x in content)
    raise ValueError(f"unknown attribute type {kind!r}")


def item_size(item: Mapping[str, Mapping[str, Any]]) -> int:
    """DynamoDB's size of a whole item: attribute names plus values.

    Strings, binaries and numbers, nearly every attribute, are counted inline: this runs for
    every item of every change set, in the in-memory store too.
    """
    total = 0
    for name, value in item.items():
        total += len(name) if name.isascii() else len(name.encode())
        text = value.get("S")
        if text is not None:
            total += len(text) if text.isascii() else len(text.encode())
        elif "B" in value:
            total += len(value["B"])
        elif "N" in value:  # versions, schemas, expiry times: as ``attribute_size`` counts them
            digits = len(value["N"].lstrip("-").replace(".", "").lstrip("0")) or 1
            total += (digits + 1) // 2 + 1
        else:
            total += attribute_size(value)
    return total


def _check_plan(plan: TransactionPlan) -> None:
    writes = plan.writes
    if len(writes) > MAX_TRANSACTION_ITEMS:
        raise ChangeSetTooLarge(
            f"change set {plan.change_set.change_set_id} needs {len(writes)} transaction items; "
            f"DynamoDB allows {MAX_TRANSACTION_ITEMS}: split the command into smaller ones"
        )
    total = 0
    seen: dict[tuple[str, str, int | None], PlannedWrite] = {}
    for write in writes:
        size = item_size(write.item)
        total += size
        if size > MAX_ITEM_BYTES:
            raise ChangeSetTooLarge(
                f"{write.kind.value} item {write.item['pk']['S']!r} is {size} bytes; DynamoDB "
                f"allows {MAX_ITEM_BYTES} bytes per item"
            )
        key_size = len(write.item["pk"]["S"].encode())
        if key_size > MAX_PARTITION_KEY_BYTES:
            raise ChangeSetTooLarge(
                f"{write.kind.value} key is {key_size} bytes; DynamoDB allows "
                f"{MAX_PARTITION_KEY_BYTES} bytes for a partition key (shorten the id or value)"
            )
        earlier = seen.get(write.key)
        if earlier is not None:
            if write.claim is not None:
                raise UniqueConstraintViolated(write.claim.scope, write.claim.value)
            raise EventStoreError(f"change set writes item {write.key} twice")
        seen[write.key] = write
    if total > MAX_TRANSACTION_BYTES:
        raise ChangeSetTooLarge(
            f"change set {plan.change_set.change_set_id} is {total} bytes; DynamoDB allows "
            f"{MAX_TRANSACTION_BYTES} bytes per transaction"
        )


# ---------------------------------------------------------------------------------------------
# explaining a cancelled transaction


def explain_cancellation(plan: TransactionPlan, reasons: Sequence[Mapping[str, Any]]) -> Exception:
    """Turn DynamoDB's ``CancellationReasons`` (one per write, in order) into a typed error.

    When several writes failed, the most telling one wins: a duplicate command explains every
    other failure (the first run already wrote them), then a unique claim, then a version
    conflict, then transient causes.
    """
    duplicate: Exception | None = None
    unique: Exception | None = None
    concurrency: Exception | None = None
    transient: Exception | None = None
    other: list[str] = []
    for write, reason in zip(plan.writes, reasons, strict=False):
        code = reason.get("Code", "None")
        if code in ("None", None):
            continue
        if code == "ConditionalCheckFailed":
            if write.kind is WriteKind.COMMAND:
                duplicate = duplicate or DuplicateCommand(plan.change_set.command_id)
            elif write.claim is not None:
                unique = unique or UniqueConstraintViolated(write.claim.scope, write.claim.value)
            elif concurrency is None and (guarded := write.aggregate or write.check) is not None:
                # A changed aggregate's version condition, or a read one's check: both mean
                # the aggregate moved on since the command loaded it.
                concurrency = ConcurrencyError(
                    guarded.aggregate_type,
                    guarded.aggregate_id,
                    guarded.expected_version,
                    _actual_version(write, reason),
                )
        elif code == "TransactionConflict":
            transient = transient or TransactionConflict(
                f"transaction conflict on {write.item['pk']['S']!r}: another transaction was "
                "writing the same item"
            )
        elif code in ("ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"):
            transient = transient or Throttled(f"throttled writing {write.item['pk']['S']!r}")
        else:
            other.append(f"{write.kind.value} {write.item['pk']['S']!r}: {code} {reason}")
    for error in (duplicate, unique, concurrency, transient):
        if error is not None:
            return error
    return EventStoreError("transaction cancelled: " + "; ".join(other or [str(list(reasons))]))


def _actual_version(write: PlannedWrite, reason: Mapping[str, Any]) -> int | None:
    old = reason.get("Item")
    if write.kind is WriteKind.EVENT or not old or "version" not in old:
        return None
    return int(old["version"]["N"])

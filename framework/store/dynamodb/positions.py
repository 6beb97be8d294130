"""Projector positions and runner checkpoints in the ``{prefix}-positions`` table.

An advance without read-model writes is one conditional ``UpdateItem``; with writes, it is one
``TransactWriteItems`` whose first item is that same conditional update, so the read model and the
position move together or not at all.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Hashable, Iterator, Mapping, Sequence
from typing import Any

from botocore.exceptions import ClientError

from framework.errors import (
    ChangeSetTooLarge,
    EventStoreError,
    StoreUnavailable,
    TableMissing,
    TransactionConflict,
)
from framework.pauses import pause
from framework.store.dynamodb.event_store import (
    DynamoDBEventStore,
    TransactionCancelled,
    translated_errors,
)
from framework.store.items import MAX_TRANSACTION_ITEMS, n, s, timestamp
from framework.store.keys import checkpoint_projector, lease_key, position_key
from framework.store.positions import (
    ParkedEvent,
    Position,
    PositionConflict,
    ProjectionWriteError,
    StreamAdvance,
    TransactItem,
    row_identity,
)

_NOT_PARKED = "attribute_not_exists(parked_version)"
_BATCH_GET_KEYS = 100
"""DynamoDB's limit on the keys of one ``BatchGetItem``."""


class DynamoDBPositionStore:
    """Positions kept next to the event store's other tables (same client, same prefix)."""

    def __init__(self, store: DynamoDBEventStore) -> None:
        self.store = store
        self.table = store.tables.positions
        self._key_names: dict[str, tuple[str, ...]] = {}

    @property
    def client(self) -> Any:
        """The event store's boto3 client."""
        return self.store.client

    # -- reading -------------------------------------------------------------------------

    def get(self, projector: str, stream: str) -> Position:
        with translated_errors(self.table):
            response = self.client.get_item(
                TableName=self.table,
                Key={"pk": s(position_key(projector, stream))},
                ConsistentRead=True,
            )
        item = response.get("Item")
        return Position(projector, stream) if item is None else _to_position(item)

    def get_many(self, projector: str, streams: Sequence[str]) -> dict[str, Position]:
        """Consistent ``BatchGetItem`` reads, 100 keys a request: one request per replay chunk
        instead of one per stream."""
        found = {stream: Position(projector, stream) for stream in streams}
        keys = [{"pk": s(position_key(projector, stream))} for stream in dict.fromkeys(streams)]
        for start in range(0, len(keys), _BATCH_GET_KEYS):
            request: dict[str, Any] = {
                self.table: {"Keys": keys[start : start + _BATCH_GET_KEYS], "ConsistentRead": True}
            }
            delay = 0.05
            while request:
                with translated_errors(self.table):
                    response = self.client.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self.table, []):
                    position = _to_position(item)
                    found[position.stream] = position
                request = response.get("UnprocessedKeys") or {}
                if request:  # DynamoDB answered part of it (throttling): ask for the rest
                    pause(delay)  # on the loop, when the store is on aiobotocore
                    delay = min(delay * 2, 1.0)
        return found

    def parked(self, projector: str | None = None) -> list[Position]:
        condition = "attribute_exists(parked_version)"
        values: dict[str, Any] = {}
        if projector is not None:
            condition += " AND projector = :p"
            values[":p"] = s(projector)
        return [_to_position(item) for item in self._scan(condition, values)]

    def positions(self, projector: str) -> list[Position]:
        items = self._scan(
            "projector = :p AND item_kind = :k", {":p": s(projector), ":k": s("position")}
        )
        return [_to_position(item) for item in items]

    def _scan(self, condition: str, values: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        request: dict[str, Any] = {"TableName": self.table, "FilterExpression": condition}
        if values:
            request["ExpressionAttributeValues"] = dict(values)
        while True:
            with translated_errors(self.table):
                page = self.client.scan(**request)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def item_identity(self, write: TransactItem) -> Hashable:
        """(table, key values) of the item a queued write touches."""
        ((action, request),) = write.items()
        table = str(request["TableName"])
        if action == "Put":
            names = self._key_attributes(table)
            key = {name: request["Item"][name] for name in names}
        else:
            key = request["Key"]
        return row_identity(table, key)

    def _key_attributes(self, table: str) -> tuple[str, ...]:
        names = self._key_names.get(table)
        if names is None:
            with translated_errors(table):
                schema = self.client.describe_table(TableName=table)["Table"]["KeySchema"]
            names = tuple(entry["AttributeName"] for entry in schema)
            self._key_names[table] = names
        return names

    # -- moving ----------------------------------------------------------------------------

    def advance(
        self,
        projector: str,
        stream: str,
        expected_version: int,
        new_version: int,
        writes: Sequence[TransactItem] = (),
    ) -> None:
        if len(writes) + 1 > MAX_TRANSACTION_ITEMS:
            raise ProjectionWriteError(
                f"projector {projector!r} queued {len(writes)} writes for one transaction; at most "
                f"{MAX_TRANSACTION_ITEMS - 1} fit beside the position"
            )
        update = self._advance_update(projector, stream, expected_version, new_version)
        if not writes:
            self._conditional(
                projector, stream, expected_version, lambda: self.client.update_item(**update)
            )
            return
        request = {"TransactItems": [{"Update": update}, *writes]}
        try:
            with translated_errors(self.table):
                self.client.transact_write_items(**request)
        except TransactionCancelled as cancelled:
            raise _explain(cancelled, projector, stream, expected_version) from None
        except (StoreUnavailable, TableMissing):
            raise  # a retry (or the operator) cures these, not parking an event
        except (EventStoreError, ChangeSetTooLarge) as refused:
            # DynamoDB refused the request itself: a malformed write, an item over 400 KB.
            raise ProjectionWriteError(
                f"projector {projector!r} could not write its read model for {stream!r} "
                f"up to version {new_version}: {refused}"
            ) from None

    def advance_many(self, projector: str, moves: Sequence[tuple[str, int, int]]) -> list[str]:
        """Up to 100 advances in one ``TransactWriteItems``; when one of them loses a race the
        transaction is cancelled, and they are sent one by one to find which."""
        lost: list[str] = []
        for start in range(0, len(moves), MAX_TRANSACTION_ITEMS):
            group = moves[start : start + MAX_TRANSACTION_ITEMS]
            if len(group) > 1:
                updates = [
                    {"Update": self._advance_update(projector, stream, expected, new)}
                    for stream, expected, new in group
                ]
                try:
                    with translated_errors(self.table):
                        self.client.transact_write_items(TransactItems=updates)
                    continue
                except (TransactionCancelled, TransactionConflict):
                    pass  # one by one below
            for stream, expected, new in group:
                try:
                    self.advance(projector, stream, expected, new)
                except PositionConflict:
                    lost.append(stream)
        return lost

    def advance_together(self, projector: str, moves: Sequence[StreamAdvance]) -> bool:
        items: list[TransactItem] = []
        for move in moves:
            update = self._advance_update(projector, move.stream, move.expected, move.new)
            items += [{"Update": update}, *move.writes]
        if len(items) > MAX_TRANSACTION_ITEMS:
            return False
        try:
            with translated_errors(self.table):
                self.client.transact_write_items(TransactItems=items)
        except (TransactionCancelled, TransactionConflict):
            return False
        except (StoreUnavailable, TableMissing):
            raise  # a retry (or the operator) cures these
        except (EventStoreError, ChangeSetTooLarge):
            return False  # DynamoDB refused the request itself: ``advance`` finds which write
        return True

    def _advance_update(
        self, projector: str, stream: str, expected_version: int, new_version: int
    ) -> dict[str, Any]:
        condition = f"#v = :expected AND {_NOT_PARKED}"
        if expected_version == 0:
            condition = f"attribute_not_exists(pk) OR ({condition})"
        return {
            "TableName": self.table,
            "Key": {"pk": s(position_key(projector, stream))},
            "UpdateExpression": (
                "SET #v = :new, updated_at = :now, projector = :p, stream_key = :s, item_kind = :k"
            ),
            "ConditionExpression": condition,
            "ExpressionAttributeNames": {"#v": "version"},
            "ExpressionAttributeValues": {
                ":new": n(new_version),
                ":expected": n(expected_version),
                ":now": s(timestamp(dt.datetime.now(dt.UTC))),
                ":p": s(projector),
                ":s": s(stream),
                ":k": s("position"),
            },
        }

    def park(self, projector: str, stream: str, expected_version: int, parked: ParkedEvent) -> None:
        condition = "#v = :expected"
        if expected_version == 0:
            condition = f"attribute_not_exists(pk) OR ({condition})"
        request = {
            "TableName": self.table,
            "Key": {"pk": s(position_key(projector, stream))},
            "UpdateExpression": (
                "SET #v = :expected, projector = :p, stream_key = :s, item_kind = :k, "
                "parked_version = :pv, parked_error = :pe, parked_attempts = :pa, parked_at = :pt"
            ),
            "ConditionExpression": condition,
            "ExpressionAttributeNames": {"#v": "version"},
            "ExpressionAttributeValues": {
                ":expected": n(expected_version),
                ":p": s(projector),
                ":s": s(stream),
                ":k": s("position"),
                ":pv": n(parked.version),
                ":pe": s(parked.error[:2000]),
                ":pa": n(parked.attempts),
                ":pt": s(timestamp(parked.parked_at)),
            },
        }
        self._conditional(
            projector, stream, expected_version, lambda: self.client.update_item(**request)
        )

    def release(self, projector: str, stream: str, *, skip: bool) -> Position:
        current = self.get(projector, stream)
        if current.parked is None:
            return current
        version = current.parked.version if skip else current.version
        request = {
            "TableName": self.table,
            "Key": {"pk": s(position_key(projector, stream))},
            "UpdateExpression": (
                "SET #v = :v REMOVE parked_version, parked_error, parked_attempts, parked_at"
            ),
            "ConditionExpression": "parked_version = :pv",
            "ExpressionAttributeNames": {"#v": "version"},
            "ExpressionAttributeValues": {":v": n(version), ":pv": n(current.parked.version)},
        }
        self._conditional(
            projector, stream, current.version, lambda: self.client.update_item(**request)
        )
        return Position(projector, stream, version)

    def _conditional(self, projector: str, stream: str, expected: int, call: Any) -> None:
        if not self._if_condition_holds(call):
            raise PositionConflict(projector, stream, expected)

    # -- administration ----------------------------------------------------------------------

    def reset(self, projector: str) -> int:
        keys = [item["pk"] for item in self._scan("projector = :p", {":p": s(projector)})]
        for key in keys:
            with translated_errors(self.table):
                self.client.delete_item(TableName=self.table, Key={"pk": key})
        return len(keys)

    def get_checkpoint(self, key: str) -> str | None:
        with translated_errors(self.table):
            response = self.client.get_item(
                TableName=self.table, Key={"pk": s(key)}, ConsistentRead=True
            )
        item = response.get("Item")
        return None if item is None else str(item["value"]["S"])

    def put_checkpoint(self, key: str, value: str) -> None:
        projector = checkpoint_projector(key)
        with translated_errors(self.table):
            self.client.put_item(
                TableName=self.table,
                Item={
                    "pk": s(key),
                    "item_kind": s("checkpoint"),
                    "projector": s(projector),
                    "value": s(value),
                    "updated_at": s(timestamp(dt.datetime.now(dt.UTC))),
                },
            )

    # -- leases ------------------------------------------------------------------------------

    def acquire_lease(self, name: str, owner: str, duration: dt.timedelta) -> bool:
        """One conditional put: free, expired, or already ours."""
        now = dt.datetime.now(dt.UTC)
        item = {
            "pk": s(lease_key(name)),
            "item_kind": s("lease"),
            "owner": s(owner),
            "expires_at": n(int((now + duration).timestamp() * 1000)),
        }
        return self._if_condition_holds(
            lambda: self.client.put_item(
                TableName=self.table,
                Item=item,
                ConditionExpression="attribute_not_exists(pk) OR #o = :o OR expires_at < :now",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={":o": s(owner), ":now": n(int(now.timestamp() * 1000))},
            )
        )

    def release_lease(self, name: str, owner: str) -> None:
        # A failed condition means another poller took it over: nothing of ours to release.
        self._if_condition_holds(
            lambda: self.client.delete_item(
                TableName=self.table,
                Key={"pk": s(lease_key(name))},
                ConditionExpression="#o = :o",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={":o": s(owner)},
            )
        )

    def _if_condition_holds(self, call: Any) -> bool:
        """Run a conditional request; ``False`` when its condition failed."""
        with translated_errors(self.table):
            try:
                call()
            except ClientError as error:
                if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                    return False
                raise
        return True


_TRANSIENT_CODES = frozenset(
    {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"}
)


def _explain(
    cancelled: TransactionCancelled, projector: str, stream: str, expected_version: int
) -> Exception:
    """Why an advance with writes was cancelled: a lost race, a transient cause, or a refusal."""
    reasons = list(cancelled.reasons)
    codes = [reason.get("Code") for reason in reasons]
    if codes and codes[0] == "ConditionalCheckFailed":
        return PositionConflict(projector, stream, expected_version)
    if any(code in _TRANSIENT_CODES for code in codes):
        return TransactionConflict(f"advancing {projector!r} in {stream!r}: {codes}")
    refused = [
        f"write {index}: {reason.get('Code')} {reason.get('Message', '')}".strip()
        for index, reason in enumerate(reasons[1:], start=1)
        if reason.get("Code") not in (None, "None")
    ]
    return ProjectionWriteError(
        f"projector {projector!r} could not write its read model for {stream!r}: "
        + ("; ".join(refused) or str(codes))
    )


def _to_position(item: Mapping[str, Any]) -> Position:
    parked = None
    if "parked_version" in item:
        parked = ParkedEvent(
            version=int(item["parked_version"]["N"]),
            error=str(item["parked_error"]["S"]),
            attempts=int(item["parked_attempts"]["N"]),
            parked_at=dt.datetime.fromisoformat(item["parked_at"]["S"]),
        )
    return Position(
        projector=str(item["projector"]["S"]),
        stream=str(item["stream_key"]["S"]),
        version=int(item["version"]["N"]),
        parked=parked,
    )

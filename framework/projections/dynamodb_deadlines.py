"""Deadlines in the ``{prefix}-deadlines`` DynamoDB table: the AWS adapter of ``DeadlineStore``.

One item per deadline (``pk`` = its id). A pending deadline carries ``due_shard`` (one of a few
shards, from its id) and ``due_at`` (ISO text in UTC, which sorts as it reads): the sparse index
``due`` holds pending deadlines only, earliest first, so a runner finds what is due with a
``Query`` per shard instead of a scan. Firing, refusing or cancelling removes ``due_shard`` (the
item leaves the index) and sets ``expires_at``, the table's TTL attribute, so done deadlines go
away after ``retention``.

The index is eventually consistent: what it lists may have just been claimed or cancelled. That
is harmless, because every state change is a conditional write on the item itself (``claim``
needs a pending, due deadline without a live lease; ``finish`` needs the caller's own lease).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from typing import Any

from botocore.exceptions import ClientError

from framework.projections.deadlines import (
    CancelResult,
    Deadline,
    DeadlineStatus,
    cancel_outcome,
)
from framework.store.dynamodb.event_store import DynamoDBEventStore, translated_errors
from framework.store.dynamodb.tables import describe_table_status
from framework.store.items import n, s, timestamp

__all__ = [
    "DUE_INDEX",
    "DUE_SHARDS",
    "TTL_ATTRIBUTE",
    "DynamoDBDeadlineStore",
    "deadlines_table_definition",
    "deadlines_table_name",
]

DUE_INDEX = "due"
"""The sparse index of pending deadlines over (``due_shard``, ``due_at``)."""
DUE_SHARDS = 4
"""Pending deadlines are spread over this many index partitions (a runner queries each)."""
TTL_ATTRIBUTE = "expires_at"
"""Done deadlines carry this TTL attribute (epoch seconds) so DynamoDB removes them."""


def deadlines_table_name(prefix: str) -> str:
    """``{prefix}-deadlines``."""
    return f"{prefix}-deadlines"


def deadlines_table_definition(prefix: str) -> dict[str, Any]:
    """``CreateTable`` arguments of the deadlines table (on-demand, the sparse ``due`` index)."""
    return {
        "TableName": deadlines_table_name(prefix),
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "due_shard", "AttributeType": "S"},
            {"AttributeName": "due_at", "AttributeType": "S"},
        ],
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": DUE_INDEX,
                "KeySchema": [
                    {"AttributeName": "due_shard", "KeyType": "HASH"},
                    {"AttributeName": "due_at", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }


def _shard(deadline_id: str) -> str:
    digest = hashlib.blake2b(deadline_id.encode(), digest_size=2).digest()
    return f"due#{int.from_bytes(digest) % DUE_SHARDS}"


def _moment(item: dict[str, Any], name: str) -> dt.datetime | None:
    value = item.get(name)
    return None if value is None else dt.datetime.fromisoformat(value["S"])


def _text(item: dict[str, Any], name: str) -> str | None:
    value = item.get(name)
    return None if value is None else str(value["S"])


def _to_deadline(item: dict[str, Any]) -> Deadline:
    due_at = _moment(item, "due_at")
    assert due_at is not None
    return Deadline(
        deadline_id=item["pk"]["S"],
        process=item["process"]["S"],
        due_at=due_at,
        command_type=item["command_type"]["S"],
        command=item["command"]["S"],
        correlation_id=_text(item, "correlation_id"),
        causation_id=_text(item, "causation_id"),
        status=DeadlineStatus(item["status"]["S"]),
        created_at=_moment(item, "created_at"),
        fired_at=_moment(item, "fired_at"),
        lease_owner=_text(item, "lease_owner"),
        lease_until=_moment(item, "lease_until"),
        attempts=int(item.get("attempts", {"N": "0"})["N"]),
        last_error=_text(item, "last_error"),
    )


def _conditional_failed(error: ClientError) -> bool:
    return bool(error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")


class DynamoDBDeadlineStore:
    """Deadlines next to an event store's tables (same client, same prefix).

    ``retention`` is how long a fired, refused or cancelled deadline stays readable before
    DynamoDB's TTL removes it.
    """

    def __init__(
        self, store: DynamoDBEventStore, *, retention: dt.timedelta = dt.timedelta(days=7)
    ) -> None:
        self.store = store
        self.table = deadlines_table_name(store.tables.prefix)
        self.retention = retention

    @property
    def client(self) -> Any:
        """The event store's boto3 client."""
        return self.store.client

    # -- provisioning -------------------------------------------------------------------------

    def create_table(self, timeout: float = 120.0) -> None:
        """Create the table if missing, wait until it is active, turn its TTL on."""
        with translated_errors(self.table):
            try:
                self.client.create_table(**deadlines_table_definition(self.store.tables.prefix))
            except ClientError as error:
                if error.response["Error"]["Code"] != "ResourceInUseException":
                    raise
            limit = time.monotonic() + timeout
            while describe_table_status(self.client, self.table) != "ACTIVE":
                if time.monotonic() > limit:
                    raise TimeoutError(f"table {self.table!r} is not active after {timeout:.0f} s")
                time.sleep(0.1)
            try:
                self.client.update_time_to_live(
                    TableName=self.table,
                    TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
                )
            except ClientError as error:  # already on, or a backend without TTL: housekeeping
                if error.response["Error"]["Code"] != "ValidationException":
                    raise

    def table_status(self) -> str | None:
        """The table's status, ``None`` when it does not exist."""
        with translated_errors(self.table):
            return describe_table_status(self.client, self.table)

    def delete_table(self, timeout: float = 120.0) -> None:
        """Delete the table and every deadline in it."""
        with translated_errors(self.table):
            try:
                self.client.delete_table(TableName=self.table)
            except ClientError as error:
                if error.response["Error"]["Code"] != "ResourceNotFoundException":
                    raise
            limit = time.monotonic() + timeout
            while describe_table_status(self.client, self.table) is not None:
                if time.monotonic() > limit:
                    raise TimeoutError(f"table {self.table!r} still exists after {timeout:.0f} s")
                time.sleep(0.1)

    # -- the port ----------------------------------------------------------------------------

    def schedule(self, deadline: Deadline) -> bool:
        item: dict[str, Any] = {
            "pk": s(deadline.deadline_id),
            "process": s(deadline.process),
            "due_at": s(timestamp(deadline.due_at)),
            "command_type": s(deadline.command_type),
            "command": s(deadline.command),
            "status": s(deadline.status.value),
            "attempts": n(deadline.attempts),
        }
        if deadline.status is DeadlineStatus.PENDING:
            item["due_shard"] = s(_shard(deadline.deadline_id))
        for name in ("correlation_id", "causation_id"):
            value = getattr(deadline, name)
            if value is not None:
                item[name] = s(value)
        if deadline.created_at is not None:
            item["created_at"] = s(timestamp(deadline.created_at))
        answer = self._write(
            "put_item",
            TableName=self.table,
            Item=item,
            ConditionExpression="attribute_not_exists(pk)",
        )
        return answer is not None

    def cancel(self, deadline_id: str, now: dt.datetime) -> CancelResult:
        answer = self._write(
            "update_item",
            TableName=self.table,
            Key={"pk": s(deadline_id)},
            UpdateExpression=(
                "SET #status = :cancelled, fired_at = :now, expires_at = :ttl REMOVE due_shard"
            ),
            ConditionExpression=(
                "#status = :pending AND (attribute_not_exists(lease_until) OR lease_until <= :now)"
            ),
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":cancelled": s(DeadlineStatus.CANCELLED.value),
                ":pending": s(DeadlineStatus.PENDING.value),
                ":now": s(timestamp(now)),
                ":ttl": n(self._expiry(now)),
            },
        )
        if answer is None:
            outcome = cancel_outcome(self.get(deadline_id), now)
            # Cancelled between the write and the read by someone else: still not cancellable.
            return CancelResult.ALREADY_CANCELLED if outcome is CancelResult.CANCELLED else outcome
        return CancelResult.CANCELLED

    def get(self, deadline_id: str) -> Deadline | None:
        with translated_errors(self.table):
            response = self.client.get_item(
                TableName=self.table, Key={"pk": s(deadline_id)}, ConsistentRead=True
            )
        item = response.get("Item")
        return None if item is None else _to_deadline(item)

    def due(self, now: dt.datetime, limit: int = 100) -> list[Deadline]:
        found: list[Deadline] = []
        for shard in range(DUE_SHARDS):
            request: dict[str, Any] = {
                "TableName": self.table,
                "IndexName": DUE_INDEX,
                "KeyConditionExpression": "due_shard = :shard AND due_at <= :now",
                "ExpressionAttributeValues": {
                    ":shard": s(f"due#{shard}"),
                    ":now": s(timestamp(now)),
                },
                "Limit": limit,
            }
            with translated_errors(self.table):
                page = self.client.query(**request)
            found.extend(_to_deadline(item) for item in page.get("Items", []))
        found.sort(key=lambda d: d.due_at)
        return found[:limit]

    def claim(
        self, deadline_id: str, owner: str, now: dt.datetime, lease: dt.timedelta
    ) -> Deadline | None:
        response = self._write(
            "update_item",
            TableName=self.table,
            Key={"pk": s(deadline_id)},
            UpdateExpression="SET lease_owner = :owner, lease_until = :until ADD attempts :one",
            ConditionExpression=(
                "#status = :pending AND due_at <= :now AND "
                "(attribute_not_exists(lease_until) OR lease_until <= :now)"
            ),
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":owner": s(owner),
                ":until": s(timestamp(now + lease)),
                ":one": n(1),
                ":pending": s(DeadlineStatus.PENDING.value),
                ":now": s(timestamp(now)),
            },
            ReturnValues="ALL_NEW",
        )
        return None if response is None else _to_deadline(response["Attributes"])

    def finish(
        self,
        deadline_id: str,
        owner: str,
        status: DeadlineStatus,
        now: dt.datetime,
        error: str | None = None,
    ) -> bool:
        values: dict[str, Any] = {
            ":status": s(status.value),
            ":now": s(timestamp(now)),
            ":ttl": n(self._expiry(now)),
            ":owner": s(owner),
            ":pending": s(DeadlineStatus.PENDING.value),
        }
        expression = "SET #status = :status, fired_at = :now, expires_at = :ttl"
        if error is not None:
            expression += ", last_error = :error"
            values[":error"] = s(error)
        answer = self._write(
            "update_item",
            TableName=self.table,
            Key={"pk": s(deadline_id)},
            UpdateExpression=expression + " REMOVE due_shard, lease_until",
            ConditionExpression="#status = :pending AND lease_owner = :owner",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues=values,
        )
        return answer is not None

    def release(self, deadline_id: str, owner: str, error: str) -> None:
        self._write(
            "update_item",
            TableName=self.table,
            Key={"pk": s(deadline_id)},
            UpdateExpression="SET last_error = :error REMOVE lease_owner, lease_until",
            ConditionExpression="lease_owner = :owner",
            ExpressionAttributeValues={":error": s(error[:1000]), ":owner": s(owner)},
        )

    def list(self, status: DeadlineStatus | None = None, limit: int = 100) -> list[Deadline]:
        request: dict[str, Any] = {"TableName": self.table}
        if status is not None:
            request["FilterExpression"] = "#status = :status"
            request["ExpressionAttributeNames"] = {"#status": "status"}
            request["ExpressionAttributeValues"] = {":status": s(status.value)}
        found: list[Deadline] = []
        while True:
            with translated_errors(self.table):
                page = self.client.scan(**request)
            found.extend(_to_deadline(item) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        found.sort(key=lambda d: d.due_at)
        return found[:limit]

    def _write(self, method: str, **request: Any) -> dict[str, Any] | None:
        """Send one conditional write; ``None`` when its condition did not hold."""
        with translated_errors(self.table):
            try:
                answer: dict[str, Any] = getattr(self.client, method)(**request)
            except ClientError as error:
                if _conditional_failed(error):
                    return None
                raise
        return answer

    def _expiry(self, now: dt.datetime) -> int:
        return int((now + self.retention).timestamp())

"""Table names, table definitions and provisioning (create, wait, describe, delete).

The definitions are plain data so that the DynamoDB store, the command line and infrastructure
templates all describe the same four tables. Provisioning is idempotent: creating tables that exist
is a no-op, and every call waits until the tables are usable.

botocore is imported by the provisioning functions only, which are handed a boto3 client anyway:
the in-memory store needs the table names, never the AWS SDK.
"""

from __future__ import annotations

import time
from typing import Any

import attrs
import structlog

from framework.pauses import pause

log = structlog.get_logger(__name__)

FEED_INDEX = "feed"
"""The events table's global secondary index over (``feed_pk``, ``feed_sk``), in commit order."""

COMMAND_TTL_ATTRIBUTE = "expires_at"
"""Processed-command items carry this TTL attribute (epoch seconds) so DynamoDB expires them."""


@attrs.frozen
class TableNames:
    """The four table names derived from one prefix."""

    prefix: str

    @property
    def aggregates(self) -> str:
        """Aggregate metadata, unique-value claims and processed command ids."""
        return f"{self.prefix}-aggregates"

    @property
    def events(self) -> str:
        """One item per event, keyed by stream and version."""
        return f"{self.prefix}-events"

    @property
    def snapshots(self) -> str:
        """The latest snapshot of each aggregate."""
        return f"{self.prefix}-snapshots"

    @property
    def positions(self) -> str:
        """Projector checkpoints."""
        return f"{self.prefix}-positions"

    def all(self) -> tuple[str, str, str, str]:
        """All table names, in creation order."""
        return (self.aggregates, self.events, self.snapshots, self.positions)


def _string_key_table(name: str) -> dict[str, Any]:
    return {
        "TableName": name,
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "BillingMode": "PAY_PER_REQUEST",
    }


def table_definitions(names: TableNames) -> list[dict[str, Any]]:
    """``CreateTable`` arguments for every table (on-demand capacity)."""
    events = {
        "TableName": names.events,
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
            {"AttributeName": "feed_pk", "AttributeType": "S"},
            {"AttributeName": "feed_sk", "AttributeType": "S"},
        ],
        "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": FEED_INDEX,
                "KeySchema": [
                    {"AttributeName": "feed_pk", "KeyType": "HASH"},
                    {"AttributeName": "feed_sk", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
        "BillingMode": "PAY_PER_REQUEST",
    }
    return [
        _string_key_table(names.aggregates),
        events,
        _string_key_table(names.snapshots),
        _string_key_table(names.positions),
    ]


def create_tables(client: Any, names: TableNames, *, timeout: float = 120.0) -> None:
    """Create the tables that do not exist yet and wait until all are ACTIVE."""
    from botocore.exceptions import ClientError

    for definition in table_definitions(names):
        try:
            client.create_table(**definition)
            log.info("table.created", table=definition["TableName"])
        except ClientError as error:
            if error.response["Error"]["Code"] != "ResourceInUseException":
                raise
    for name in names.all():
        _wait_for(client, name, timeout)
    _enable_command_ttl(client, names.aggregates)


def _wait_for(client: Any, name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        status = describe_table_status(client, name)
        if status == "ACTIVE":
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"table {name!r} is still {status} after {timeout:.0f} s")
        pause(delay)
        delay = min(delay * 2, 2.0)


def _enable_command_ttl(client: Any, table: str) -> None:
    from botocore.exceptions import ClientError

    try:
        current = client.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
        if current.get("TimeToLiveStatus") in ("ENABLED", "ENABLING"):
            return
        client.update_time_to_live(
            TableName=table,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": COMMAND_TTL_ATTRIBUTE},
        )
    except ClientError as error:
        # TTL is housekeeping only: expired command ids merely stop deduplicating. A backend
        # that cannot set it must not block provisioning.
        log.warning("table.ttl_not_enabled", table=table, error=str(error))


def describe_table_status(client: Any, name: str) -> str | None:
    """The table's status (``ACTIVE``, ``CREATING``...), or ``None`` when it does not exist."""
    from botocore.exceptions import ClientError

    try:
        status: str = client.describe_table(TableName=name)["Table"]["TableStatus"]
    except ClientError as error:
        if error.response["Error"]["Code"] == "ResourceNotFoundException":
            return None
        raise
    return status


def delete_tables(client: Any, names: TableNames, *, timeout: float = 120.0) -> None:
    """Delete every table that exists and wait until they are gone. Destroys all data."""
    from botocore.exceptions import ClientError

    for name in names.all():
        try:
            client.delete_table(TableName=name)
            log.info("table.deleted", table=name)
        except ClientError as error:
            if error.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
    deadline = time.monotonic() + timeout
    for name in names.all():
        while describe_table_status(client, name) is not None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"table {name!r} still exists after {timeout:.0f} s")
            pause(0.1)

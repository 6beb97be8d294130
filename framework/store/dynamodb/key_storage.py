"""Wrapped data keys in the aggregates table (``pk = key#{subject}``), for ``KeyRing``.

Replacing the item by a tombstone (no ``wrapped`` attribute) is what forgets a subject; the unit of
work writes the tombstone in the same transaction as the event that forgets the subject, so no
crash can leave a forgotten subject's key behind, and keys are only ever created where no item
exists, so a forgotten subject never gets a new one.
Point-in-time recovery and backups keep old table states: restoring one restores deleted keys
too, so restore into a separate table and re-apply the forget list (the ``forgets_subject``
events in the events table) before using it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from framework.encryption import FORGOTTEN, Forgotten
from framework.store.dynamodb.event_store import DynamoDBEventStore, translated_errors
from framework.store.items import timestamp
from framework.store.keys import data_key_key


class DynamoDBKeyStorage:
    """``WrappedKeyStorage`` next to the event store's other items."""

    def __init__(self, store: DynamoDBEventStore) -> None:
        self.store = store
        self.table = store.tables.aggregates

    def _key(self, subject: str) -> dict[str, dict[str, str]]:
        return {"pk": {"S": data_key_key(subject)}}

    def load(self, subject: str) -> bytes | Forgotten | None:
        with translated_errors(self.table):
            item = self.store.client.get_item(
                TableName=self.table, Key=self._key(subject), ConsistentRead=True
            ).get("Item")
        return None if item is None else _stored_key(item)

    def save_if_absent(self, subject: str, wrapped: bytes) -> bytes | Forgotten:
        with translated_errors(self.table):
            try:
                self.store.client.put_item(
                    TableName=self.table,
                    Item={**self._key(subject), "wrapped": {"B": wrapped}},
                    ConditionExpression="attribute_not_exists(pk)",
                )
            except ClientError as error:
                if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
                existing = self.load(subject)  # another process created it first, or forgot it
                if existing is not None:
                    return existing
                raise
        return wrapped

    def forget(self, subject: str) -> None:
        tombstone = {"forgotten_at": {"S": timestamp(dt.datetime.now(dt.UTC))}}
        with translated_errors(self.table):
            self.store.client.put_item(
                TableName=self.table, Item={**self._key(subject), **tombstone}
            )


def _stored_key(item: Mapping[str, Any]) -> bytes | Forgotten:
    wrapped = item.get("wrapped")
    return FORGOTTEN if wrapped is None else bytes(wrapped["B"])

"""Wrapped data keys in the aggregates table (``pk = key#{subject}``), for ``KeyRing``.

Deleting the item is what forgets a subject; the unit of work deletes it in the same transaction
as the event that forgets the subject, so no crash can leave a forgotten subject's key behind.
Point-in-time recovery and backups keep old table states: restoring one restores deleted keys
too, so restore into a separate table and re-apply the forget list (the ``forgets_subject``
events in the events table) before using it.
"""

from __future__ import annotations

from botocore.exceptions import ClientError

from framework.store.dynamodb import DynamoDBEventStore, translated_errors
from framework.store.keys import data_key_key


class DynamoDBKeyStorage:
    """``WrappedKeyStorage`` next to the event store's other items."""

    def __init__(self, store: DynamoDBEventStore) -> None:
        self.store = store
        self.table = store.tables.aggregates

    def _key(self, subject: str) -> dict[str, dict[str, str]]:
        return {"pk": {"S": data_key_key(subject)}}

    def load(self, subject: str) -> bytes | None:
        with translated_errors(self.table):
            item = self.store.client.get_item(
                TableName=self.table, Key=self._key(subject), ConsistentRead=True
            ).get("Item")
        return None if item is None else bytes(item["wrapped"]["B"])

    def save_if_absent(self, subject: str, wrapped: bytes) -> bytes:
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
                existing = self.load(subject)  # another process created it first: use theirs
                if existing is not None:
                    return existing
                raise
        return wrapped

    def delete(self, subject: str) -> None:
        with translated_errors(self.table):
            self.store.client.delete_item(TableName=self.table, Key=self._key(subject))

"""Reading the events table's DynamoDB Stream, and decoding stream records into events.

The stream carries each new event item (``NEW_IMAGE``). Records of one item arrive in order, but
the items of one transaction may arrive in any order and interleaved with other transactions; the
projection engine deals with that. This module only reads shards and decodes images.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import attrs

from framework.store.dynamodb.event_store import DynamoDBEventStore, translated_errors
from framework.store.items import item_to_event
from framework.store.records import StoredEvent


@attrs.frozen
class Shard:
    """One shard of the stream; a closed shard has an ending sequence number."""

    shard_id: str
    parent_id: str | None
    closed: bool


@attrs.frozen
class StreamRecord:
    """One stream record: its sequence number and the event it carries (``None`` if no image)."""

    sequence_number: str
    event: StoredEvent | None


def image_to_item(image: Mapping[str, Any], *, binary_as_base64: bool) -> dict[str, Any]:
    """A stream image as a low-level item; Lambda delivers binary values base64-encoded."""
    if not binary_as_base64:
        return dict(image)
    return {name: _decode_value(value) for name, value in image.items()}


def _decode_value(value: Mapping[str, Any]) -> dict[str, Any]:
    ((kind, content),) = value.items()
    if kind == "B":
        return {"B": base64.b64decode(content)}
    if kind == "BS":
        return {"BS": [base64.b64decode(item) for item in content]}
    if kind == "M":
        return {"M": {k: _decode_value(v) for k, v in content.items()}}
    if kind == "L":
        return {"L": [_decode_value(v) for v in content]}
    return {kind: content}


def record_to_event(record: Mapping[str, Any], *, binary_as_base64: bool) -> StoredEvent | None:
    """The event a stream record carries: ``None`` for removals and records without an image."""
    image = record.get("dynamodb", {}).get("NewImage")
    if record.get("eventName") == "REMOVE" or not image:
        return None
    return item_to_event(image_to_item(image, binary_as_base64=binary_as_base64))


class EventStreamReader:
    """Reads the events table's stream shard by shard (through ``dynamodbstreams``)."""

    def __init__(self, store: DynamoDBEventStore) -> None:
        self.store = store
        self._client: Any | None = None
        self._arn: str | None = None

    @property
    def client(self) -> Any:
        """The ``dynamodbstreams`` client, on the store's endpoint and region."""
        if self._client is None:
            self._client = self.store.make_client("dynamodbstreams")
        return self._client

    @property
    def stream_arn(self) -> str:
        """The ARN of the events table's latest stream."""
        if self._arn is None:
            with translated_errors(self.store.tables.events):
                table = self.store.client.describe_table(TableName=self.store.tables.events)
            self._arn = str(table["Table"]["LatestStreamArn"])
        return self._arn

    def shards(self) -> list[Shard]:
        """Every shard of the stream, parents before their children."""
        shards: list[Shard] = []
        request: dict[str, Any] = {"StreamArn": self.stream_arn}
        while True:
            with translated_errors(self.store.tables.events):
                description = self.client.describe_stream(**request)["StreamDescription"]
            for shard in description.get("Shards", []):
                ending = shard.get("SequenceNumberRange", {}).get("EndingSequenceNumber")
                shards.append(
                    Shard(shard["ShardId"], shard.get("ParentShardId"), ending is not None)
                )
            last = description.get("LastEvaluatedShardId")
            if not last:
                break
            request["ExclusiveStartShardId"] = last
        known = {shard.shard_id for shard in shards}
        ordered: list[Shard] = []
        placed: set[str] = set()
        while len(ordered) < len(shards):
            progress = False
            for shard in shards:
                ready = shard.parent_id is None or shard.parent_id not in known
                if shard.shard_id not in placed and (ready or shard.parent_id in placed):
                    ordered.append(shard)
                    placed.add(shard.shard_id)
                    progress = True
            if not progress:  # a lineage that cannot be ordered: keep the service's order
                ordered.extend(shard for shard in shards if shard.shard_id not in placed)
                break
        return ordered

    def read(
        self, shard_id: str, after_sequence: str | None, *, max_calls: int = 10
    ) -> tuple[list[StreamRecord], bool]:
        """Records of a shard after ``after_sequence`` (from the start when ``None``).

        Returns the records and whether the shard is exhausted for good (closed and read).
        """
        request: dict[str, Any] = {"StreamArn": self.stream_arn, "ShardId": shard_id}
        if after_sequence is None:
            request["ShardIteratorType"] = "TRIM_HORIZON"
        else:
            request["ShardIteratorType"] = "AFTER_SEQUENCE_NUMBER"
            request["SequenceNumber"] = after_sequence
        with translated_errors(self.store.tables.events):
            iterator = self.client.get_shard_iterator(**request).get("ShardIterator")
        records: list[StreamRecord] = []
        for _ in range(max_calls):
            if iterator is None:
                return records, True
            with translated_errors(self.store.tables.events):
                page = self.client.get_records(ShardIterator=iterator, Limit=1000)
            for raw in page.get("Records", []):
                records.append(
                    StreamRecord(
                        raw["dynamodb"]["SequenceNumber"],
                        record_to_event(raw, binary_as_base64=False),
                    )
                )
            iterator = page.get("NextShardIterator")
            if not page.get("Records"):
                break
        return records, iterator is None

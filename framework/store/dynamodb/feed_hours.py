"""Which hours of the ``feed`` index hold events, so that reading the feed skips empty hours.

The feed index is partitioned by commit hour and shard. Without help, a reader of all events
since the table was created must query every shard of every hour: four queries per hour, some
70,000 for a table two years old, nearly all of them for hours nobody wrote in. So before a
store commits events of an hour it has not marked yet, it marks that hour: one item per hour in
the aggregates table (``feed#{YYYYMMDDHH}``) holding the shard counts its events were written with.
A reader then fetches the markers a hundred hours per request (``BatchGetItem``) and queries only
the marked hours, each with as many shards as the largest count written in it.

The marker is written *before* the commit: a crash between the two leaves a marked hour without
events (an empty query later), never events in an unmarked hour. Each process marks an hour once.

Tables that held events before markers existed have none for those hours: the first marker also
records, once, when marking began (``feed#since``), and hours before that (plus a day, for writers
of an older version still running during an upgrade) are read the old way, every shard of every
hour.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from typing import Any

import structlog

from framework.pauses import pause
from framework.store.keys import (
    FEED_MARKERS_SINCE_KEY,
    FEED_SHARDS,
    feed_hour,
    feed_hour_key,
)

log = structlog.get_logger(__name__)

LEGACY_GRACE = dt.timedelta(days=1)
"""After marking began, hours are still read the old way for this long (older writers)."""
MARKERS_PER_REQUEST = 100
"""``BatchGetItem`` reads at most 100 items a request."""
_REMEMBERED_HOURS = 1024


class FeedHours:
    """Marks the hours a store writes events in, and lists the hours a reader must query."""

    def __init__(self, client: Any, table: str, shards: int) -> None:
        self.client = client
        self.table = table
        self.shards = shards
        self._marked: set[tuple[str, int]] = set()
        self._started = False
        self._lock = threading.Lock()

    def mark(self, hours: set[dt.datetime]) -> None:
        """Record that events are about to be written in ``hours`` (once per hour and process)."""
        for hour in sorted(hours):
            key = feed_hour_key(hour)
            if (key, self.shards) in self._marked:
                continue
            if not self._started:
                self._record_start(hour)
            self.client.update_item(
                TableName=self.table,
                Key={"pk": {"S": key}},
                UpdateExpression="ADD shards :n",
                ExpressionAttributeValues={":n": {"NS": [str(self.shards)]}},
            )
            with self._lock:
                if len(self._marked) >= _REMEMBERED_HOURS:
                    self._marked.clear()
                self._marked.add((key, self.shards))

    def _record_start(self, hour: dt.datetime) -> None:
        """Once per process: when marking began, and which shard counts writers use."""
        self.client.update_item(
            TableName=self.table,
            Key={"pk": {"S": FEED_MARKERS_SINCE_KEY}},
            UpdateExpression="SET since = if_not_exists(since, :h) ADD shard_counts :n",
            ExpressionAttributeValues={
                ":h": {"S": hour.isoformat()},
                ":n": {"NS": [str(self.shards)]},
            },
        )
        self._started = True

    def shard_counts(self) -> set[int]:
        """Every shard count writers spread hours over (the default's included: older hours)."""
        item = self._since_item()
        counts = [] if item is None else item.get("shard_counts", {}).get("NS", [])
        return {FEED_SHARDS, *(int(count) for count in counts)}

    def hours(self, start: dt.datetime, end: dt.datetime) -> Iterator[tuple[dt.datetime, int]]:
        """The hours from ``start`` to ``end`` that may hold events, with their shard counts.

        An hour from before marking began (see the module docstring) is read in any case, with at
        least the default shard count that older writers used.
        """
        hour = feed_hour(start)
        legacy_until = self._legacy_until()
        while hour <= end:
            batch: list[dt.datetime] = []
            while hour <= end and len(batch) < MARKERS_PER_REQUEST:
                batch.append(hour)
                hour += dt.timedelta(hours=1)
            marked = self._fetch(batch)
            for candidate in batch:
                shards = marked.get(feed_hour_key(candidate))
                if legacy_until is None or candidate < legacy_until:
                    yield candidate, max(shards or FEED_SHARDS, FEED_SHARDS)
                elif shards is not None:
                    yield candidate, shards

    def _legacy_until(self) -> dt.datetime | None:
        """Until when hours are read without markers; ``None``: always (never marked)."""
        item = self._since_item()
        if item is None:
            return None
        return dt.datetime.fromisoformat(item["since"]["S"]) + LEGACY_GRACE

    def _since_item(self) -> dict[str, Any] | None:
        item: dict[str, Any] | None = self.client.get_item(
            TableName=self.table, Key={"pk": {"S": FEED_MARKERS_SINCE_KEY}}, ConsistentRead=True
        ).get("Item")
        return item

    def _fetch(self, hours: list[dt.datetime]) -> dict[str, int]:
        """The largest shard count of each marked hour among ``hours``."""
        keys: list[dict[str, Any]] = [{"pk": {"S": feed_hour_key(hour)}} for hour in hours]
        found: dict[str, int] = {}
        request: dict[str, Any] = {self.table: {"Keys": keys, "ConsistentRead": True}}
        delay = 0.05
        while request:
            response = self.client.batch_get_item(RequestItems=request)
            for item in response.get("Responses", {}).get(self.table, []):
                found[item["pk"]["S"]] = max(int(count) for count in item["shards"]["NS"])
            request = response.get("UnprocessedKeys") or {}
            if request:  # DynamoDB asks to come back for these: back off a little first
                pause(delay)
                delay = min(delay * 2, 1.0)
        return found

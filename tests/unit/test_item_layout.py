"""The shortcuts of a commit's item layout give exactly what the plain definitions give.

Each command lays out its items, counts their sizes against DynamoDB's limits, builds its feed
keys and takes fresh ids; the faster spellings of those are pinned here to the slow ones, which
are the definitions (``attribute_size`` for a value, ``strftime`` for the feed's times,
``uuid.UUID`` for an id), so that a speed-up can never change a stored key or a limit check.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Mapping
from typing import Any

import pytest

from framework.domain import new_id
from framework.store.items import attribute_size, item_size
from framework.store.keys import _FEED_TIME_FORMAT, SEPARATOR, feed_key
from framework.store.large_payloads import InMemoryPayloadStore, offload
from framework.testing.records import change_set
from framework.tracing import active_tracer, annotate
from tests.support.tracing import recording_spans


def _defined_size(item: Mapping[str, Mapping[str, Any]]) -> int:
    return sum(len(name.encode()) + attribute_size(value) for name, value in item.items())


@pytest.mark.parametrize(
    "item",
    [
        {"pk": {"S": "Account#a1"}, "sk": {"N": "1"}, "payload": {"B": b'{"amount":"1"}'}},
        {"n": {"N": "0"}, "neg": {"N": "-120"}, "dec": {"N": "0012.500"}, "big": {"N": "9" * 38}},
        {"ttl": {"N": "1796000000"}, "schema": {"N": "12"}, "v": {"N": "-0.001"}},
        {"pk": {"S": "Kontø#ünïcode ✓"}, "naïve": {"S": ""}, "b": {"B": b""}},
        {
            "m": {"M": {"x": {"N": "1"}, "y": {"L": [{"S": "z"}, {"BOOL": True}]}}},
            "e": {"NULL": True},
        },
        {"ss": {"SS": ["a", "é"]}, "ns": {"NS": ["1", "-22.5"]}, "bs": {"BS": [b"12"]}},
    ],
)
def test_an_item_is_counted_as_its_attributes_are(item: Mapping[str, Mapping[str, Any]]) -> None:
    assert item_size(item) == _defined_size(item)


def _strftime_feed_key(stream: str, version: int, moment: dt.datetime, shards: int) -> str:
    utc = moment.astimezone(dt.UTC)
    return f"{utc:{_FEED_TIME_FORMAT}}{SEPARATOR}{stream}{SEPARATOR}{version:010d}"


@pytest.mark.parametrize(
    "moment",
    [
        dt.datetime(2026, 12, 6, 9, 5, 7, 42, tzinfo=dt.UTC),
        dt.datetime(2026, 1, 1, 0, 30, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))),
        dt.datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
        dt.datetime(1000, 1, 1, tzinfo=dt.UTC),
        dt.datetime(999, 12, 31, 23, tzinfo=dt.UTC),  # strftime does not pad this year
        dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
    ],
)
def test_feed_keys_write_the_commit_time_as_strftime_does(moment: dt.datetime) -> None:
    feed_pk, feed_sk = feed_key("Account#a1", 7, moment, 4)
    assert feed_pk.split(SEPARATOR)[0] == f"{moment.astimezone(dt.UTC):%Y%m%d%H}"
    assert feed_sk == _strftime_feed_key("Account#a1", 7, moment, 4)


def test_feed_keys_of_random_moments_match_strftime() -> None:
    chosen = random.Random(20261206)
    span = int((dt.datetime.max - dt.datetime.min).total_seconds())
    for _ in range(2000):
        moment = dt.datetime.min.replace(tzinfo=dt.UTC) + dt.timedelta(
            seconds=chosen.randrange(span), microseconds=chosen.randrange(1_000_000)
        )
        assert feed_key("T#x", 1, moment)[1] == _strftime_feed_key("T#x", 1, moment, 1)


def test_a_new_id_is_a_version_4_uuid_as_uuid_writes_it() -> None:
    ids = {new_id() for _ in range(5000)}
    assert len(ids) == 5000
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


def test_a_change_set_without_large_payloads_is_passed_on_as_it_is() -> None:
    small = change_set([("a1", 0, 3), ("a2", 4, 1)])
    assert offload(small, InMemoryPayloadStore()) == (small, [])
    assert offload(small, InMemoryPayloadStore())[0] is small


def test_a_commit_is_described_only_to_a_span_that_records() -> None:
    def describe() -> dict[str, str]:
        raise AssertionError("built for a span that records nothing")

    annotate(describe)  # no SDK span here: the attributes are never built
    with recording_spans() as exported:
        tracer = active_tracer()
        assert tracer is not None
        with tracer.start_as_current_span("commit"):
            annotate(lambda: {"framework.test": "yes"})
    (span,) = exported.get_finished_spans()
    assert span.attributes is not None and span.attributes["framework.test"] == "yes"

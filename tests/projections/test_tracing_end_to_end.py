"""One request followed end to end: the command's spans, then a catch-up run whose projection and
EventBridge publisher (on moto) continue the command's trace, and the published entries carry its
trace context and ids."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import boto3
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from framework import Application, DynamoDBEventStore
from framework.projections import CatchUpRunner
from framework.projections.eventbridge import EventBridgeBus
from framework.projections.publisher import (
    EventBridgePublisher,
    InMemoryDeadLetterQueue,
    InMemoryEventBus,
)
from framework.store import DynamoDBPositionStore
from framework.testing.bank import Account, Deposit, OpenAccount
from framework.tracing import use_tracer_provider
from tests.support.projectors import Balances
from tests.support.tracing import named, recording_spans, trace_id


class AccountEvents(EventBridgePublisher, name="account-events"):
    source = "traced-bank"
    aggregates = (Account,)


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    with recording_spans() as exported:
        yield exported


@pytest.fixture
def subscriber(moto_store: DynamoDBEventStore) -> tuple[Any, Any, str]:
    """A bus whose rule routes every ``traced-bank`` event to an SQS queue."""
    events = boto3.client("events", region_name="us-east-1")
    sqs = boto3.client("sqs", region_name="us-east-1")
    events.create_event_bus(Name="traced-bus")
    queue = sqs.create_queue(QueueName="traced-subscriber")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(
        Name="all", EventBusName="traced-bus", EventPattern=json.dumps({"source": ["traced-bank"]})
    )
    events.put_targets(Rule="all", EventBusName="traced-bus", Targets=[{"Id": "q", "Arn": arn}])
    return events, sqs, queue


def received(sqs: Any, queue: str) -> list[dict[str, Any]]:
    bodies: list[dict[str, Any]] = []
    while messages := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get(
        "Messages", []
    ):
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def catch_up(store: DynamoDBEventStore, *projectors: Any) -> None:
    CatchUpRunner(
        store, DynamoDBPositionStore(store), list(projectors), safety_window=dt.timedelta(0)
    ).run(until=dt.datetime.now(dt.UTC) + dt.timedelta(days=1))


def test_projections_and_the_bus_continue_the_trace_of_the_command(
    exporter: InMemorySpanExporter,
    moto_store: DynamoDBEventStore,
    subscriber: tuple[Any, Any, str],
) -> None:
    events, sqs, queue = subscriber
    app = Application(store=moto_store, aggregates=[Account])
    app.handle(OpenAccount(account_id="a1", owner="o", correlation_id="corr-1"))
    app.handle(Deposit(account_id="a1", amount=Decimal(5), correlation_id="corr-1"))
    handles = named(exporter.get_finished_spans(), "handle")
    command_traces = {trace_id(span) for span in handles}
    assert len(command_traces) == 2  # one trace per command
    assert {trace_id(span) for span in exporter.get_finished_spans()} == command_traces
    exporter.clear()

    publisher = AccountEvents(
        bus=EventBridgeBus("traced-bus", client=events), dead_letters=InMemoryDeadLetterQueue()
    )
    catch_up(moto_store, Balances(), publisher)
    spans = exporter.get_finished_spans()
    projected = named(spans, "project")
    published = named(spans, "publish")
    assert len(projected) == 4  # two events, two projectors
    assert {trace_id(span) for span in projected} == command_traces
    assert {s.attributes["framework.projector"] for s in projected if s.attributes} == {
        "balances",
        "account-events",
    }
    assert published and {trace_id(span) for span in published} <= command_traces
    entries = [s.attributes["framework.publish.entries"] for s in published if s.attributes]
    assert sum(int(str(count)) for count in entries) == 2
    assert all(s.attributes and s.attributes["framework.publish.failed"] == 0 for s in published)

    bodies = received(sqs, queue)
    assert len(bodies) == 2
    stored = {r.version: r for r in moto_store.load_events("Account", "a1")}
    for body in bodies:
        detail = body["detail"]
        record = stored[detail["version"]]
        assert detail["traceContext"] == {"traceparent": record.traceparent}
        assert detail["correlationId"] == "corr-1"
        assert detail["causationId"] == record.command_id


def test_one_request_for_events_of_several_traces_links_them(
    exporter: InMemorySpanExporter, moto_store: DynamoDBEventStore
) -> None:
    app = Application(store=moto_store, aggregates=[Account])
    app.handle(OpenAccount(account_id="a1", owner="o"))
    app.handle(OpenAccount(account_id="a2", owner="o"))
    command_traces = {trace_id(span) for span in named(exporter.get_finished_spans(), "handle")}
    exporter.clear()
    bus = InMemoryEventBus()
    publisher = AccountEvents(bus=bus, dead_letters=InMemoryDeadLetterQueue())
    report = publisher.send(publisher.entries_for(list(moto_store.read_feed()), moto_store))
    assert report.requests == 1 and len(bus.published) == 2  # two streams, one request
    (publish,) = named(exporter.get_finished_spans(), "publish")
    assert trace_id(publish) not in command_traces
    assert {link.context.trace_id for link in publish.links} == command_traces


def test_without_an_sdk_entries_carry_no_trace_context(moto_store: DynamoDBEventStore) -> None:
    with use_tracer_provider(None):
        Application(store=moto_store, aggregates=[Account]).handle(
            OpenAccount(account_id="a1", owner="o", correlation_id="corr-2")
        )
        bus = InMemoryEventBus()
        catch_up(moto_store, AccountEvents(bus=bus, dead_letters=InMemoryDeadLetterQueue()))
    (detail,) = bus.details()
    assert "traceContext" not in detail and detail["correlationId"] == "corr-2"

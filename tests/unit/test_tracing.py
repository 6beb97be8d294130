"""Spans of a command's path (handle, load, commit) and of the projections that follow its events,
recorded with the OpenTelemetry SDK's in-memory exporter; nothing recorded without an SDK."""

from __future__ import annotations

import base64
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from framework import Application, DynamoDBEventStore, InMemoryEventStore
from framework.projections import ProjectionEngine
from framework.store import InMemoryPositionStore
from framework.store.dynamodb.streams import record_to_event
from framework.store.items import event_item
from framework.testing.bank import Account, Deposit, OpenAccount
from framework.tracing import continued_from, use_tracer_provider
from tests.support.projectors import Balances
from tests.support.tracing import named, recording_spans, span_id, trace_id


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    with recording_spans() as exported:
        yield exported


def test_a_command_is_one_trace_of_handle_load_and_commit(
    exporter: InMemorySpanExporter,
) -> None:
    store = InMemoryEventStore()
    app = Application(store=store, aggregates=[Account])
    app.handle(OpenAccount(account_id="a1", owner="o", correlation_id="corr-9"))
    exporter.clear()
    app.handle(Deposit(account_id="a1", amount=Decimal(5), command_id="c-2"))
    spans = exporter.get_finished_spans()
    assert sorted(span.name for span in spans) == ["commit", "handle", "load"]
    (handle,) = named(spans, "handle")
    (load,) = named(spans, "load")
    (commit,) = named(spans, "commit")
    assert {trace_id(span) for span in spans} == {trace_id(handle)}
    assert load.parent is not None and load.parent.span_id == span_id(handle)
    assert commit.parent is not None and commit.parent.span_id == span_id(handle)
    assert handle.attributes is not None and load.attributes is not None
    assert handle.attributes["framework.command.type"] == "Deposit"
    assert handle.attributes["framework.command_id"] == "c-2"
    assert handle.attributes["framework.correlation_id"] == "c-2"
    assert handle.attributes["framework.command.attempts"] == 1
    assert load.attributes["framework.aggregate.type"] == "Account"
    assert load.attributes["framework.load.events"] == 1
    assert load.attributes["framework.load.from_snapshot"] is False
    assert commit.attributes is not None and commit.attributes["framework.commit.events"] == 1
    assert commit.attributes["framework.commit.items"] == 3  # aggregate, event, command record
    # The event stores the handle span's context: what follows it continues this trace.
    (_, deposited) = store.load_events("Account", "a1")
    assert handle.context is not None
    flags = handle.context.trace_flags
    assert deposited.traceparent == f"00-{trace_id(handle):032x}-{span_id(handle):016x}-{flags:02x}"


def test_dynamodb_spans_name_the_tables_and_count_the_requests(
    exporter: InMemorySpanExporter, moto_store: DynamoDBEventStore
) -> None:
    app = Application(store=moto_store, aggregates=[Account])
    app.handle(OpenAccount(account_id="a1", owner="o"))
    app.handle(Deposit(account_id="a1", amount=Decimal(5)))
    spans = exporter.get_finished_spans()
    commit = named(spans, "commit")[-1]
    load = named(spans, "load")[-1]
    assert commit.attributes is not None and load.attributes is not None
    assert commit.attributes["db.system"] == "dynamodb"
    assert commit.attributes["db.operation"] == "TransactWriteItems"
    assert set(commit.attributes["aws.dynamodb.table_names"]) == {  # type: ignore[arg-type]
        moto_store.tables.aggregates,
        moto_store.tables.events,
    }
    assert commit.attributes["framework.requests"] == 1  # the feed hour was marked before
    first_commit = named(spans, "commit")[0]
    assert first_commit.attributes is not None
    assert first_commit.attributes["framework.requests"] >= 2  # type: ignore[operator]
    assert load.attributes["framework.requests"] == 1  # one Query, no snapshot policy


def test_a_projection_continues_the_trace_of_the_command(
    exporter: InMemorySpanExporter,
) -> None:
    store = InMemoryEventStore()
    app = Application(store=store, aggregates=[Account])
    app.handle(OpenAccount(account_id="a1", owner="o"))
    app.handle(Deposit(account_id="a1", amount=Decimal(5)))
    handles = named(exporter.get_finished_spans(), "handle")
    exporter.clear()
    ProjectionEngine(Balances(), store, InMemoryPositionStore()).apply(store.read_feed())
    projected = named(exporter.get_finished_spans(), "project")
    assert len(projected) == 2
    for span, handle in zip(projected, handles, strict=True):
        assert trace_id(span) == trace_id(handle)
        assert span.parent is not None and span.parent.span_id == span_id(handle)
        assert span.attributes is not None
        assert span.attributes["framework.projector"] == "balances"
        assert span.attributes["framework.stream"] == "Account#a1"
    assert [s.attributes["framework.version"] for s in projected if s.attributes] == [1, 2]


def test_continued_from_can_link_instead_of_joining(exporter: InMemorySpanExporter) -> None:
    store = InMemoryEventStore()
    Application(store=store, aggregates=[Account]).handle(OpenAccount(account_id="a", owner="o"))
    (record,) = store.load_events("Account", "a")
    with continued_from(record, "later", link=True):
        pass
    (handle,) = named(exporter.get_finished_spans(), "handle")
    (later,) = named(exporter.get_finished_spans(), "later")
    assert later.parent is None and trace_id(later) != trace_id(handle)
    assert [link.context.span_id for link in later.links] == [span_id(handle)]


def test_without_an_sdk_nothing_is_recorded_and_nothing_breaks() -> None:
    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    with use_tracer_provider(None):
        store = InMemoryEventStore()
        app = Application(store=store, aggregates=[Account])
        app.handle(OpenAccount(account_id="a1", owner="o"))
        ProjectionEngine(Balances(), store, InMemoryPositionStore()).apply(store.read_feed())
        (record,) = store.load_events("Account", "a1")
        assert record.traceparent is None and record.tracestate is None
        with continued_from(record, "nothing") as nothing:
            assert nothing is None
    assert exported.get_finished_spans() == ()


def test_without_an_sdk_a_callers_trace_context_is_still_stored() -> None:
    """An HTTP front attached the caller's ``traceparent``: the events keep it for later."""
    caller = SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0xB7AD6B7169203331,
        is_remote=True,
        trace_flags=TraceFlags(1),
    )
    store = InMemoryEventStore()
    token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(caller)))
    try:
        with use_tracer_provider(None):
            Application(store=store, aggregates=[Account]).handle(
                OpenAccount(account_id="a1", owner="o")
            )
    finally:
        otel_context.detach(token)
    (record,) = store.load_events("Account", "a1")
    assert record.traceparent == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_the_framework_never_imports_the_sdk() -> None:
    code = (
        "import sys, framework, framework.application, framework.tracing, framework.http, "
        "framework.projections.publisher, example_app.api.app\n"
        "assert 'opentelemetry.sdk' not in sys.modules, 'the SDK was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_streams_record_carries_the_trace_context_to_the_lambda_and_the_poller() -> None:
    store = InMemoryEventStore()
    app = Application(store=store, aggregates=[Account])
    caller = SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0xB7AD6B7169203331,
        is_remote=True,
        trace_flags=TraceFlags(1),
    )
    token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(caller)))
    try:
        with use_tracer_provider(None):
            app.handle(OpenAccount(account_id="a1", owner="o"))
    finally:
        otel_context.detach(token)
    (record,) = store.load_events("Account", "a1")
    image = {
        name: ({"B": base64.b64encode(value["B"]).decode()} if "B" in value else value)
        for name, value in event_item(record).items()
    }
    lambda_record = {"eventName": "INSERT", "dynamodb": {"NewImage": image}}
    assert record_to_event(lambda_record, binary_as_base64=True) == record
    assert record.traceparent == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

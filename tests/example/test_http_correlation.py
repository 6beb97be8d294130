"""One request followed through the example API: its correlation id (a header, or a new one) and
its trace context reach the events it commits, its ids come back on every response, and a
malformed correlation id is refused before anything runs."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import httpx
import pytest

from example_app.bank import UPCASTERS
from example_app.http_api import create_app
from example_app.publishing import BankEvents
from framework import DynamoDBEventStore
from framework.http import MAX_CORRELATION_ID_LENGTH
from framework.projections import CatchUpRunner
from framework.projections.publisher import InMemoryDeadLetterQueue, InMemoryEventBus
from framework.store import DynamoDBPositionStore
from framework.tracing import use_tracer_provider
from tests.example.http_support import Server
from tests.support.tracing import recording_spans

TOKEN = "correlation-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CALLER = f"00-{TRACE_ID}-b7ad6b7169203331-01"


@pytest.fixture
def client(moto_store: DynamoDBEventStore) -> Iterator[httpx.Client]:
    """The API over a real socket (uvicorn, its thread pool), on moto, sending no token."""
    app = create_app(
        moto_store, api_token=TOKEN, project_synchronously=False, background_catch_up=False
    )
    with Server(app, headers={}) as served:
        yield served


def open_account(client: httpx.Client, account_id: str, **headers: str) -> dict[str, str]:
    response = client.post(
        "/accounts",
        json={"account_id": account_id, "owner": "Ann"},
        headers={**AUTH, **headers},
    )
    assert response.status_code == 201, response.text
    return dict(response.headers)


def test_the_callers_correlation_id_reaches_the_events_and_comes_back(
    client: httpx.Client, moto_store: DynamoDBEventStore
) -> None:
    headers = open_account(client, "acc-1", **{"X-Correlation-Id": "order-42/checkout"})
    assert headers["x-correlation-id"] == "order-42/checkout"
    request_id = headers["x-request-id"]
    (opened,) = moto_store.load_events("Account", "acc-1")
    assert opened.correlation_id == "order-42/checkout"
    assert opened.causation_id == request_id  # the request caused the command
    assert opened.command_id != request_id


def test_a_request_without_one_starts_a_conversation(
    client: httpx.Client, moto_store: DynamoDBEventStore
) -> None:
    first = open_account(client, "acc-1")
    second = open_account(client, "acc-2")
    assert first["x-correlation-id"] == first["x-request-id"]
    assert first["x-request-id"] != second["x-request-id"]
    (opened,) = moto_store.load_events("Account", "acc-1")
    assert opened.correlation_id == opened.causation_id == first["x-request-id"]


@pytest.mark.parametrize(
    "value",
    ["", "has space", "x" * (MAX_CORRELATION_ID_LENGTH + 1), "tab\tin-it"],
    ids=["empty", "space", "too-long", "control"],
)
def test_a_malformed_correlation_id_is_a_400_before_anything_runs(
    client: httpx.Client, moto_store: DynamoDBEventStore, value: str
) -> None:
    response = client.post(
        "/accounts",
        json={"account_id": "acc-1", "owner": "Ann"},
        headers={**AUTH, "X-Correlation-Id": value},
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert "X-Correlation-Id" in response.json()["detail"]
    assert response.headers["x-request-id"]
    assert moto_store.load_events("Account", "acc-1") == []


def test_the_longest_correlation_id_is_accepted(client: httpx.Client) -> None:
    longest = "y" * MAX_CORRELATION_ID_LENGTH
    assert (
        open_account(client, "acc-1", **{"X-Correlation-Id": longest})["x-correlation-id"]
        == longest
    )


def test_refusals_answer_with_the_ids_too(client: httpx.Client) -> None:
    response = client.post(
        "/accounts", json={"account_id": "a", "owner": "Ann"}, headers={"X-Correlation-Id": "c-1"}
    )
    assert response.status_code == 401
    assert response.headers["x-correlation-id"] == "c-1" and response.headers["x-request-id"]


def test_the_callers_traceparent_is_stored_without_an_sdk(
    client: httpx.Client, moto_store: DynamoDBEventStore
) -> None:
    with use_tracer_provider(None):
        open_account(client, "acc-1", traceparent=CALLER, tracestate="vendor=1")
        open_account(client, "acc-2", traceparent="00-not-a-trace-01")
    (opened,) = moto_store.load_events("Account", "acc-1")
    assert (opened.traceparent, opened.tracestate) == (CALLER, "vendor=1")
    (untraced,) = moto_store.load_events("Account", "acc-2")
    assert untraced.traceparent is None  # a malformed traceparent is ignored


def test_with_an_sdk_the_command_joins_the_callers_trace(
    client: httpx.Client, moto_store: DynamoDBEventStore
) -> None:
    open_account(client, "acc-1")
    with recording_spans() as exporter:
        response = client.post(
            "/accounts/acc-1/deposits",
            json={"amount": "5"},
            headers={**AUTH, "traceparent": CALLER},
        )
        assert response.status_code == 200, response.text
    spans = exporter.get_finished_spans()
    assert sorted(span.name for span in spans) == ["commit", "handle", "load"]
    assert {f"{span.context.trace_id:032x}" for span in spans if span.context} == {TRACE_ID}
    (handle,) = [span for span in spans if span.name == "handle"]
    assert handle.parent is not None and f"{handle.parent.span_id:016x}" == "b7ad6b7169203331"
    assert handle.attributes is not None and handle.context is not None
    assert (
        handle.attributes["framework.correlation_id"] == handle.attributes["framework.causation_id"]
    )
    (_, deposited) = moto_store.load_events("Account", "acc-1")
    assert deposited.traceparent is not None and deposited.traceparent.split("-")[1] == TRACE_ID
    assert deposited.traceparent.split("-")[2] == f"{handle.context.span_id:016x}"


def test_from_the_http_request_to_the_bus_one_trace_and_one_correlation_id(
    client: httpx.Client, moto_store: DynamoDBEventStore
) -> None:
    bus = InMemoryEventBus()
    with recording_spans() as exporter:
        open_account(client, "acc-1", traceparent=CALLER, **{"X-Correlation-Id": "order-7"})
        CatchUpRunner(
            moto_store,
            DynamoDBPositionStore(moto_store),
            [BankEvents(bus=bus, dead_letters=InMemoryDeadLetterQueue())],
            safety_window=dt.timedelta(0),
            upcasters=UPCASTERS,
        ).run(until=dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
    spans = exporter.get_finished_spans()
    assert {"handle", "commit", "project", "publish"} <= {span.name for span in spans}
    assert {f"{span.context.trace_id:032x}" for span in spans if span.context} == {TRACE_ID}
    (detail,) = bus.details()
    assert detail["correlationId"] == "order-7"
    assert detail["traceContext"]["traceparent"].split("-")[1] == TRACE_ID

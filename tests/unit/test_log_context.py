"""Every log line of a command's handling, and of a projection applying its events, carries the
conversation's ids (command, correlation, causation; and the event's own)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import structlog
from attrs import frozen

from framework import (
    Aggregate,
    Application,
    Command,
    Event,
    InMemoryEventStore,
    Projector,
    command_handler,
    event_handler,
)
from framework.logs import configure_logging, log_context, log_context_from
from framework.projections import Envelope, ProjectionEngine
from framework.store import InMemoryPositionStore
from framework.store.records import event_id

chatter = structlog.get_logger("tests.chatter")


@pytest.fixture
def json_lines(capsys: pytest.CaptureFixture[str]) -> Iterator[Any]:
    configure_logging("DEBUG", json=True)

    def lines() -> list[dict[str, Any]]:
        return [json.loads(line) for line in capsys.readouterr().err.splitlines()]

    try:
        yield lines
    finally:
        structlog.reset_defaults()


@frozen
class Pledge(Command, target="fund_id"):
    fund_id: str
    amount: Decimal


@frozen
class Pledged(Event):
    amount: Decimal


class Fund(Aggregate):
    @command_handler(Pledge, creates=None)
    def pledge(self, command: Pledge) -> None:
        chatter.info("fund.deciding")  # a domain's own line, logged inside the handler
        self.emit(Pledged(amount=command.amount))

    @event_handler(Pledged)
    def _pledged(self, event: Pledged) -> None:
        pass


class Totals(Projector, name="totals"):
    @event_handler(Pledged)
    def _pledged(self, event: Pledged, envelope: Envelope) -> None:
        chatter.info("totals.adding")


def test_every_line_of_a_command_carries_its_ids(json_lines: Any) -> None:
    app = Application(store=InMemoryEventStore(), aggregates=[Fund])
    app.handle(
        Pledge(
            fund_id="f1",
            amount=Decimal(3),
            command_id="c-1",
            correlation_id="corr-1",
            causation_id="cause-1",
        )
    )
    app.handle(Pledge(fund_id="f1", amount=Decimal(4), command_id="c-2"))
    lines = json_lines()
    assert [line["event"] for line in lines] == [
        "fund.deciding",
        "command.handled",
        "fund.deciding",
        "command.handled",
    ]
    for line in lines[:2]:
        assert (line["command_id"], line["correlation_id"], line["causation_id"]) == (
            "c-1",
            "corr-1",
            "cause-1",
        )
    for line in lines[2:]:  # a command of its own starts a conversation: it is its own cause
        assert (line["command_id"], line["correlation_id"], line["causation_id"]) == (
            "c-2",
            "c-2",
            "c-2",
        )
    structlog.get_logger("after").info("outside")
    (outside,) = json_lines()
    assert "command_id" not in outside and "correlation_id" not in outside


def test_a_projection_logs_the_ids_of_the_event_it_applies(json_lines: Any) -> None:
    store = InMemoryEventStore()
    app = Application(store=store, aggregates=[Fund])
    app.handle(Pledge(fund_id="f1", amount=Decimal(3), command_id="c-1", correlation_id="corr-1"))
    json_lines()
    (record,) = store.load_events("Fund", "f1")
    ProjectionEngine(Totals(), store, InMemoryPositionStore()).apply([record])
    (line,) = [line for line in json_lines() if line["event"] == "totals.adding"]
    assert line["event_id"] == event_id(record.change_set_id, "Fund#f1", 1)
    assert (line["stream"], line["version"]) == ("Fund#f1", 1)
    assert (line["correlation_id"], line["causation_id"]) == ("corr-1", "c-1")


def test_log_contexts_nest_and_restore_even_on_errors(json_lines: Any) -> None:
    with log_context(correlation_id="outer", skipped=None):
        with pytest.raises(RuntimeError), log_context(correlation_id="inner", event_id="e"):
            chatter.info("inner")
            raise RuntimeError
        chatter.info("outer")
    chatter.info("none")
    inner, outer, none = json_lines()
    assert inner["correlation_id"] == "inner" and inner["event_id"] == "e"
    assert outer["correlation_id"] == "outer" and "event_id" not in outer
    assert "skipped" not in outer
    assert "correlation_id" not in none


def test_ids_computed_for_a_block_are_worked_out_only_when_a_line_is_logged(
    json_lines: Any,
) -> None:
    computed: list[str] = []

    def ids(name: str) -> dict[str, str | None]:
        computed.append(name)
        return {"correlation_id": "inner", "event_id": name, "skipped": None}

    with log_context(correlation_id="outer", command_id="c-1"):
        with log_context_from(ids, "quiet"):
            pass
        assert computed == []  # nothing logged: nothing computed
        with pytest.raises(RuntimeError), log_context_from(ids, "e-1"):
            chatter.info("first")
            with log_context(version=3):
                chatter.info("nested")
            chatter.info("second")
            raise RuntimeError
        chatter.info("outer")
    chatter.info("none")
    first, nested, second, outer, none = json_lines()
    assert computed == ["e-1"]  # once per block, however many lines it logs
    for line in (first, nested, second):
        assert (line["correlation_id"], line["event_id"], line["command_id"]) == (
            "inner",
            "e-1",
            "c-1",
        )
        assert "skipped" not in line
    assert nested["version"] == 3 and "version" not in second
    assert outer["correlation_id"] == "outer" and "event_id" not in outer
    assert "correlation_id" not in none and "command_id" not in none


def test_the_ready_made_lambda_handler_logs_the_ids_unless_the_function_configured_logging(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from framework.logs import merge_log_context
    from framework.projections import aws_lambda

    monkeypatch.setattr(aws_lambda, "_handler", lambda event, context: {"batchItemFailures": []})
    monkeypatch.setattr(structlog, "is_configured", lambda: False)
    structlog.configure(processors=[structlog.processors.JSONRenderer()])
    assert aws_lambda.handler({"Records": []}, None) == {"batchItemFailures": []}
    assert merge_log_context in structlog.get_config()["processors"]
    monkeypatch.setattr(structlog, "is_configured", lambda: True)
    structlog.configure(processors=[structlog.processors.JSONRenderer()])
    aws_lambda.handler({"Records": []}, None)
    assert merge_log_context not in structlog.get_config()["processors"]  # the function's own

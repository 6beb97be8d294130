"""The scheduled Lambda entry point fires due deadlines with the application ``APPLICATION``
names, on the store of the settings (DynamoDB Local here)."""

from __future__ import annotations

import datetime as dt

import pytest

from framework import DynamoDBEventStore
from framework.projections import aws_lambda
from framework.projections.deadlines import Deadline, DeadlineStatus, encode_command
from framework.projections.dynamodb_deadlines import DynamoDBDeadlineStore
from tests.support.processes import ExpireOrder, PlaceOrder, order_application


def test_the_scheduled_function_fires_what_is_due(
    dynamodb_store: DynamoDBEventStore,
    dynamodb_deadlines: DynamoDBDeadlineStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert dynamodb_store.endpoint_url is not None
    monkeypatch.setenv("DYNAMO_ENDPOINT", dynamodb_store.endpoint_url)
    monkeypatch.setenv("DYNAMO_TABLE_PREFIX", dynamodb_store.tables.prefix)
    monkeypatch.setenv("APPLICATION", "tests.support.processes:order_application")
    monkeypatch.setattr(aws_lambda, "_runner", None)
    order_application(dynamodb_store).handle(PlaceOrder(order_id="o1", sku="apple"))
    command_type, document = encode_command(ExpireOrder(order_id="o1"))
    past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    future = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    for deadline_id, due in (("due", past), ("later", future)):
        dynamodb_deadlines.schedule(Deadline(deadline_id, "p", due, command_type, document))
    assert aws_lambda.deadlines_handler({}, None) == {
        "fired": 1,
        "refused": 0,
        "failed": 0,
        "lost": 0,
    }
    assert aws_lambda.deadlines_handler({}, None)["fired"] == 0
    statuses = {d.deadline_id: d.status for d in dynamodb_deadlines.list()}
    assert statuses == {"due": DeadlineStatus.FIRED, "later": DeadlineStatus.PENDING}


def test_without_an_application_it_says_which_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from framework.errors import ConfigurationError

    monkeypatch.delenv("APPLICATION", raising=False)
    monkeypatch.setattr(aws_lambda, "_runner", None)
    with pytest.raises(ConfigurationError, match="APPLICATION is not set"):
        aws_lambda.deadlines_handler({}, None)

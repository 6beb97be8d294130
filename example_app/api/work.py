"""How the async endpoints run their work: commands awaited, everything else kept off the loop.

The endpoints are ``async def``: a command is ``await``ed through ``AsyncApplication``. What else
a request does is synchronous code of its own (the read models are PynamoDB tables; the
projection before the response runs the projection engine). Two ways to run all that, one per
kind of store:

- ``ConcurrentWork``, on DynamoDB (Local or AWS): the lifespan opens an aiobotocore copy of the
  store (``open``), so each command waits for DynamoDB without holding a thread, and many are in
  flight on the loop at once. The projection before the response and the reads run in worker
  threads, on the store ``create_app`` was given (boto3), and so do the background catch-up and
  the deadlines. Why not bring those onto the loop too: the projection engine, the catch-up
  runner (a thread per feed shard) and the process managers keep state per thread and take
  locks around their writes; in bridged greenlets every one of those locks would have to be
  shown never to be held across a wait, and the shard threads could not call an aiobotocore
  store at all. On their own boto3 store they stay as they are, and DynamoDB's conditions keep
  the two faces consistent exactly as they keep two processes consistent.
- ``SerializedWork``, on the embedded store (moto, in process, one request at a time):
  everything runs one piece at a time, the requests' work on the loop's thread (commands through
  ``AsyncApplication`` over the sync store: nothing there waits for a network), the background
  work in its threads. ``SerialGate`` is the one lock both take, acquired so that the loop never
  blocks on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from typing import Protocol, TypeVar

import structlog

from example_app.wiring import build_application
from framework import Application, Command, DynamoDBEventStore
from framework.aio import AsyncApplication, run_in_greenlet
from framework.application import CommandResult
from framework.errors import ConfigurationError

__all__ = ["ConcurrentWork", "RequestWork", "SerialGate", "SerializedWork"]

log = structlog.get_logger(__name__)

T = TypeVar("T")


class RequestWork(Protocol):
    """What an endpoint awaits: its command, and its other (synchronous) work."""

    async def handle(self, command: Command) -> CommandResult:
        """The command's result, as ``Application.handle`` returns it (same errors)."""
        ...

    async def call(self, function: Callable[[], T]) -> T:
        """``function()``'s result, computed without blocking the loop on another thread."""
        ...

    def open(self) -> contextlib.AbstractAsyncContextManager[None]:
        """What the app's lifespan holds open while it serves (an async store, or nothing)."""
        ...


class ConcurrentWork:
    """Commands awaited on an aiobotocore copy of ``store``; other work in worker threads.

    Until ``open`` runs (an app served without its lifespan, or a store given a boto3 client of
    its own, whose settings cannot be copied), commands run on ``application`` in a worker
    thread: slower, but the same results.
    """

    def __init__(self, store: DynamoDBEventStore, application: Application) -> None:
        self.store = store
        self.application = application
        self.async_application: AsyncApplication | None = None

    async def handle(self, command: Command) -> CommandResult:
        if self.async_application is None:
            return await asyncio.to_thread(self.application.handle, command)
        return await self.async_application.handle(command)

    async def call(self, function: Callable[[], T]) -> T:
        return await asyncio.to_thread(function)

    @contextlib.asynccontextmanager
    async def open(self) -> AsyncIterator[None]:
        """Serve commands on an aiobotocore copy of the store while the block runs."""
        from framework.aio import open_async_store  # loads aiobotocore: only when serving

        try:
            blueprint = self.store.unopened_copy()
        except ConfigurationError as refused:
            log.warning("http.commands_on_threads", reason=str(refused))
            yield
            return
        async with open_async_store(blueprint) as async_store:
            self.async_application = AsyncApplication(build_application(async_store))
            try:
                yield
            finally:
                self.async_application = None


class SerialGate:
    """One piece of work at a time on a store that is not thread-safe, loop and threads alike.

    Threads hold ``lock`` as any lock. The loop's tasks go through ``hold``, which never blocks
    the loop: when the lock is taken, a worker thread waits for it. A task may then run bridged
    code that yields to the loop (the retry backoff awaits ``asyncio.sleep``) while it holds the
    lock: the other tasks wait for it in their worker threads, so the holder's greenlet resumes
    and releases it. Acquiring it in the loop's own thread instead would freeze the loop with
    the holder inside it: a deadlock.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        if not self.lock.acquire(blocking=False):
            await self._acquire_in_a_thread()
        try:
            yield
        finally:
            self.lock.release()

    async def _acquire_in_a_thread(self) -> None:
        waiter = _LockWaiter(self.lock)
        try:
            await asyncio.to_thread(waiter.wait)
        except asyncio.CancelledError:
            # The request went away while its thread waits: whatever the thread gets is nobody's.
            waiter.abandon()
            raise


class _LockWaiter:
    """A worker thread's wait for the gate, which the waiting task may abandon at any moment.

    Who gives back a lock nobody claims is settled between the thread and the task under
    ``_settled``, without the event loop: if the task is gone when the thread gets the lock, the
    thread releases it at once; if the thread got it first, ``abandon`` releases it. A callback
    on the loop instead would leave the lock taken for good when the loop closes first.
    """

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock
        self._settled = threading.Lock()
        self._acquired = False
        self._abandoned = False

    def wait(self) -> None:
        """Block (in a worker thread) until the lock is taken, and give it back if unwanted."""
        self._lock.acquire()
        with self._settled:
            if self._abandoned:
                self._lock.release()
            else:
                self._acquired = True

    def abandon(self) -> None:
        with self._settled:
            self._abandoned = True
            if self._acquired:
                self._lock.release()


class SerializedWork:
    """Every command and read alone, on the loop's thread, through ``AsyncApplication``."""

    def __init__(self, application: Application, gate: SerialGate) -> None:
        self.application = AsyncApplication(application)
        self.gate = gate

    async def handle(self, command: Command) -> CommandResult:
        async with self.gate.hold():
            return await self.application.handle(command)

    async def call(self, function: Callable[[], T]) -> T:
        async with self.gate.hold():
            return await run_in_greenlet(function)

    def open(self) -> contextlib.AbstractAsyncContextManager[None]:
        return _nothing_to_open()


@contextlib.asynccontextmanager
async def _nothing_to_open() -> AsyncIterator[None]:
    yield

"""``AsyncCatchUpRunner``: the catch-up runner awaited on an asyncio loop, its lanes as greenlets.

Why: a replay spends its time waiting for the feed's ``Query`` pages and the positions'
transactions; the sync ``CatchUpRunner`` overlaps those waits with one thread per lane. On a store
opened by ``open_async_store`` the same overlap comes from the loop: each lane runs in a greenlet
of its own, and its requests are awaited side by side with the other lanes', on one thread.

How, without a second copy of the runner's rules (resume points, chunks, checkpoints and their
overlap, parking, progress, the rebuild's order): ``CatchUpRunner.run`` itself runs in a bridged
greenlet, under ``side_by_side_with(_on_the_loop)``. The one step that differs, calling the
lanes' work at once, then starts each lane with ``run_in_greenlet`` as an asyncio task and awaits
them together, instead of handing them to a thread pool.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

from framework.aio.bridge import run_in_greenlet, wait_for
from framework.errors import DefinitionError
from framework.projections.catch_up import CatchUpRunner, side_by_side_with
from framework.projections.engine import ApplyReport
from framework.projections.publisher import EventBridgePublisher

__all__ = ["AsyncCatchUpRunner"]

T = TypeVar("T")


class AsyncCatchUpRunner:
    """The async face of ``runner``: ``await run(since=..., until=...)``, ``await rebuild()``.

    Same results, checkpoints, parking (the ``ApplyReport``) and progress as ``runner.run`` and
    ``runner.rebuild``, because those very methods run, in a bridged greenlet; only the lanes
    (``workers`` at a time) are greenlets awaited on the loop instead of threads. The runner is
    shared, not copied: it stays usable from threads that do not run the loop.

    The store must be in memory (one lane, nothing waits) or opened by ``open_async_store`` in
    the running loop; so must the position store's, and the read models' client if a projector
    is rebuilt. A first failure stops the other lanes after their current chunk, each
    checkpointed, and is raised here. Cancelling the awaiting task cancels every lane at the
    request it waits for (as a killed process would stop it: positions and read models move in
    one transaction, so the next run goes on from the checkpoints exactly once) and waits for
    them to unwind before it propagates.

    The EventBridge publisher is refused: it sends through boto3 clients of its own, which
    would block the loop, and keeps what its handlers queued per thread, not per lane.
    """

    def __init__(self, runner: CatchUpRunner) -> None:
        for engine in runner.engines:
            if isinstance(engine.projector, EventBridgePublisher):
                raise DefinitionError(
                    f"{engine.name} cannot run on the async catch-up runner: the publisher "
                    "sends through blocking clients and queues per thread; run it with "
                    "CatchUpRunner in a thread"
                )
        self.runner = runner

    async def run(
        self, *, since: dt.datetime | None = None, until: dt.datetime | None = None
    ) -> ApplyReport:
        """``CatchUpRunner.run`` (same arguments, same report), its lanes on the loop."""
        return await run_in_greenlet(_lanes_on_the_loop, self.runner.run, since=since, until=until)

    async def rebuild(self) -> ApplyReport:
        """``CatchUpRunner.rebuild``: empty, forget, replay, with the lanes on the loop."""
        return await run_in_greenlet(_lanes_on_the_loop, self.runner.rebuild)


def _lanes_on_the_loop(
    method: Callable[..., ApplyReport], **arguments: dt.datetime | None
) -> ApplyReport:
    with side_by_side_with(_on_the_loop):
        return method(**arguments)


def _on_the_loop(calls: Sequence[Callable[[], T]], stop: threading.Event, limit: int) -> list[T]:
    """``SideBySide`` for the runner's greenlet: the calls as tasks on the loop, awaited."""
    return wait_for(_gathered(calls, stop, limit))


async def _gathered(calls: Sequence[Callable[[], T]], stop: threading.Event, limit: int) -> list[T]:
    """Run each call in a greenlet of its own, ``limit`` at a time; the results in order.

    As the thread pool does: a failure sets ``stop`` and is raised once the others are done.
    Cancelled, it cancels the calls and waits for them to unwind (their ``finally`` blocks run),
    so that no lane goes on alone after the run has ended.
    """
    slots = asyncio.Semaphore(limit)

    async def one(call: Callable[[], T]) -> T:
        async with slots:
            return await run_in_greenlet(call)

    tasks = [asyncio.ensure_future(one(call)) for call in calls]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        if any(task.done() and not task.cancelled() and task.exception() for task in tasks):
            stop.set()  # the others stop after their current chunk, checkpointed
            await asyncio.wait(tasks)
    except asyncio.CancelledError:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)
        raise
    return [task.result() for task in tasks]  # the first failure in lane order, if any

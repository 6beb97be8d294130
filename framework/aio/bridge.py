"""Run the framework's synchronous command path inside an asyncio event loop, without threads.

Why: the rules of a command (routing, retries, idempotency, snapshots, the cache, claims, personal
data, the store's conditions and error mapping) are written once, as plain synchronous code. An
async face that copied them would drift from them. Instead, ``run_in_greenlet`` runs that very
code in a child greenlet; wherever it would block on I/O, the client it talks to calls
``wait_for(awaitable)``, which switches back to the greenlet running the event loop, awaits there,
and switches into the child again with the result (or raises the awaitable's exception in it).
The sync code never knows: a call returns a value or raises, as in a thread.

Each bridged call also waits its own way: ``framework.pauses.pause`` (the retry backoff among
others) awaits ``asyncio.sleep`` in a bridged greenlet instead of stopping the loop.

Concurrency is asyncio's: many tasks may each run a bridged call; only one greenlet runs at a
time, on the loop's thread, and they interleave only at ``wait_for``. A lock of the sync code held
across a ``wait_for`` would therefore deadlock the loop when another task wanted it: the shared
code takes its locks for bookkeeping only, never around I/O (tests check it under load).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar, cast

import greenlet

from framework.pauses import pausing_with

__all__ = ["BridgeError", "in_bridge", "run_in_greenlet", "wait_for"]

P = ParamSpec("P")
T = TypeVar("T")


class BridgeError(RuntimeError):
    """``wait_for`` was called where nothing can await for it: not inside ``run_in_greenlet``."""


class _Bridged(greenlet.greenlet):  # type: ignore[misc]
    """A greenlet started by ``run_in_greenlet``: its parent runs the event loop."""


def in_bridge() -> bool:
    """Whether the running code is inside ``run_in_greenlet`` (so ``wait_for`` can await)."""
    return isinstance(greenlet.getcurrent(), _Bridged)


def wait_for(awaitable: Awaitable[T]) -> T:
    """Await ``awaitable`` on the event loop from sync code running in ``run_in_greenlet``.

    Switches to the loop's greenlet, which awaits it, and returns its result here (or raises its
    exception here). Outside a bridged greenlet there is no loop to switch to, and blocking the
    thread on one would deadlock if it is this thread's loop: that raises ``BridgeError``.
    """
    current = greenlet.getcurrent()
    if not isinstance(current, _Bridged):
        if asyncio.iscoroutine(awaitable):
            awaitable.close()  # never awaited: say so by our error, not by a RuntimeWarning
        raise BridgeError(
            "wait_for() needs a caller inside run_in_greenlet(): this code runs on an async "
            "client, so call it through the async face (framework.aio), e.g. "
            "await run_in_greenlet(fn, ...)"
        )
    return cast(T, current.parent.switch(awaitable))


def _sleep_on_loop(seconds: float) -> None:
    """``pause`` inside a bridged greenlet: let the loop run other tasks meanwhile."""
    wait_for(asyncio.sleep(seconds))


def _bridged_call(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    with pausing_with(_sleep_on_loop):
        return function(*args, **kwargs)


async def run_in_greenlet(function: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run the sync ``function(*args, **kwargs)`` in a child greenlet; return what it returns.

    Every ``wait_for`` inside it is awaited here, in the calling task: other tasks run meanwhile.
    An exception raised by an awaited call is raised inside ``function`` at its ``wait_for``; one
    that ``function`` lets out is raised here. Cancelling the task raises ``CancelledError`` at
    the pending ``wait_for``, so the sync code unwinds through its ``finally`` blocks.

    The child runs in a copy of the caller's context (log ids, trace span, as set by the
    caller), as a task does.
    """
    child = _Bridged(_bridged_call)
    child.gr_context = contextvars.copy_context()
    request: Any = child.switch(function, *args, **kwargs)
    while not child.dead:
        try:
            value = await request
        except BaseException as error:  # the sync code decides what to do with it
            request = child.throw(error)
        else:
            request = child.switch(value)
    return cast(T, request)

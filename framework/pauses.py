"""One way for the framework's own code to wait: ``pause(seconds)``.

The command path waits in a few places (the backoff between attempts of a command, the back-off
before fetching unprocessed feed markers again, the wait for new tables). In a thread, waiting
is ``time.sleep``. The same code also runs inside a greenlet bridged to an asyncio event loop
(``framework.aio``): there ``time.sleep`` would stop the whole loop, every other command with it,
so the bridge installs, for the code it runs, a sleeper that awaits ``asyncio.sleep`` instead.

The sleeper lives in a context variable, so each command (each greenlet, each asyncio task, each
thread) waits its own way, and the sync code keeps one copy: it calls ``pause`` and does not know
which kind of wait it gets.

Taking a lock is a wait too: ``holding(lock)`` blocks the thread in a thread, and in a bridged
greenlet tries and pauses on the loop until the lock is free, because its holder may be another
greenlet of the same thread, suspended on the loop inside the lock (a projector's handler doing
I/O): blocking the thread would keep that holder from ever letting go.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from threading import Lock

__all__ = ["holding", "pause", "pausing_with"]

Sleeper = Callable[[float], None]

_sleeper: ContextVar[Sleeper | None] = ContextVar("framework_sleeper", default=None)


def pause(seconds: float) -> None:
    """Wait ``seconds`` in the way the running code must: see the module docstring."""
    sleeper = _sleeper.get()
    if sleeper is None:
        time.sleep(seconds)
    else:
        sleeper(seconds)


@contextlib.contextmanager
def pausing_with(sleeper: Sleeper) -> Iterator[None]:
    """Within the block (in this context only), ``pause`` waits by calling ``sleeper``."""
    token = _sleeper.set(sleeper)
    try:
        yield
    finally:
        _sleeper.reset(token)


LOCK_RETRY_SECONDS = 0.001
"""How long a bridged greenlet that found a lock taken pauses before it tries again."""


@contextlib.contextmanager
def holding(lock: Lock) -> Iterator[None]:
    """Within the block, hold ``lock``, waiting for it the way the running code must wait.

    In a thread (no sleeper installed): a blocking acquire. Under a sleeper (a bridged greenlet):
    a non-blocking try, then ``pause`` so the loop can run the holder, until the lock is free.
    """
    if _sleeper.get() is None:
        lock.acquire()
    else:
        while not lock.acquire(blocking=False):
            pause(LOCK_RETRY_SECONDS)
    try:
        yield
    finally:
        lock.release()

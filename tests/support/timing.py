"""Waiting for what happens in another thread, and a moment no run reaches."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T | None], timeout: float = 20.0, interval: float = 0.05
) -> T:
    """Poll ``condition`` until it returns something truthy, and return that; fail after
    ``timeout`` seconds. For what a background thread (a poller, a catch-up) brings about.
    Typed so that a condition returning ``X | None`` gives an ``X``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"not within {timeout} s"
        time.sleep(interval)


def far_future() -> dt.datetime:
    """A day from now: the ``until`` of a catch-up that must read everything there is."""
    return dt.datetime.now(dt.UTC) + dt.timedelta(days=1)

"""The asyncio face of the framework: the same command path, awaited instead of blocking.

- ``AsyncApplication(application)``: ``await app.handle(command)``, ``await app.get(Type, id)``;
- ``run_in_greenlet`` and ``wait_for``: the bridge it is built on, for sync code of your own
  (a custom store's client, a key wrapper) that must not block the loop.

Nothing here copies a rule of the sync path: see ``framework.aio.bridge`` for why and how.
"""

from framework.aio.application import AsyncApplication
from framework.aio.bridge import BridgeError, in_bridge, run_in_greenlet, wait_for

__all__ = [
    "AsyncApplication",
    "BridgeError",
    "in_bridge",
    "run_in_greenlet",
    "wait_for",
]

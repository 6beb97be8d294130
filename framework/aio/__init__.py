"""The asyncio face of the framework: the same command path, awaited instead of blocking.

- ``AsyncApplication(application)``: ``await app.handle(command)``, ``await app.get(Type, id)``;
- ``AsyncCatchUpRunner(runner)``: ``await runner.run()``, ``await runner.rebuild()``, a
  ``CatchUpRunner`` whose lanes are greenlets on the loop, their requests awaited side by side;
- ``open_async_store(store)``: a ``DynamoDBEventStore`` whose requests go through aiobotocore
  (imported on first use: an application on the in-memory store does not need aiobotocore);
- ``run_in_greenlet`` and ``wait_for``: the bridge both are built on, for sync code of your own
  (a custom store's client, a key wrapper) that must not block the loop; ``BridgedClient`` gives
  any aiobotocore client the sync surface the framework's adapters call.

Nothing here copies a rule of the sync path: see ``framework.aio.bridge`` for why and how.
"""

from typing import TYPE_CHECKING

from framework.aio.application import AsyncApplication
from framework.aio.bridge import BridgeError, in_bridge, run_in_greenlet, wait_for

if TYPE_CHECKING:
    from framework.aio.catch_up import AsyncCatchUpRunner
    from framework.aio.dynamodb import BridgedClient, open_async_store
else:
    from framework._lazy import lazy_exports

    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "AsyncCatchUpRunner": "framework.aio.catch_up",
            "BridgedClient": "framework.aio.dynamodb",
            "open_async_store": "framework.aio.dynamodb",
        },
    )

__all__ = [
    "AsyncApplication",
    "AsyncCatchUpRunner",
    "BridgeError",
    "BridgedClient",
    "in_bridge",
    "open_async_store",
    "run_in_greenlet",
    "wait_for",
]

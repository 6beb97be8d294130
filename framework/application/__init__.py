"""The write side: what builds and tunes an application.

A command runs down this package, one module a layer: ``application`` routes it, retries it and
answers a repeat with its first result; ``unit_of_work`` tracks what the command loaded and
changed and builds the change set; ``repository`` loads an aggregate (cache, snapshot, the events
after it). ``snapshots``, ``cache`` and ``results`` are the policies, the cache and the answer they
share. Nothing here calls back up, and an import-linter contract holds it.

Every name is imported on first use: the root package imports the snapshot policies from here,
and a domain module must not pay for the rest of the write side.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from framework.application.application import Application, Backoff
    from framework.application.cache import AggregateCache
    from framework.application.results import CommandResult
    from framework.application.snapshots import EveryNEvents, NoSnapshots, SnapshotPolicy
    from framework.application.unit_of_work import UnitOfWork
else:
    from framework._lazy import lazy_exports

    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "AggregateCache": "framework.application.cache",
            "Application": "framework.application.application",
            "Backoff": "framework.application.application",
            "CommandResult": "framework.application.results",
            "EveryNEvents": "framework.application.snapshots",
            "NoSnapshots": "framework.application.snapshots",
            "SnapshotPolicy": "framework.application.snapshots",
            "UnitOfWork": "framework.application.unit_of_work",
        },
    )

__all__ = [
    "AggregateCache",
    "Application",
    "Backoff",
    "CommandResult",
    "EveryNEvents",
    "NoSnapshots",
    "SnapshotPolicy",
    "UnitOfWork",
]

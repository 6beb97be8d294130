"""Store wrappers for tests: record what the application asks, or make a commit fail."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from framework.store import ChangeSet, EventStore, InMemoryEventStore, InMemoryPositionStore
from framework.store.positions import Position


class SpyStore:
    """Delegates to an in-memory store and records each call as ``(method, args)``.

    ``before_commit`` runs before each commit is passed on, with the attempt number (1-based):
    a test uses it to raise an error or to let a competing command commit first.
    """

    def __init__(self, inner: EventStore | None = None) -> None:
        self.inner = inner or InMemoryEventStore()
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.commits = 0
        self.before_commit: Callable[[int, ChangeSet], None] | None = None

    def commit(self, change_set: ChangeSet) -> None:
        self.commits += 1
        self.calls.append(("commit", (change_set.command_id,)))
        if self.before_commit is not None:
            self.before_commit(self.commits, change_set)
        self.inner.commit(change_set)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)

        def recorded(*args: Any) -> Any:
            self.calls.append((name, args))
            return method(*args)

        return recorded

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


class CountingPositions(InMemoryPositionStore):
    """Positions in memory that count, per stream, how often its position was read."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: Counter[str] = Counter()

    def get_many(self, projector: str, streams: Sequence[str]) -> dict[str, Position]:
        self.reads.update(streams)
        return super().get_many(projector, streams)

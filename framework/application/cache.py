"""An optional in-process cache of aggregates, so that a hot aggregate commits with one request.

Without it every command reads its aggregate (a ``Query``, plus a ``GetItem`` with snapshots)
before the ``TransactWriteItems``. With it, an aggregate this process committed recently is taken
from memory and only the commit is sent. That is safe because the commit is conditional on the
version every aggregate of the command had when loaded, the ones it changes (their version
condition) and the ones it only read (a ``ConditionCheck`` in the same transaction): if another
process changed any of them meanwhile, the commit fails with ``ConcurrencyError`` and the command
is retried on fresh state. The stale entry is not dropped: it is a committed state, so the retry
reads only the events after it and caches the result (see ``Repository.load``); only a command
that gives up drops its entries. The cost of a stale entry is one refused request and one short
read; no decision is ever committed on a stale copy.

Entries are copied in and out, so a command that fails half-way cannot leave a half-changed
aggregate in the cache.
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from typing import TypeVar

from framework.domain import Aggregate
from framework.subjects import Subject

A = TypeVar("A", bound=Aggregate)


class AggregateCache:
    """A bounded, thread-safe LRU of aggregates by (class, id)."""

    def __init__(self, max_entries: int = 10_000) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[type[Aggregate], str], Aggregate] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, aggregate_class: type[A], aggregate_id: str) -> A | None:
        """A private copy of the cached aggregate, or ``None``."""
        key = (aggregate_class, aggregate_id)
        with self._lock:
            cached = self._entries.get(key)
            if cached is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
        return copy.deepcopy(cached)  # type: ignore[return-value]

    def put(self, aggregate: Aggregate) -> None:
        """Remember ``aggregate`` as committed (a copy is kept)."""
        kept = copy.deepcopy(aggregate)
        key = (type(aggregate), aggregate.id)
        with self._lock:
            self._store(key, kept)

    def _store(self, key: tuple[type[Aggregate], str], kept: Aggregate) -> None:
        """Insert under the lock, most recent last, and drop the least recent beyond the bound."""
        self._entries[key] = kept
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def put_if_newer(self, aggregate: Aggregate) -> None:
        """Remember ``aggregate`` (a copy) unless the cache already holds it at a newer version.

        For states read back from the store (a retry's reload): another thread of this process
        may have committed, and cached, a later version meanwhile; that one is kept.
        """
        kept = copy.deepcopy(aggregate)
        key = (type(aggregate), aggregate.id)
        with self._lock:
            held = self._entries.get(key)
            if held is not None and held.version >= kept.version:
                return
            self._store(key, kept)

    def invalidate(self, aggregate_class: type[Aggregate], aggregate_id: str) -> None:
        """Forget one aggregate (its cached version proved stale)."""
        with self._lock:
            self._entries.pop((aggregate_class, aggregate_id), None)

    def evict_subject(self, subject: Subject) -> int:
        """Forget every aggregate holding personal data of ``subject`` (or being it).

        Called when the subject is forgotten, so that no state read before the forget can be
        served, or snapshotted, again. Returns how many entries went.
        """
        with self._lock:
            doomed = [
                key
                for key, aggregate in self._entries.items()
                if subject in aggregate.personal_subjects
                or (aggregate.aggregate_type(), aggregate.id) == subject
            ]
            for key in doomed:
                del self._entries[key]
        return len(doomed)

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

"""Snapshot policies: when to store an aggregate's state so loading stays fast.

A policy is any callable ``policy(aggregate, previous_version) -> bool``, asked after a command
changed the aggregate (whose ``version`` is then the new version). The snapshot is written in the
same transaction as the events, so it can never describe a version that was not committed.
"""

from __future__ import annotations

from typing import Protocol

import attrs

from framework.domain import Aggregate
from framework.errors import DefinitionError


class SnapshotPolicy(Protocol):
    """Decides whether a snapshot is written with a change set."""

    def __call__(self, aggregate: Aggregate, previous_version: int) -> bool:
        """True to write a snapshot of ``aggregate`` at its new version."""
        ...


@attrs.frozen
class EveryNEvents:
    """Snapshot each time the version crosses a multiple of ``n``.

    Crossing, not landing on: a command that emits several events and jumps from 98 to 103 still
    takes the snapshot due at 100 (at 103), so no stream ever goes longer than ``n`` events (plus
    one command's worth) without one.
    """

    n: int

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.n, int) or isinstance(self.n, bool) or self.n < 1:
            raise DefinitionError(f"EveryNEvents needs a positive int, got {self.n!r}")

    def __call__(self, aggregate: Aggregate, previous_version: int) -> bool:
        return aggregate.version // self.n > previous_version // self.n


@attrs.frozen
class NoSnapshots:
    """Never snapshot: every load replays the whole stream (and skips the snapshot read)."""

    def __call__(self, aggregate: Aggregate, previous_version: int) -> bool:
        return False

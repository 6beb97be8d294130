"""A replay raises the collector's first threshold while it runs, and leaves the collector as it
found it: after overlapping replays, after a failure, when collection is off, and when something
else changed the thresholds meanwhile."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from decimal import Decimal

import pytest

from framework import Projector, event_handler
from framework.projections import CatchUpRunner, Envelope
from framework.projections.catch_up import ReplayProgress
from framework.projections.garbage_collection import fewer_young_collections
from framework.store import InMemoryEventStore, InMemoryPositionStore
from framework.testing.bank import Deposited
from framework.testing.records import change_set

DEFAULT = (700, 10, 10)


@pytest.fixture(autouse=True)
def known_thresholds() -> Iterator[None]:
    saved = gc.get_threshold()
    gc.set_threshold(*DEFAULT)
    yield
    gc.set_threshold(*saved)


def test_the_threshold_is_raised_inside_and_restored_after() -> None:
    with fewer_young_collections(50_000):
        assert gc.get_threshold() == (50_000, 10, 10)
    assert gc.get_threshold() == DEFAULT


def test_a_failure_inside_still_restores() -> None:
    with pytest.raises(RuntimeError), fewer_young_collections(50_000):
        raise RuntimeError("the replay failed")
    assert gc.get_threshold() == DEFAULT


def test_overlapping_holders_restore_only_when_the_last_one_leaves() -> None:
    first_inside, second_inside = threading.Event(), threading.Event()
    first_left = threading.Event()
    seen: list[tuple[int, int, int]] = []

    def second() -> None:
        first_inside.wait()
        with fewer_young_collections(50_000):
            second_inside.set()
            first_left.wait()
            seen.append(gc.get_threshold())  # the first holder left: still raised for us

    thread = threading.Thread(target=second)
    thread.start()
    with fewer_young_collections(50_000):
        first_inside.set()
        second_inside.wait()
    first_left.set()
    thread.join()

    assert seen == [(50_000, 10, 10)]
    assert gc.get_threshold() == DEFAULT


def test_automatic_collection_turned_off_stays_off() -> None:
    gc.set_threshold(0, 10, 10)
    with fewer_young_collections(50_000):
        assert gc.get_threshold() == (0, 10, 10)
    assert gc.get_threshold() == (0, 10, 10)


def test_a_less_frequent_setting_is_not_lowered() -> None:
    gc.set_threshold(100_000, 10, 10)
    with fewer_young_collections(50_000):
        assert gc.get_threshold() == (100_000, 10, 10)
    assert gc.get_threshold() == (100_000, 10, 10)


def test_a_setting_changed_meanwhile_is_kept() -> None:
    with fewer_young_collections(50_000):
        gc.set_threshold(2_000, 5, 5)  # the application tuned its own collector
    assert gc.get_threshold() == (2_000, 5, 5)


def test_a_threshold_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"), fewer_young_collections(0):
        pass
    with pytest.raises(ValueError, match="at least 1"):
        CatchUpRunner(InMemoryEventStore(), InMemoryPositionStore(), [], young_gc_threshold=0)


class Total(Projector, name="total"):
    def __init__(self) -> None:
        super().__init__()
        self.total = Decimal(0)

    @event_handler(Deposited)
    def _deposited(self, event: Deposited, envelope: Envelope) -> None:
        self.total += event.amount


def replay_seeing_thresholds(threshold: int | None = 50_000) -> list[tuple[int, int, int]]:
    store = InMemoryEventStore()
    store.commit(change_set([("acc-1", 0, 3)]))
    seen: list[tuple[int, int, int]] = []

    def on_progress(progress: ReplayProgress) -> None:
        seen.append(gc.get_threshold())

    runner = CatchUpRunner(
        store,
        InMemoryPositionStore(),
        [Total()],
        on_progress=on_progress,
        young_gc_threshold=threshold,
    )
    runner.run()
    return seen


def test_a_replay_runs_with_fewer_collections_and_restores_them() -> None:
    assert replay_seeing_thresholds() == [(50_000, 10, 10)]
    assert gc.get_threshold() == DEFAULT


def test_a_replay_can_leave_the_collector_alone() -> None:
    assert replay_seeing_thresholds(None) == [DEFAULT]
    assert replay_seeing_thresholds(5_000) == [(5_000, 10, 10)]

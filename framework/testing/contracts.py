"""Contract suites for the framework's ports, shipped so that an adapter of your own can run them.

Subclass a contract in one of your test modules and give it the fixture it asks for; pytest then
runs every test of the contract against your adapter::

    from framework.testing.contracts import PositionStoreContract

    class TestMyPositionStore(PositionStoreContract):
        @pytest.fixture
        def positions(self) -> PositionStore:
            return MyPositionStore(...)

The framework's own adapters run the same suites (``tests/contract/``): what they promise is
what yours must keep.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from framework.encryption import FORGOTTEN, WrappedKeyStorage
from framework.projections.deadlines import (
    CancelResult,
    Deadline,
    DeadlineStatus,
    DeadlineStore,
)
from framework.store.keys import feed_checkpoint_key
from framework.store.large_payloads import PayloadStore
from framework.store.positions import (
    ParkedEvent,
    PositionConflict,
    PositionStore,
    StreamAdvance,
)
from framework.testing.event_store_contract import EventStoreContract

__all__ = [
    "DeadlineStoreContract",
    "EventStoreContract",
    "KeyStorageContract",
    "PayloadStoreContract",
    "PositionStoreContract",
]


def _parked(version: int) -> ParkedEvent:
    return ParkedEvent(
        version=version,
        error="ValueError: refused",
        attempts=3,
        parked_at=dt.datetime.now(dt.UTC),
    )


class PositionStoreContract:
    """What every ``PositionStore`` must do. Subclasses provide the ``positions`` fixture.

    Positions are per projector and stream, move only from the version they are expected at, and
    never while an event is parked; a reset forgets one projector's positions and checkpoints
    and no other's; a lease is held by one owner at a time until it expires.
    """

    def test_an_unseen_stream_is_at_version_0(self, positions: PositionStore) -> None:
        position = positions.get("p", "Account#a")
        assert (position.projector, position.stream, position.version) == ("p", "Account#a", 0)
        assert position.parked is None
        assert positions.get_many("p", ["Account#a", "Account#b"]) == {
            "Account#a": position,
            "Account#b": positions.get("p", "Account#b"),
        }

    def test_a_position_moves_only_from_the_version_expected(
        self, positions: PositionStore
    ) -> None:
        positions.advance("p", "Account#a", 0, 3)
        with pytest.raises(PositionConflict):
            positions.advance("p", "Account#a", 0, 5)  # another runner got to 3 first
        with pytest.raises(PositionConflict):
            positions.advance("p", "Account#a", 2, 5)
        positions.advance("p", "Account#a", 3, 5)
        assert positions.get("p", "Account#a").version == 5
        assert positions.get("q", "Account#a").version == 0  # per projector

    def test_many_advances_report_the_streams_another_runner_moved(
        self, positions: PositionStore
    ) -> None:
        positions.advance("p", "Account#b", 0, 2)
        lost = positions.advance_many("p", [("Account#a", 0, 1), ("Account#b", 0, 4)])
        assert lost == ["Account#b"]
        assert positions.get("p", "Account#a").version == 1
        assert positions.get("p", "Account#b").version == 2

    def test_advances_together_move_all_or_none(self, positions: PositionStore) -> None:
        assert positions.advance_together(
            "p", [StreamAdvance("Account#a", 0, 2, ()), StreamAdvance("Account#b", 0, 3, ())]
        )
        assert positions.get("p", "Account#a").version == 2
        moved = positions.advance_together(
            "p", [StreamAdvance("Account#a", 2, 4, ()), StreamAdvance("Account#b", 0, 5, ())]
        )
        assert not moved  # b is not at 0: nothing moved, a included
        assert positions.get("p", "Account#a").version == 2
        assert positions.get("p", "Account#b").version == 3

    def test_a_parked_event_holds_its_stream_until_released(self, positions: PositionStore) -> None:
        positions.advance("p", "Account#a", 0, 4)
        positions.park("p", "Account#a", 4, _parked(5))
        held = positions.get("p", "Account#a")
        assert held.version == 4 and held.parked is not None and held.parked.version == 5
        assert held.parked.error == "ValueError: refused" and held.parked.attempts == 3
        with pytest.raises(PositionConflict):
            positions.advance("p", "Account#a", 4, 5)  # nothing moves past a parked event
        assert [p.stream for p in positions.parked("p")] == ["Account#a"]
        assert positions.parked("q") == []

        retried = positions.release("p", "Account#a", skip=False)
        assert (retried.version, retried.parked) == (4, None)
        positions.park("p", "Account#a", 4, _parked(5))
        skipped = positions.release("p", "Account#a", skip=True)
        assert (skipped.version, skipped.parked) == (5, None)
        assert positions.parked() == []

    def test_parking_at_a_stale_version_is_a_conflict(self, positions: PositionStore) -> None:
        positions.advance("p", "Account#a", 0, 4)
        with pytest.raises(PositionConflict):
            positions.park("p", "Account#a", 3, _parked(4))
        assert positions.get("p", "Account#a").parked is None

    def test_a_reset_forgets_one_projectors_positions_and_checkpoints(
        self, positions: PositionStore
    ) -> None:
        positions.advance("p", "Account#a", 0, 2)
        positions.advance("p", "Account#b", 0, 1)
        positions.advance("q", "Account#a", 0, 7)
        positions.put_checkpoint(feed_checkpoint_key("p"), "2026-12-01T00:00:00+00:00")
        positions.put_checkpoint(feed_checkpoint_key("q"), "2026-12-02T00:00:00+00:00")
        assert sorted(p.stream for p in positions.positions("p")) == ["Account#a", "Account#b"]

        assert positions.reset("p") >= 2
        assert positions.positions("p") == []
        assert positions.get("p", "Account#a").version == 0
        assert positions.get_checkpoint(feed_checkpoint_key("p")) is None
        assert positions.get("q", "Account#a").version == 7
        assert positions.get_checkpoint(feed_checkpoint_key("q")) == "2026-12-02T00:00:00+00:00"

    def test_a_checkpoint_is_overwritten(self, positions: PositionStore) -> None:
        key = feed_checkpoint_key("p")
        assert positions.get_checkpoint(key) is None
        positions.put_checkpoint(key, "one")
        positions.put_checkpoint(key, "two")
        assert positions.get_checkpoint(key) == "two"

    def test_a_lease_has_one_owner_until_it_expires_or_is_released(
        self, positions: PositionStore
    ) -> None:
        minute = dt.timedelta(minutes=1)
        assert positions.acquire_lease("poller", "one", minute)
        assert positions.acquire_lease("poller", "one", minute)  # renewed by its owner
        assert not positions.acquire_lease("poller", "two", minute)
        positions.release_lease("poller", "two")  # not its lease: nothing happens
        assert not positions.acquire_lease("poller", "two", minute)
        positions.release_lease("poller", "one")
        assert positions.acquire_lease("poller", "two", minute)
        assert positions.acquire_lease("other", "one", minute)  # leases are per name

    def test_an_expired_lease_can_be_taken_over(self, positions: PositionStore) -> None:
        assert positions.acquire_lease("poller", "one", dt.timedelta(milliseconds=-1))
        assert positions.acquire_lease("poller", "two", dt.timedelta(minutes=1))


class KeyStorageContract:
    """What every ``WrappedKeyStorage`` must do. Subclasses provide the ``key_storage`` fixture.

    A subject's first key is kept whoever races to create it; a forgotten subject keeps a
    tombstone for good, so that no fresh key is ever minted for it; subjects are independent.
    """

    def test_the_first_key_saved_is_the_one_kept(self, key_storage: WrappedKeyStorage) -> None:
        assert key_storage.load("User#u1") is None
        assert key_storage.save_if_absent("User#u1", b"first") == b"first"
        assert key_storage.save_if_absent("User#u1", b"second") == b"first"
        assert key_storage.load("User#u1") == b"first"

    def test_a_forgotten_subject_never_gets_a_key_again(
        self, key_storage: WrappedKeyStorage
    ) -> None:
        key_storage.save_if_absent("User#u1", b"key")
        key_storage.forget("User#u1")
        assert key_storage.load("User#u1") is FORGOTTEN
        assert key_storage.save_if_absent("User#u1", b"fresh") is FORGOTTEN
        assert key_storage.load("User#u1") is FORGOTTEN

    def test_a_subject_forgotten_before_it_had_a_key_stays_forgotten(
        self, key_storage: WrappedKeyStorage
    ) -> None:
        key_storage.forget("User#u2")
        assert key_storage.save_if_absent("User#u2", b"fresh") is FORGOTTEN

    def test_subjects_sharing_an_id_are_independent(self, key_storage: WrappedKeyStorage) -> None:
        key_storage.save_if_absent("Customer#42", b"customer")
        key_storage.save_if_absent("Employee#42", b"employee")
        key_storage.forget("Customer#42")
        assert key_storage.load("Employee#42") == b"employee"


class PayloadStoreContract:
    """What every ``PayloadStore`` must do. Subclasses provide the ``payloads`` fixture."""

    def test_what_is_put_is_got_back_byte_for_byte(self, payloads: PayloadStore) -> None:
        data = bytes(range(256)) * 1024
        payloads.put("Account/a1/1", data)
        assert payloads.get("Account/a1/1") == data
        assert payloads.get("Account/a1/2") is None

    def test_a_put_replaces_and_a_delete_removes(self, payloads: PayloadStore) -> None:
        payloads.put("k", b"one")
        payloads.put("k", b"two")
        assert payloads.get("k") == b"two"
        payloads.delete("k")
        assert payloads.get("k") is None
        payloads.delete("k")  # deleting what is not there is not an error

    def test_a_payload_store_names_its_bucket(self, payloads: PayloadStore) -> None:
        assert isinstance(payloads.bucket, str) and payloads.bucket


_T0 = dt.datetime(2030, 1, 1, 12, 0, tzinfo=dt.UTC)
_LEASE = dt.timedelta(minutes=2)


def _deadline(name: str, due: dt.datetime = _T0) -> Deadline:
    return Deadline(
        deadline_id=f"d-{name}",
        process="contract",
        due_at=due,
        command_type="Ping",
        command=json.dumps({"target": name}, separators=(",", ":")),
        correlation_id=f"corr-{name}",
        causation_id=f"cause-{name}",
        created_at=_T0 - dt.timedelta(minutes=30),
    )


class DeadlineStoreContract:
    """What every ``DeadlineStore`` must do. Subclasses provide the ``deadlines`` fixture.

    A deadline is stored once whatever how often it is scheduled; what is due is listed earliest
    first; a claim holds it for one runner until its lease expires; only the holder marks it
    done; cancelling says what it found. Runners race on these conditions alone.
    """

    def test_scheduling_twice_stores_one_deadline(self, deadlines: DeadlineStore) -> None:
        assert deadlines.schedule(_deadline("a"))
        assert not deadlines.schedule(_deadline("a", _T0 + dt.timedelta(hours=9)))
        stored = deadlines.get("d-a")
        assert stored is not None and stored.due_at == _T0
        assert (stored.correlation_id, stored.causation_id) == ("corr-a", "cause-a")
        assert stored.status is DeadlineStatus.PENDING and stored.command == '{"target":"a"}'
        assert deadlines.get("d-none") is None

    def test_what_is_due_comes_earliest_first(self, deadlines: DeadlineStore) -> None:
        deadlines.schedule(_deadline("late", _T0 + dt.timedelta(seconds=5)))
        deadlines.schedule(_deadline("early", _T0))
        deadlines.schedule(_deadline("future", _T0 + dt.timedelta(hours=1)))
        due = deadlines.due(_T0 + dt.timedelta(seconds=5))
        assert [d.deadline_id for d in due] == ["d-early", "d-late"]
        assert [d.deadline_id for d in deadlines.due(_T0, limit=1)] == ["d-early"]

    def test_a_claim_holds_a_deadline_for_one_runner(self, deadlines: DeadlineStore) -> None:
        deadlines.schedule(_deadline("a"))
        deadlines.schedule(_deadline("later", _T0 + dt.timedelta(hours=1)))
        assert deadlines.claim("d-later", "r1", _T0, _LEASE) is None  # not due
        claimed = deadlines.claim("d-a", "r1", _T0, _LEASE)
        assert claimed is not None and claimed.lease_owner == "r1" and claimed.attempts == 1
        assert deadlines.claim("d-a", "r2", _T0 + _LEASE / 2, _LEASE) is None
        assert not deadlines.finish("d-a", "r2", DeadlineStatus.FIRED, _T0)  # not r2's
        taken = deadlines.claim("d-a", "r2", _T0 + _LEASE, _LEASE)  # the lease expired
        assert taken is not None and taken.attempts == 2
        assert not deadlines.finish("d-a", "r1", DeadlineStatus.FIRED, _T0)  # r1 lost it
        assert deadlines.finish("d-a", "r2", DeadlineStatus.FIRED, _T0 + _LEASE)
        fired = deadlines.get("d-a")
        assert fired is not None and fired.status is DeadlineStatus.FIRED
        assert fired.fired_at == _T0 + _LEASE
        assert [d.deadline_id for d in deadlines.due(_T0 + dt.timedelta(days=1))] == ["d-later"]

    def test_a_released_deadline_can_be_claimed_again(self, deadlines: DeadlineStore) -> None:
        deadlines.schedule(_deadline("a"))
        assert deadlines.claim("d-a", "r1", _T0, _LEASE) is not None
        deadlines.release("d-a", "r1", "StoreUnavailable: try again")
        again = deadlines.claim("d-a", "r2", _T0, _LEASE)
        assert again is not None and again.last_error == "StoreUnavailable: try again"
        assert deadlines.finish("d-a", "r2", DeadlineStatus.REFUSED, _T0, "DomainError")
        refused = deadlines.get("d-a")
        assert refused is not None and refused.status is DeadlineStatus.REFUSED
        assert refused.last_error == "DomainError"

    def test_cancelling_says_what_it_found(self, deadlines: DeadlineStore) -> None:
        for name in ("pending", "firing", "fired"):
            deadlines.schedule(_deadline(name))
        deadlines.claim("d-firing", "r1", _T0, _LEASE)
        deadlines.claim("d-fired", "r1", _T0, _LEASE)
        deadlines.finish("d-fired", "r1", DeadlineStatus.FIRED, _T0)
        assert deadlines.cancel("d-pending", _T0) is CancelResult.CANCELLED
        assert deadlines.cancel("d-pending", _T0) is CancelResult.ALREADY_CANCELLED
        assert deadlines.cancel("d-firing", _T0) is CancelResult.FIRING
        assert deadlines.cancel("d-fired", _T0) is CancelResult.ALREADY_FIRED
        assert deadlines.cancel("d-none", _T0) is CancelResult.NOT_FOUND
        assert deadlines.claim("d-pending", "r1", _T0, _LEASE) is None
        assert [d.deadline_id for d in deadlines.list(DeadlineStatus.CANCELLED)] == ["d-pending"]
        assert len(deadlines.list()) == 3
        assert [d.deadline_id for d in deadlines.due(_T0 + dt.timedelta(days=1))] == ["d-firing"]

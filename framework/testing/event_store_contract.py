"""The event-store contract: what every ``EventStore`` must do, shipped with the framework.

Subclass ``EventStoreContract`` in a test module of your own and give it a ``store`` fixture that
returns your store on empty tables; pytest then runs every test below against it::

    from framework.testing.contracts import EventStoreContract

    class TestMyStore(EventStoreContract):
        @pytest.fixture
        def store(self) -> EventStore:
            return MyEventStore(...)

The framework's in-memory store, moto and DynamoDB Local run it in ``tests/contract``. The tests
commit change sets built by ``framework.testing.records`` and run the small bank of
``framework.testing.bank`` through an ``Application`` on the store.
"""

from __future__ import annotations

import os
from decimal import Decimal

import attrs
import pytest

from framework import Application, ConcurrencyError, DomainError, EveryNEvents
from framework.errors import (
    AggregateAlreadyExists,
    AggregateNotFound,
    ChangeSetTooLarge,
    CommandIdReused,
    CorruptEvent,
    DuplicateCommand,
    InvalidIdentifier,
    UniqueConstraintViolated,
    UnknownEventType,
)
from framework.store import EventStore, UniqueClaim
from framework.store.items import MAX_ITEM_BYTES, Item
from framework.store.keys import max_id_bytes
from framework.testing.bank import (
    Account,
    ClaimHandle,
    Deposit,
    MoveHandle,
    OpenAccount,
    Transfer,
    Withdraw,
    move_handle,
    transfer,
)
from framework.testing.records import COMMITTED_AT, change_set, plant_item, stored_item, stream_dump

__all__ = ["EventStoreContract"]


class EventStoreContract:
    """Behaviour every ``EventStore`` must show. Subclasses provide the ``store`` fixture.

    The store is given empty tables for every test. A few tests plant items as they would lie in
    DynamoDB (corrupt, old or foreign data) and read the items a commit wrote:
    ``plant_item`` and ``stored_item`` know the framework's stores, and a store of your own
    overrides them.
    """

    def plant_item(self, store: EventStore, table: str, item: Item) -> None:
        """Write ``item`` into ``table`` as is, bypassing every check of the store."""
        plant_item(store, table, item)

    def stored_item(self, store: EventStore, table: str, key: str) -> Item | None:
        """The item of ``table`` under partition key ``key``, as stored (``None`` if absent)."""
        return stored_item(store, table, key)

    def _aggregate_item(self, store: EventStore, key: str) -> Item | None:
        return self.stored_item(store, store.tables.aggregates, key)

    # -- appending and reading -----------------------------------------------------------

    def test_committed_events_read_back_identically(self, store: EventStore) -> None:
        committed = change_set([("a1", 0, 3)])
        store.commit(committed)
        assert list(store.load_events("Account", "a1")) == list(committed.aggregates[0].events)

    def test_the_trace_context_of_events_round_trips(self, store: EventStore) -> None:
        """Each event keeps the trace context it was committed in; events without one have none."""
        traced = change_set([("a1", 0, 2)])
        parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        events = (
            attrs.evolve(traced.aggregates[0].events[0], traceparent=parent, tracestate="k=v"),
            attrs.evolve(traced.aggregates[0].events[1], traceparent=parent),
        )
        traced = attrs.evolve(
            traced, aggregates=(attrs.evolve(traced.aggregates[0], events=events),)
        )
        store.commit(traced)
        store.commit(change_set([("a2", 0, 1)], command_id="untraced"))
        assert list(store.load_events("Account", "a1")) == list(events)
        (untraced,) = store.load_events("Account", "a2")
        assert untraced.traceparent is None and untraced.tracestate is None
        fed = {
            (e.aggregate_id, e.version): (e.traceparent, e.tracestate)
            for e in store.read_feed(since=COMMITTED_AT)
        }
        assert fed == {
            ("a1", 1): (parent, "k=v"),
            ("a1", 2): (parent, None),
            ("a2", 1): (None, None),
        }

    def test_load_after_version_returns_only_later_events(self, store: EventStore) -> None:
        store.commit(change_set([("a1", 0, 2)]))
        store.commit(change_set([("a1", 2, 3)]))
        assert [e.version for e in store.load_events("Account", "a1", 3)] == [4, 5]
        assert [e.version for e in store.load_events("Account", "a1")] == [1, 2, 3, 4, 5]
        assert [e.version for e in store.load_history("Account", "a1", 3)] == [4, 5]
        assert store.load_history("Account", "a1", 5) == []

    def test_the_history_is_the_stored_events_without_their_metadata(
        self, store: EventStore
    ) -> None:
        committed = change_set([("tenant#7#a", 0, 2)], payload=b'{"amount":"12.5"}')
        store.commit(committed)
        store.commit(change_set([("tenant#7#a", 2, 1)], payload=b'{"amount":"-1"}'))
        store.commit(change_set([("tenant#7", 0, 1)], payload=b'{"other":"stream"}'))
        history = store.load_history("Account", "tenant#7#a")
        assert [
            (e.aggregate_type, e.aggregate_id, e.version, e.event_type, e.schema, e.payload)
            for e in history
        ] == [
            (e.aggregate_type, e.aggregate_id, e.version, e.event_type, e.schema, e.payload)
            for e in store.load_events("Account", "tenant#7#a")
        ]
        assert [e.payload for e in history] == [b'{"amount":"12.5"}'] * 2 + [b'{"amount":"-1"}']
        assert {e.stream for e in history} == {"Account#tenant#7#a"}
        assert store.load_history("Account", "nobody") == []

    def test_the_history_reads_an_item_whose_metadata_alone_is_malformed(
        self, store: EventStore
    ) -> None:
        """An aggregate is rebuilt from version, type, schema and payload; a store may not even
        read the rest. ``load_events``, which returns the rest, still refuses the item."""
        store.commit(change_set([("a1", 0, 1)]))
        self.plant_item(
            store,
            store.tables.events,
            {
                "pk": {"S": "Account#a1"},
                "sk": {"N": "2"},
                "event_type": {"S": "Deposited"},
                "schema": {"N": "1"},
                "payload": {"B": b'{"amount":"3"}'},
                "occurred_at": {"S": "not a time"},
            },
        )
        assert [e.payload for e in store.load_history("Account", "a1", 1)] == [b'{"amount":"3"}']
        with pytest.raises(CorruptEvent) as raised:
            store.load_events("Account", "a1")
        assert (raised.value.stream, raised.value.version) == ("Account#a1", 2)

    def test_a_stream_reads_in_version_order_whatever_order_its_items_were_written_in(
        self, store: EventStore
    ) -> None:
        """Items planted behind a stream's last version (an import, a repair) and one
        rewritten in place read back in version order, and ``after_version`` still cuts the
        stream at the right place."""
        store.commit(change_set([("a1", 0, 3)]))
        for version in (9, 5, 7, 2):
            self.plant_item(
                store,
                store.tables.events,
                {
                    "pk": {"S": "Account#a1"},
                    "sk": {"N": str(version)},
                    "event_type": {"S": "Deposited"},
                    "schema": {"N": "1"},
                    "payload": {"B": b'{"planted":%d}' % version},
                },
            )
        assert [e.version for e in store.load_history("Account", "a1")] == [1, 2, 3, 5, 7, 9]
        assert [e.version for e in store.load_history("Account", "a1", 4)] == [5, 7, 9]
        assert [e.version for e in store.load_history("Account", "a1", 5)] == [7, 9]
        assert store.load_history("Account", "a1", 9) == []
        rewritten = store.load_history("Account", "a1", 1)[0]
        assert (rewritten.version, rewritten.payload) == (2, b'{"planted":2}')

    def test_unknown_stream_is_empty(self, store: EventStore) -> None:
        assert store.load_events("Account", "nobody") == []
        assert not store.stream_exists("Account", "nobody")
        assert store.load_snapshot("Account", "nobody") is None

    def test_stream_exists_after_commit(self, store: EventStore) -> None:
        store.commit(change_set([("a1", 0, 1)]))
        assert store.stream_exists("Account", "a1")

    def test_aggregate_ids_may_contain_the_separator(self, store: EventStore) -> None:
        store.commit(change_set([("tenant#7#a", 0, 1)]))
        (event,) = store.load_events("Account", "tenant#7#a")
        assert event.aggregate_id == "tenant#7#a"

    def test_many_events_are_read_across_pages(self, store: EventStore) -> None:
        payload = b'{"note":"' + b"x" * 9000 + b'"}'
        for start in range(0, 240, 80):
            store.commit(change_set([("big", start, 80)], payload=payload))
        versions = [e.version for e in store.load_events("Account", "big")]
        assert versions == list(range(1, 241))
        assert [e.version for e in store.load_history("Account", "big", 7)] == list(range(8, 241))

    # -- optimistic concurrency ----------------------------------------------------------

    def test_creating_an_existing_stream_is_a_concurrency_error(self, store: EventStore) -> None:
        store.commit(change_set([("a1", 0, 2)]))
        before = stream_dump(store, ["a1"])
        with pytest.raises(ConcurrencyError) as raised:
            store.commit(change_set([("a1", 0, 1)]))
        assert (raised.value.aggregate_id, raised.value.expected_version) == ("a1", 0)
        assert raised.value.actual_version == 2
        assert stream_dump(store, ["a1"]) == before

    def test_stale_expected_version_is_a_concurrency_error(self, store: EventStore) -> None:
        store.commit(change_set([("a1", 0, 1)]))
        store.commit(change_set([("a1", 1, 1)]))
        before = stream_dump(store, ["a1"])
        with pytest.raises(ConcurrencyError) as raised:
            store.commit(change_set([("a1", 1, 1)]))
        assert (raised.value.expected_version, raised.value.actual_version) == (1, 2)
        assert stream_dump(store, ["a1"]) == before

    def test_one_conflicting_aggregate_fails_the_whole_change_set(self, store: EventStore) -> None:
        store.commit(change_set([("a1", 0, 1), ("a2", 0, 1)]))
        before = stream_dump(store, ["a1", "a2"])
        with pytest.raises(ConcurrencyError) as raised:
            store.commit(change_set([("a1", 1, 1), ("a2", 0, 1)]))
        assert raised.value.aggregate_id == "a2"
        assert stream_dump(store, ["a1", "a2"]) == before

    # -- aggregates read but not changed -------------------------------------------------

    def test_a_failed_version_check_refuses_the_whole_change_set(self, store: EventStore) -> None:
        store.commit(change_set([("a1", 0, 2), ("a2", 0, 1)]))
        before = stream_dump(store, ["a1", "a2"])
        with pytest.raises(ConcurrencyError) as raised:
            store.commit(change_set([("a2", 1, 1)], checks=[("a1", 1)], command_id="skew"))
        assert (raised.value.aggregate_id, raised.value.expected_version) == ("a1", 1)
        assert raised.value.actual_version == 2
        assert stream_dump(store, ["a1", "a2"]) == before
        assert store.get_processed_command("skew") is None
        store.commit(change_set([("a2", 1, 1)], checks=[("a1", 2)]))
        assert len(store.load_events("Account", "a2")) == 2

    def test_an_aggregate_read_as_absent_must_still_be_absent(self, store: EventStore) -> None:
        store.commit(change_set([("a1", 0, 1)], checks=[("ghost", 0)]))
        store.commit(change_set([("ghost", 0, 3)]))
        with pytest.raises(ConcurrencyError) as raised:
            store.commit(change_set([("a1", 1, 1)], checks=[("ghost", 0)]))
        assert (raised.value.aggregate_id, raised.value.expected_version) == ("ghost", 0)
        assert raised.value.actual_version == 3
        assert len(store.load_events("Account", "a1")) == 1

    def test_a_change_set_that_changes_nothing_records_its_command(self, store: EventStore) -> None:
        store.commit(change_set([("a1", 0, 1)]))
        store.commit(change_set([], checks=[("a1", 1)], command_id="noop"))
        record = store.get_processed_command("noop")
        assert record is not None and record.result == b'{"ok":true}'
        with pytest.raises(DuplicateCommand):
            store.commit(change_set([("a1", 1, 1)], command_id="noop"))
        with pytest.raises(ConcurrencyError):
            store.commit(change_set([], checks=[("a1", 0)], command_id="stale-noop"))
        assert store.get_processed_command("stale-noop") is None
        assert len(store.load_events("Account", "a1")) == 1

    def test_version_checks_count_toward_the_100_item_limit(self, store: EventStore) -> None:
        store.commit(change_set([("r1", 0, 1), ("r2", 0, 1)]))
        with pytest.raises(ChangeSetTooLarge, match="101 transaction items"):
            store.commit(change_set([("a1", 0, 96)], checks=[("r1", 1), ("r2", 1), ("r3", 0)]))
        assert stream_dump(store, ["a1"]) == [[], None]
        store.commit(change_set([("a1", 0, 96)], checks=[("r1", 1), ("r2", 1)]))
        assert len(store.load_events("Account", "a1")) == 96

    # -- idempotency ---------------------------------------------------------------------

    def test_a_processed_command_id_is_refused(self, store: EventStore) -> None:
        store.commit(change_set([("a1", 0, 1)], command_id="same"))
        with pytest.raises(DuplicateCommand) as raised:
            store.commit(change_set([("a2", 0, 1)], command_id="same"))
        assert raised.value.command_id == "same"
        assert store.load_events("Account", "a2") == []

    def test_processed_command_record_keeps_the_result(self, store: EventStore) -> None:
        committed = change_set([("a1", 0, 1)], command_id="c-1")
        store.commit(committed)
        record = store.get_processed_command("c-1")
        assert record is not None
        assert (record.change_set_id, record.result) == (committed.change_set_id, b'{"ok":true}')
        assert record.fingerprint is None
        assert store.get_processed_command("c-unknown") is None

    def test_processed_command_record_keeps_the_payload_fingerprint(
        self, store: EventStore
    ) -> None:
        store.commit(change_set([("a1", 0, 1)], command_id="c-2", fingerprint="f" * 64))
        record = store.get_processed_command("c-2")
        assert record is not None and record.fingerprint == "f" * 64

    # -- unique values -------------------------------------------------------------------

    def test_a_claimed_value_is_refused_to_another_owner(self, store: EventStore) -> None:
        store.commit(change_set([("a1", 0, 1)], claims=[UniqueClaim("email", "x@y", "Account#a1")]))
        with pytest.raises(UniqueConstraintViolated) as raised:
            store.commit(
                change_set([("a2", 0, 1)], claims=[UniqueClaim("email", "x@y", "Account#a2")])
            )
        assert (raised.value.scope, raised.value.value) == ("email", "x@y")
        assert store.load_events("Account", "a2") == []

    def test_the_owner_may_claim_its_value_again(self, store: EventStore) -> None:
        claim = UniqueClaim("email", "x@y", "Account#a1")
        store.commit(change_set([("a1", 0, 1)], claims=[claim]))
        store.commit(change_set([("a1", 1, 1)], claims=[claim]))
        assert len(store.load_events("Account", "a1")) == 2

    def test_a_released_value_can_be_claimed_by_another(self, store: EventStore) -> None:
        store.commit(change_set([("a1", 0, 1)], claims=[UniqueClaim("email", "x@y", "Account#a1")]))
        release = UniqueClaim("email", "x@y", "Account#a1", claim=False)
        store.commit(change_set([("a1", 1, 1)], claims=[release]))
        store.commit(change_set([("a2", 0, 1)], claims=[UniqueClaim("email", "x@y", "Account#a2")]))
        assert len(store.load_events("Account", "a2")) == 1

    def test_only_the_owner_can_release_a_value(self, store: EventStore) -> None:
        store.commit(change_set([("a1", 0, 1)], claims=[UniqueClaim("email", "x@y", "Account#a1")]))
        theft = UniqueClaim("email", "x@y", "Account#a2", claim=False)
        with pytest.raises(UniqueConstraintViolated):
            store.commit(change_set([("a2", 0, 1)], claims=[theft]))
        with pytest.raises(UniqueConstraintViolated):
            store.commit(
                change_set([("a3", 0, 1)], claims=[UniqueClaim("email", "x@y", "Account#a3")])
            )

    def test_two_owners_claiming_one_value_in_one_change_set(self, store: EventStore) -> None:
        claims = [
            UniqueClaim("email", "x@y", "Account#a1"),
            UniqueClaim("email", "x@y", "Account#a2"),
        ]
        with pytest.raises(UniqueConstraintViolated):
            store.commit(change_set([("a1", 0, 1), ("a2", 0, 1)], claims=claims))
        assert stream_dump(store, ["a1", "a2"]) == [[], None, [], None]

    def test_a_value_is_handed_over_in_one_change_set(self, store: EventStore) -> None:
        store.commit(change_set([("a1", 0, 1)], claims=[UniqueClaim("email", "x@y", "Account#a1")]))
        store.commit(change_set([("a2", 0, 1)]))
        handover = [
            UniqueClaim("email", "x@y", "Account#a1", claim=False),
            UniqueClaim("email", "x@y", "Account#a2"),
        ]
        store.commit(change_set([("a1", 1, 1), ("a2", 1, 1)], claims=handover))
        claim = self._aggregate_item(store, "unique#email#x@y")
        assert isinstance(claim, dict) and claim["owner"] == {"S": "Account#a2"}
        with pytest.raises(UniqueConstraintViolated):
            store.commit(
                change_set([("a3", 0, 1)], claims=[UniqueClaim("email", "x@y", "Account#a3")])
            )

    def test_a_handover_of_a_value_held_by_a_third_owner_is_refused(
        self, store: EventStore
    ) -> None:
        store.commit(change_set([("a3", 0, 1)], claims=[UniqueClaim("email", "x@y", "Account#a3")]))
        handover = [
            UniqueClaim("email", "x@y", "Account#a1", claim=False),
            UniqueClaim("email", "x@y", "Account#a2"),
        ]
        with pytest.raises(UniqueConstraintViolated) as raised:
            store.commit(change_set([("a1", 0, 1), ("a2", 0, 1)], claims=handover))
        assert (raised.value.scope, raised.value.value) == ("email", "x@y")
        assert stream_dump(store, ["a1", "a2"]) == [[], None, [], None]
        claim = self._aggregate_item(store, "unique#email#x@y")
        assert isinstance(claim, dict) and claim["owner"] == {"S": "Account#a3"}

    def test_a_free_value_can_be_handed_over(self, store: EventStore) -> None:
        handover = [
            UniqueClaim("email", "x@y", "Account#a1", claim=False),
            UniqueClaim("email", "x@y", "Account#a2"),
        ]
        store.commit(change_set([("a1", 0, 1), ("a2", 0, 1)], claims=handover))
        claim = self._aggregate_item(store, "unique#email#x@y")
        assert isinstance(claim, dict) and claim["owner"] == {"S": "Account#a2"}

    def test_claim_keys_are_unambiguous(self, store: EventStore) -> None:
        store.commit(
            change_set([("a1", 0, 1)], claims=[UniqueClaim("email#work", "x", "Account#a1")])
        )
        store.commit(
            change_set([("a2", 0, 1)], claims=[UniqueClaim("email", "work#x", "Account#a2")])
        )
        store.commit(
            change_set([("a3", 0, 1)], claims=[UniqueClaim("email%23work", "x", "Account#a3")])
        )
        with pytest.raises(UniqueConstraintViolated):
            store.commit(
                change_set([("a4", 0, 1)], claims=[UniqueClaim("email#work", "x", "Account#a4")])
            )
        assert self._aggregate_item(store, "unique#email#work#x") is not None  # unchanged layout
        assert self._aggregate_item(store, "unique#email%23work#x") is not None

    def test_empty_scopes_and_values_are_refused_before_writing(self, store: EventStore) -> None:
        for scope, value in (("", "x"), ("email", "")):
            with pytest.raises(InvalidIdentifier, match="must be a non-empty string"):
                store.commit(
                    change_set([("a1", 0, 1)], claims=[UniqueClaim(scope, value, "Account#a1")])
                )
        assert stream_dump(store, ["a1"]) == [[], None]

    # -- forgetting a subject's key ----------------------------------------------------

    def test_a_forgotten_subjects_key_goes_with_the_change_set_or_not_at_all(
        self, store: EventStore
    ) -> None:
        key_item: Item = {"pk": {"S": "key#a1"}, "wrapped": {"B": b"secret"}}
        self.plant_item(store, store.tables.aggregates, key_item)
        store.commit(change_set([("a1", 0, 1)]))
        with pytest.raises(ConcurrencyError):
            store.commit(attrs.evolve(change_set([("a1", 0, 1)]), forget_keys=("a1",)))
        assert self._aggregate_item(store, "key#a1") == key_item  # refused: the key stays
        store.commit(attrs.evolve(change_set([("a1", 1, 1)]), forget_keys=("a1",)))
        tombstone = self._aggregate_item(store, "key#a1")  # a tombstone: never a fresh key again
        assert isinstance(tombstone, dict) and "wrapped" not in tombstone
        assert "forgotten_at" in tombstone

    # -- snapshots -----------------------------------------------------------------------

    def test_snapshot_is_written_with_the_change_set(self, store: EventStore) -> None:
        store.commit(change_set([("a1", 0, 5)], snapshot_state=b'{"balance":"5"}'))
        snapshot = store.load_snapshot("Account", "a1")
        assert snapshot is not None
        assert (snapshot.version, snapshot.state, snapshot.schema) == (5, b'{"balance":"5"}', "s1")
        store.commit(change_set([("a1", 5, 2)], snapshot_state=b'{"balance":"7"}'))
        latest = store.load_snapshot("Account", "a1")
        assert latest is not None and latest.version == 7

    # -- limits, checked before anything is sent -----------------------------------------

    def test_a_change_set_of_exactly_100_items_is_accepted(self, store: EventStore) -> None:
        # 98 events + the aggregate item + the command item = 100 transaction items.
        store.commit(change_set([("a1", 0, 98)]))
        assert len(store.load_events("Account", "a1")) == 98

    def test_more_than_100_items_is_refused_before_writing(self, store: EventStore) -> None:
        with pytest.raises(ChangeSetTooLarge, match="101 transaction items"):
            store.commit(change_set([("a1", 0, 99)]))
        assert stream_dump(store, ["a1"]) == [[], None]

    def test_an_event_too_large_without_s3_is_refused_before_writing(
        self, store: EventStore
    ) -> None:
        payload = incompressible(350 * 1024)  # incompressible, over the offload threshold
        with pytest.raises(ChangeSetTooLarge, match="S3PayloadStore"):
            store.commit(change_set([("a1", 0, 1)], payload=payload))
        assert stream_dump(store, ["a1"]) == [[], None]

    def test_an_item_over_400_kb_is_refused_before_writing(self, store: EventStore) -> None:
        oversized = attrs.evolve(change_set([("a1", 0, 1)]), result=incompressible(MAX_ITEM_BYTES))
        with pytest.raises(ChangeSetTooLarge, match="per item"):
            store.commit(oversized)
        assert stream_dump(store, ["a1"]) == [[], None]

    def test_a_snapshot_too_large_for_its_item_is_left_out_not_fatal(
        self, store: EventStore
    ) -> None:
        # The state alone fits in an item with 1 KB to spare; with its 990-byte key and its
        # other attributes it does not: the change set commits without the snapshot.
        longest = "x" * max_id_bytes("Account")
        state = incompressible(MAX_ITEM_BYTES - 1024)
        store.commit(change_set([(longest, 0, 1)], snapshot_state=state))
        assert len(store.load_events("Account", longest)) == 1
        assert store.load_snapshot("Account", longest) is None
        store.commit(change_set([(longest, 1, 1)], snapshot_state=b"{}"))
        assert store.load_snapshot("Account", longest) is not None

    def test_a_snapshot_over_the_transaction_limits_is_left_out_not_fatal(
        self, store: EventStore
    ) -> None:
        # 98 events + the aggregate item + the command item = 100: no room for the snapshot.
        store.commit(change_set([("a1", 0, 98)], snapshot_state=b'{"balance":"98"}'))
        assert len(store.load_events("Account", "a1")) == 98
        assert store.load_snapshot("Account", "a1") is None
        # 14 events of 290 KB fit in 4 MB; with a 300 KB snapshot they would not.
        payload = incompressible(290 * 1024)
        store.commit(
            change_set([("a2", 0, 14)], payload=payload, snapshot_state=incompressible(300 * 1024))
        )
        assert len(store.load_events("Account", "a2")) == 14
        assert store.load_snapshot("Account", "a2") is None

    def test_a_change_set_over_4_mb_is_refused_before_writing(self, store: EventStore) -> None:
        payload = incompressible(290 * 1024)
        with pytest.raises(ChangeSetTooLarge, match="per transaction"):
            store.commit(change_set([("a1", 0, 15)], payload=payload))
        assert stream_dump(store, ["a1"]) == [[], None]

    def test_ids_and_claims_too_long_for_their_keys_are_refused_before_writing(
        self, store: EventStore
    ) -> None:
        with pytest.raises(InvalidIdentifier, match="2100 bytes"):
            store.commit(change_set([("x" * 2100, 0, 1)]))
        with pytest.raises(InvalidIdentifier, match="2100 bytes"):
            store.commit(
                change_set([("a1", 0, 1)], claims=[UniqueClaim("email", "y" * 2100, "Account#a1")])
            )
        with pytest.raises(InvalidIdentifier, match="command_id"):
            store.commit(change_set([("a1", 0, 1)], command_id="c" * 2041))
        assert stream_dump(store, ["a1"]) == [[], None]

    # -- identifiers, checked before anything is sent ------------------------------------

    def test_the_longest_valid_id_is_stored_and_one_byte_more_is_refused(
        self, store: EventStore
    ) -> None:
        app = Application(store=store, aggregates=[Account], snapshots={Account: EveryNEvents(1)})
        limit = max_id_bytes("Account")
        assert limit == 1024 - 34 - len("Account#")  # the feed index's sort key binds
        longest = "é" * (limit // 2) + "x" * (limit % 2)  # two bytes a character
        assert len(longest.encode()) == limit
        app.handle(OpenAccount(account_id=longest, owner="Ann"))
        app.handle(Deposit(account_id=longest, amount=Decimal(3)))
        assert app.get(Account, longest).balance == Decimal(3)
        (first, _) = store.load_events("Account", longest)
        assert first.aggregate_id == longest
        too_long = "é" * (limit // 2) + "x" * (limit % 2 + 1)
        plain = Application(store=store, aggregates=[Account])
        for attempt in (
            lambda: app.handle(OpenAccount(account_id=too_long, owner="Ann")),
            lambda: app.handle(Deposit(account_id=too_long, amount=Decimal(1))),
            lambda: app.get(Account, too_long),
            lambda: plain.get(Account, too_long),
            lambda: app.unit_of_work(Deposit(account_id="a", amount=Decimal(1))).get(
                Account, too_long
            ),
        ):
            with pytest.raises(InvalidIdentifier) as raised:
                attempt()
            error = raised.value
            assert (error.aggregate_type, error.length, error.limit) == (
                "Account",
                limit + 1,
                limit,
            )
            assert f"{limit + 1} bytes" in str(error) and f"at most {limit}" in str(error)
        assert not store.stream_exists("Account", longest[:-1])

    def test_empty_and_unencodable_ids_are_refused_alike(self, store: EventStore) -> None:
        app = Application(store=store, aggregates=[Account])
        uow = app.unit_of_work(Deposit(account_id="a", amount=Decimal(1)))
        for bad in ("", "lone\ud800surrogate"):
            for method in (uow.create, uow.get, uow.get_or_create, app.get):
                with pytest.raises(InvalidIdentifier, match="Account id") as raised:
                    method(Account, bad)
                assert raised.value.aggregate_type == "Account"
            with pytest.raises(InvalidIdentifier):
                store.load_events("Account", bad)
        with pytest.raises(InvalidIdentifier, match="Account id '' must not be empty"):
            app.handle(OpenAccount(account_id="", owner="Ann"))
        # Nothing was tracked: a refused id left no version check on a bad key to commit.
        result = uow.commit()
        assert (result.versions, result.events) == ({}, ())

    def test_ids_containing_every_separator_round_trip(self, store: EventStore) -> None:
        app = Application(store=store, aggregates=[Account], snapshots={Account: EveryNEvents(2)})
        for account_id in ("a#b", "a%23b", "50%", "x:y/z", " spaced out ", "#", "%", "unique#x"):
            app.handle(OpenAccount(account_id=account_id, owner="Ann"))
            app.handle(Deposit(account_id=account_id, amount=Decimal(2)))
            assert app.get(Account, account_id).balance == Decimal(2)
            assert [e.aggregate_id for e in store.load_events("Account", account_id)] == [
                account_id,
                account_id,
            ]
        assert not store.stream_exists("Account", "a")

    def test_a_command_id_too_long_for_its_record_is_refused_before_the_handler(
        self, store: EventStore
    ) -> None:
        app = Application(store=store, aggregates=[Account])
        limit = 2048 - len("command#")
        app.handle(OpenAccount(account_id="a", owner="Ann", command_id="é" * (limit // 2)))
        with pytest.raises(InvalidIdentifier, match=f"{limit + 1} bytes"):
            OpenAccount(account_id="b", owner="Bob", command_id="é" * (limit // 2) + "x")
        assert not store.stream_exists("Account", "b")

    # -- corrupt data --------------------------------------------------------------------

    def test_a_malformed_stored_item_is_a_clear_error(self, store: EventStore) -> None:
        store.commit(change_set([("a1", 0, 1)]))
        self.plant_item(
            store,
            store.tables.events,
            {"pk": {"S": "Account#a1"}, "sk": {"N": "2"}, "event_type": {"S": "Deposited"}},
        )
        with pytest.raises(CorruptEvent) as raised:
            store.load_events("Account", "a1")
        assert (raised.value.stream, raised.value.version) == ("Account#a1", 2)
        with pytest.raises(CorruptEvent) as raised:
            store.load_history("Account", "a1")  # no schema, no payload: nothing to rebuild from
        assert (raised.value.stream, raised.value.version) == ("Account#a1", 2)
        assert len(store.load_events("Account", "a2")) == 0

    # -- the application on top of the store ---------------------------------------------

    def test_application_round_trip(self, store: EventStore) -> None:
        app = Application(
            store=store,
            aggregates=[Account],
            handlers=[transfer],
            snapshots={Account: EveryNEvents(3)},
        )
        app.handle(OpenAccount(account_id="a", owner="Ann"))
        app.handle(OpenAccount(account_id="b", owner="Bob"))
        for amount in ("10.50", "20", "0.01"):
            app.handle(Deposit(account_id="a", amount=Decimal(amount)))
        result = app.handle(Transfer(source_id="a", target_id="b", amount=Decimal("5.51")))
        assert result.versions == {"Account#a": 5, "Account#b": 2}
        with pytest.raises(DomainError):
            app.handle(Withdraw(account_id="b", amount=Decimal("100")))
        with pytest.raises(AggregateAlreadyExists):
            app.handle(OpenAccount(account_id="a", owner="Eve"))
        with pytest.raises(AggregateNotFound):
            app.handle(Deposit(account_id="zz", amount=Decimal(1)))
        assert app.get(Account, "a").balance == Decimal("25.00")
        assert app.get(Account, "b").balance == Decimal("5.51")
        snapshot = store.load_snapshot("Account", "a")
        assert snapshot is not None and snapshot.version == 3

    def test_application_unique_claims_move_atomically(self, store: EventStore) -> None:
        app = Application(store=store, aggregates=[Account])
        app.handle(OpenAccount(account_id="a", owner="Ann"))
        app.handle(OpenAccount(account_id="b", owner="Bob"))
        app.handle(ClaimHandle(account_id="a", handle="ann"))
        with pytest.raises(UniqueConstraintViolated):
            app.handle(ClaimHandle(account_id="b", handle="ann"))
        assert app.get(Account, "b").version == 1
        app.handle(ClaimHandle(account_id="a", handle="annie"))
        app.handle(ClaimHandle(account_id="b", handle="ann"))
        assert app.get(Account, "b").handle == "ann"

    def test_application_hands_a_unique_value_over_in_one_command(self, store: EventStore) -> None:
        app = Application(store=store, aggregates=[Account], handlers=[move_handle])
        for account_id in ("a", "b", "c"):
            app.handle(OpenAccount(account_id=account_id, owner="Ann"))
        app.handle(ClaimHandle(account_id="a", handle="ann"))
        result = app.handle(MoveHandle(source_id="a", target_id="b"))
        assert result.versions == {"Account#a": 3, "Account#b": 2}
        assert (app.get(Account, "a").handle, app.get(Account, "b").handle) == (None, "ann")
        with pytest.raises(UniqueConstraintViolated):
            app.handle(ClaimHandle(account_id="c", handle="ann"))
        app.handle(MoveHandle(source_id="b", target_id="c"))
        assert (app.get(Account, "b").handle, app.get(Account, "c").handle) == (None, "ann")

    def test_application_repeated_command_returns_the_first_result(self, store: EventStore) -> None:
        app = Application(store=store, aggregates=[Account])
        app.handle(OpenAccount(account_id="a", owner="Ann"))
        first = app.handle(Deposit(account_id="a", amount=Decimal(7), command_id="pay-1"))
        again = app.handle(Deposit(account_id="a", amount=Decimal(7), command_id="pay-1"))
        assert again.duplicate and not first.duplicate
        assert (again.change_set_id, again.versions) == (first.change_set_id, first.versions)
        with pytest.raises(CommandIdReused):
            app.handle(Deposit(account_id="a", amount=Decimal(70), command_id="pay-1"))
        assert app.get(Account, "a").balance == Decimal(7)

    def test_unknown_event_type_names_the_type_and_stream(self, store: EventStore) -> None:
        Application(store=store, aggregates=[Account]).handle(
            OpenAccount(account_id="a", owner="Ann")
        )
        event = store.load_events("Account", "a")[0]
        self.plant_item(
            store,
            store.tables.events,
            {
                "pk": {"S": "Account#a"},
                "sk": {"N": "2"},
                "event_type": {"S": "Vanished"},
                "schema": {"N": "1"},
                "payload": {"B": b"{}"},
                "occurred_at": {"S": event.occurred_at.isoformat()},
                "change_set_id": {"S": "x"},
                "command_id": {"S": "x"},
                "correlation_id": {"S": "x"},
                "causation_id": {"S": "x"},
            },
        )
        app = Application(store=store, aggregates=[Account])
        with pytest.raises(UnknownEventType) as raised:
            app.get(Account, "a")
        assert (raised.value.event_type, raised.value.stream) == ("Vanished", "Account#a")


def incompressible(size: int) -> bytes:
    """Random bytes that no reader mistakes for a tagged payload.

    A stored payload's first byte says its format (plain JSON, zlib, or a reference to S3):
    unconstrained random bytes would start with the S3 reference tag once in 256 runs.
    """
    return b"{" + os.urandom(size - 1)

"""A retry after a lost race reads only the events it misses, on a state never touched.

The failed attempt's handler applied its (refused) events to the aggregate it was given: that
object is thrown away. The retry rebuilds the state the attempt was loaded at (from the cache's
committed copy, or from the snapshot and records it read, decoded again) and reads the events
committed after it.
"""

from __future__ import annotations

import random
from decimal import Decimal

import pytest
from attrs import frozen

from framework import (
    Aggregate,
    Application,
    Command,
    ConcurrencyError,
    Event,
    EveryNEvents,
    command_handler,
    event_handler,
)
from framework.application import AggregateCache, Backoff
from framework.store import ChangeSet
from framework.testing.bank import Account, Deposit, OpenAccount, Transfer, transfer
from tests.support.retries import NO_WAIT
from tests.support.stores import SpyStore


def loads(spy: SpyStore) -> list[tuple[str, tuple[object, ...]]]:
    """The reads the store saw, with their arguments (``load_history``' third is the version)."""
    return [(name, args) for name, args in spy.calls if name.startswith("load")]


def competitor_commits_once(spy: SpyStore, competitor: Application, *commands: Command) -> None:
    """Before the first commit attempt is passed on, another process commits ``commands``."""

    def before(attempt: int, change_set: ChangeSet) -> None:
        if attempt == 1:
            spy.before_commit = None
            for command in commands:
                competitor.handle(command)

    spy.commits = 0
    spy.before_commit = before


def test_a_retry_reads_only_the_events_after_the_version_it_held() -> None:
    spy = SpyStore()
    app = Application(store=spy, aggregates=[Account], backoff=NO_WAIT)
    other_process = Application(store=spy.inner, aggregates=[Account])
    app.handle(OpenAccount(account_id="a", owner="Ann"))
    for _ in range(3):
        app.handle(Deposit(account_id="a", amount=Decimal(10)))  # v4, balance 30
    spy.calls.clear()
    competitor_commits_once(
        spy,
        other_process,
        Deposit(account_id="a", amount=Decimal(1)),
        Deposit(account_id="a", amount=Decimal(2)),
    )
    result = app.handle(Deposit(account_id="a", amount=Decimal(5)))
    assert (result.attempts, result.version) == (2, 7)
    assert loads(spy) == [
        ("load_history", ("Account", "a", 0)),
        ("load_history", ("Account", "a", 4)),
    ]
    account = app.get(Account, "a")
    # The refused attempt's deposit of 5 is counted once, by the retry that committed it.
    assert (account.balance, account.version) == (Decimal(38), 7)
    assert len(spy.inner.load_events("Account", "a")) == 7


def test_a_retry_rebuilds_from_the_snapshot_it_read_without_reading_it_again() -> None:
    spy = SpyStore()
    app = Application(
        store=spy, aggregates=[Account], snapshots={Account: EveryNEvents(2)}, backoff=NO_WAIT
    )
    other_process = Application(store=spy.inner, aggregates=[Account])
    app.handle(OpenAccount(account_id="a", owner="Ann"))
    for _ in range(4):
        app.handle(Deposit(account_id="a", amount=Decimal(10)))  # snapshot at v4, stream at v5
    spy.calls.clear()
    competitor_commits_once(spy, other_process, Deposit(account_id="a", amount=Decimal(1)))
    result = app.handle(Deposit(account_id="a", amount=Decimal(5)))
    assert result.attempts == 2
    assert loads(spy) == [
        ("load_snapshot", ("Account", "a")),
        ("load_history", ("Account", "a", 4)),
        ("load_history", ("Account", "a", 5)),
    ]
    assert app.get(Account, "a").balance == Decimal(46)


def test_a_retry_of_a_cached_aggregate_reads_only_what_the_cache_misses() -> None:
    spy = SpyStore()
    cache = AggregateCache()
    app = Application(store=spy, aggregates=[Account], cache=cache, backoff=NO_WAIT)
    other_process = Application(store=spy.inner, aggregates=[Account])
    app.handle(OpenAccount(account_id="a", owner="Ann"))
    app.handle(Deposit(account_id="a", amount=Decimal(10)))  # cached at v2
    seen_in_cache: list[tuple[Decimal, int]] = []

    def before(attempt: int, change_set: ChangeSet) -> None:
        cached = cache.get(Account, "a")
        assert cached is not None
        seen_in_cache.append((cached.balance, cached.version))
        if attempt <= 2:  # two lost races in a row
            other_process.handle(Deposit(account_id="a", amount=Decimal(1)))

    spy.calls.clear()
    spy.commits = 0
    spy.before_commit = before
    result = app.handle(Deposit(account_id="a", amount=Decimal(5)))
    assert result.attempts == 3
    assert loads(spy) == [
        ("load_history", ("Account", "a", 2)),
        ("load_history", ("Account", "a", 3)),
    ]
    # The cache only ever held committed states: never one with the refused deposit of 5.
    assert seen_in_cache == [(Decimal(10), 2), (Decimal(11), 3), (Decimal(12), 4)]
    cached = cache.get(Account, "a")
    assert cached is not None and (cached.balance, cached.version) == (Decimal(17), 5)
    assert app.get(Account, "a").balance == Decimal(17)


def test_a_cache_entry_evicted_between_attempts_means_a_full_load() -> None:
    spy = SpyStore()
    cache = AggregateCache()
    app = Application(store=spy, aggregates=[Account], cache=cache, backoff=NO_WAIT)
    other_process = Application(store=spy.inner, aggregates=[Account])
    app.handle(OpenAccount(account_id="a", owner="Ann"))

    def before(attempt: int, change_set: ChangeSet) -> None:
        if attempt == 1:
            spy.before_commit = None
            other_process.handle(Deposit(account_id="a", amount=Decimal(1)))
            cache.clear()

    spy.calls.clear()
    spy.commits = 0
    spy.before_commit = before
    assert app.handle(Deposit(account_id="a", amount=Decimal(5))).attempts == 2
    assert loads(spy) == [("load_history", ("Account", "a", 0))]
    assert app.get(Account, "a").balance == Decimal(6)


def test_a_give_up_drops_the_cache_entries_of_the_command() -> None:
    spy = SpyStore()
    cache = AggregateCache()
    app = Application(store=spy, aggregates=[Account], cache=cache, backoff=NO_WAIT, max_attempts=3)
    app.handle(OpenAccount(account_id="a", owner="Ann"))

    def always_lose(attempt: int, change_set: ChangeSet) -> None:
        raise ConcurrencyError("Account", "a", 1, 2)

    spy.before_commit = always_lose
    with pytest.raises(ConcurrencyError):
        app.handle(Deposit(account_id="a", amount=Decimal(5)))
    assert cache.get(Account, "a") is None


def test_both_aggregates_of_a_transfer_are_reloaded_incrementally() -> None:
    spy = SpyStore()
    app = Application(store=spy, aggregates=[Account], handlers=[transfer], backoff=NO_WAIT)
    other_process = Application(store=spy.inner, aggregates=[Account])
    for account_id in ("a", "b"):
        app.handle(OpenAccount(account_id=account_id, owner="Ann"))
    app.handle(Deposit(account_id="a", amount=Decimal(100)))
    spy.calls.clear()
    competitor_commits_once(spy, other_process, Deposit(account_id="b", amount=Decimal(7)))
    result = app.handle(Transfer(source_id="a", target_id="b", amount=Decimal(30)))
    assert result.attempts == 2 and result.versions == {"Account#a": 3, "Account#b": 3}
    assert loads(spy)[2:] == [
        ("load_history", ("Account", "a", 2)),
        ("load_history", ("Account", "b", 1)),
    ]
    assert app.get(Account, "a").balance == Decimal(70)
    assert app.get(Account, "b").balance == Decimal(37)


# -- a handler that shares its event's list: the records are decoded again, never reused -------


@frozen
class StartBasket(Command, target="basket_id"):
    basket_id: str


@frozen
class AddItem(Command, target="basket_id"):
    basket_id: str
    item: str


@frozen
class BasketStarted(Event):
    items: list[str]


@frozen
class ItemAdded(Event):
    item: str


class Basket(Aggregate):
    items: list[str]

    @command_handler(StartBasket, creates=True)
    def start(self, command: StartBasket) -> None:
        self.emit(BasketStarted(items=[]))

    @command_handler(AddItem)
    def add(self, command: AddItem) -> None:
        self.emit(ItemAdded(item=command.item))

    @event_handler(BasketStarted)
    def _started(self, event: BasketStarted) -> None:
        self.items = event.items  # shares the event's list: what a rebuild must survive

    @event_handler(ItemAdded)
    def _added(self, event: ItemAdded) -> None:
        self.items.append(event.item)


def test_a_retry_never_sees_what_the_refused_attempt_did_to_shared_objects() -> None:
    spy = SpyStore()
    app = Application(store=spy, aggregates=[Basket], backoff=NO_WAIT)
    other_process = Application(store=spy.inner, aggregates=[Basket])
    app.handle(StartBasket(basket_id="b"))
    competitor_commits_once(spy, other_process, AddItem(basket_id="b", item="tea"))
    assert app.handle(AddItem(basket_id="b", item="milk")).attempts == 2
    assert app.get(Basket, "b").items == ["tea", "milk"]


# -- backoff -----------------------------------------------------------------------------------


def test_the_backoff_is_full_jitter_over_the_capped_exponential() -> None:
    random.seed(7)
    backoff = Backoff(base=0.01, cap=0.08)
    for attempt, bound in ((1, 0.01), (2, 0.02), (3, 0.04), (4, 0.08), (5, 0.08), (12, 0.08)):
        delays = [backoff.delay(attempt) for _ in range(400)]
        assert all(0.0 <= delay <= bound for delay in delays)
        # Full jitter: anywhere from nothing to the bound, not "half the bound plus jitter".
        assert min(delays) < bound * 0.05 and max(delays) > bound * 0.95


def test_the_default_retry_policy() -> None:
    app = Application(store=SpyStore(), aggregates=[Account])
    assert app.max_attempts == 40
    assert app.backoff == Backoff(base=0.01, cap=0.25)

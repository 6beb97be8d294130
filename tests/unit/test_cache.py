"""The aggregate cache: one request for a hot aggregate, never a lost update when it is stale."""

from __future__ import annotations

from decimal import Decimal

import pytest

from framework import AggregateCache, Application, Backoff, DomainError
from tests.support.bank import Account, Deposit, OpenAccount, Withdraw
from tests.support.stores import SpyStore


def cached_app(spy: SpyStore, cache: AggregateCache) -> Application:
    return Application(
        store=spy,  # type: ignore[arg-type]
        aggregates=[Account],
        cache=cache,
        backoff=Backoff(0, 0),
    )


def test_a_hot_aggregate_commits_without_loading() -> None:
    spy = SpyStore()
    app = cached_app(spy, AggregateCache())
    app.handle(OpenAccount(account_id="a", owner="Ann"))
    spy.calls.clear()
    for _ in range(3):
        app.handle(Deposit(account_id="a", amount=Decimal(1)))
    assert spy.names() == ["commit", "commit", "commit"]
    assert app.get(Account, "a").balance == Decimal(3)


def test_a_stale_entry_costs_one_refused_commit_and_loses_nothing() -> None:
    spy = SpyStore()
    cache = AggregateCache()
    app = cached_app(spy, cache)
    other_process = Application(store=spy, aggregates=[Account])  # type: ignore[arg-type]
    app.handle(OpenAccount(account_id="a", owner="Ann"))
    other_process.handle(Deposit(account_id="a", amount=Decimal(10)))  # the cache does not know
    spy.calls.clear()
    result = app.handle(Deposit(account_id="a", amount=Decimal(1)))
    assert result.attempts == 2 and result.version == 3
    assert spy.names() == ["commit", "load_events", "commit"]
    assert app.get(Account, "a").balance == Decimal(11)


def test_a_failed_command_leaves_the_cached_aggregate_untouched() -> None:
    spy = SpyStore()
    cache = AggregateCache()
    app = cached_app(spy, cache)
    app.handle(OpenAccount(account_id="a", owner="Ann"))
    app.handle(Deposit(account_id="a", amount=Decimal(5)))
    with pytest.raises(DomainError):
        app.handle(Withdraw(account_id="a", amount=Decimal(6)))
    cached = cache.get(Account, "a")
    assert cached is not None and (cached.balance, cached.version) == (Decimal(5), 2)


def test_entries_are_private_copies_and_bounded() -> None:
    cache = AggregateCache(max_entries=2)
    for account_id in ("a", "b", "c"):
        account = Account(account_id)
        account.balance = Decimal(1)
        cache.put(account)
    assert len(cache) == 2 and cache.get(Account, "a") is None
    copy_one = cache.get(Account, "c")
    assert copy_one is not None
    copy_one.balance = Decimal(99)
    again = cache.get(Account, "c")
    assert again is not None and again.balance == Decimal(1)
    with pytest.raises(ValueError):
        AggregateCache(max_entries=0)

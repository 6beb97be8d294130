"""The aggregate cache: one request for a hot aggregate; a stale entry never decides a command."""

from __future__ import annotations

from decimal import Decimal

import pytest

from framework import Application, DomainError
from framework.application import AggregateCache
from framework.testing.bank import (
    Account,
    Deposit,
    JointWithdraw,
    OpenAccount,
    Withdraw,
    joint_withdraw,
)
from tests.support.retries import NO_WAIT
from tests.support.stores import SpyStore


def cached_app(spy: SpyStore, cache: AggregateCache) -> Application:
    return Application(
        store=spy,
        aggregates=[Account],
        cache=cache,
        backoff=NO_WAIT,
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
    other_process = Application(store=spy, aggregates=[Account])
    app.handle(OpenAccount(account_id="a", owner="Ann"))
    other_process.handle(Deposit(account_id="a", amount=Decimal(10)))  # the cache does not know
    spy.calls.clear()
    result = app.handle(Deposit(account_id="a", amount=Decimal(1)))
    assert result.attempts == 2 and result.version == 3
    assert spy.names() == ["commit", "load_history", "commit"]
    assert app.get(Account, "a").balance == Decimal(11)


def test_a_stale_entry_read_but_not_changed_is_caught_and_retried_on_fresh_state() -> None:
    spy = SpyStore()
    app = Application(
        store=spy,
        aggregates=[Account],
        handlers=[joint_withdraw],
        cache=AggregateCache(),
        backoff=NO_WAIT,
    )
    other_process = Application(store=spy.inner, aggregates=[Account])
    for account_id in ("a", "b"):
        app.handle(OpenAccount(account_id=account_id, owner="Ann"))
        app.handle(Deposit(account_id=account_id, amount=Decimal(50)))
    app.handle(JointWithdraw(account_id="a", partner_id="b", amount=Decimal(10)))  # caches b
    other_process.handle(Withdraw(account_id="b", amount=Decimal(50)))  # the cache does not know
    spy.calls.clear()
    # On the cached b (balance 50) 45 looks affordable; on the real b (balance 0) it is not.
    with pytest.raises(DomainError, match="overdrawn"):
        app.handle(JointWithdraw(account_id="a", partner_id="b", amount=Decimal(45)))
    assert spy.names() == ["commit", "load_history", "load_history", "get_processed_command"]
    result = app.handle(JointWithdraw(account_id="a", partner_id="b", amount=Decimal(30)))
    assert result.attempts == 1 and result.versions == {"Account#a": 4}
    assert app.get(Account, "a").balance + app.get(Account, "b").balance == Decimal(10)


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

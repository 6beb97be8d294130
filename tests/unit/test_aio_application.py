"""``AsyncApplication`` on the in-memory store: the async face for unit tests (no I/O, so no
switches), and the retry backoff awaited instead of blocking the loop."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest

from framework import Application, ConcurrencyError, DomainError, InMemoryEventStore
from framework.aio import AsyncApplication
from framework.application import Backoff
from framework.errors import AggregateNotFound
from framework.store import ChangeSet, EventStore
from framework.testing.bank import Account, Deposit, OpenAccount, Withdraw
from tests.support.stores import SpyStore


class FixedBackoff(Backoff):
    """Always the same wait (the default's full jitter may wait next to nothing)."""

    def delay(self, attempt: int) -> float:
        return 0.1


def bank(store: EventStore, backoff: Backoff | None = None) -> AsyncApplication:
    return AsyncApplication(Application(store=store, aggregates=[Account], backoff=backoff))


def test_commands_and_reads_on_the_in_memory_store() -> None:
    app = bank(InMemoryEventStore())

    async def scenario() -> Account:
        await app.handle(OpenAccount(account_id="a1", owner="Ann"))
        await asyncio.gather(
            *(app.handle(Deposit(account_id="a1", amount=Decimal(1))) for _ in range(50))
        )
        return await app.get(Account, "a1")

    assert asyncio.run(scenario()).balance == Decimal(50)


def test_refusals_reach_the_caller_as_the_sync_face_raises_them() -> None:
    app = bank(InMemoryEventStore())

    async def scenario() -> None:
        with pytest.raises(AggregateNotFound):
            await app.get(Account, "nobody")
        await app.handle(OpenAccount(account_id="a1", owner="Ann"))
        with pytest.raises(DomainError, match="insufficient funds"):
            await app.handle(Withdraw(account_id="a1", amount=Decimal(1)))

    asyncio.run(scenario())


def test_the_retry_backoff_is_awaited_so_other_tasks_run_meanwhile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spy = SpyStore()
    app = bank(spy, backoff=FixedBackoff())

    def lose_twice(attempt: int, _: ChangeSet) -> None:
        if attempt in (2, 3):  # the deposit's first two commits (the opening was the first)
            raise ConcurrencyError("Account", "a1", 1, 2)  # a competitor committed first

    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(time.perf_counter())
            await asyncio.sleep(0.005)

    def no_blocking_sleep(seconds: float) -> None:
        raise AssertionError(f"time.sleep({seconds}) blocked the event loop")

    async def scenario() -> int:
        await app.handle(OpenAccount(account_id="a1", owner="Ann"))
        spy.before_commit = lose_twice
        ticking = asyncio.create_task(ticker())
        monkeypatch.setattr(time, "sleep", no_blocking_sleep)
        try:
            result = await app.handle(Deposit(account_id="a1", amount=Decimal(1)))
        finally:
            monkeypatch.undo()
            ticking.cancel()
        return result.attempts

    assert asyncio.run(scenario()) == 3
    # Two waits of 0.1 s: a ticker every 5 ms ticks about 40 times if the loop ran meanwhile.
    assert len(ticks) > 20, "the loop stood still while the command waited to retry"


def test_the_sync_face_of_the_same_application_still_sleeps_in_its_thread() -> None:
    spy = SpyStore()
    application = Application(store=spy, aggregates=[Account], backoff=Backoff(0.05, 0.05))
    application.handle(OpenAccount(account_id="a1", owner="Ann"))

    def lose_once(attempt: int, _: ChangeSet) -> None:
        if attempt == 2:
            raise ConcurrencyError("Account", "a1", 1, 2)

    spy.before_commit = lose_once
    assert application.handle(Deposit(account_id="a1", amount=Decimal(1))).attempts == 2

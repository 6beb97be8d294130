"""The example API on the async application: what runs on the loop, and that nothing hangs.

On DynamoDB Local the served app's commands go through the aiobotocore store, many in flight on
the loop's one thread (the module's server is the one ``test_http_api`` moves money on). On the
embedded moto store every piece of work runs alone, behind ``SerialGate``, and concurrent
transfers still conserve money; the gate itself never blocks the loop, even when its holder
yields to it or a waiter is cancelled.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from example_app.api.work import ConcurrentWork, SerialGate, SerializedWork
from example_app.bank import Account
from example_app.http_api import create_app
from example_app.read_models import create_read_model_tables
from example_app.wiring import build_application
from framework import DynamoDBEventStore
from framework.aio import BridgedClient, run_in_greenlet
from framework.pauses import pause
from framework.projections import DynamoDBDeadlineStore
from tests.example.http_support import AUTH, TOKEN, Server, new_id


def open_accounts(http: httpx.Client, count: int, deposit: str) -> list[str]:
    accounts = [new_id("acc") for _ in range(count)]
    for account in accounts:
        assert http.post("/accounts", json={"account_id": account, "owner": "Al"}).is_success
        assert http.post(f"/accounts/{account}/deposits", json={"amount": deposit}).is_success
    return accounts


def transfer_at_random(base_url: str, accounts: list[str], seed: int) -> list[int]:
    rng = random.Random(seed)
    statuses = []
    with httpx.Client(base_url=base_url, timeout=60, headers=AUTH) as own:
        for _ in range(10):
            source, target = rng.sample(accounts, 2)
            body = {
                "source_account_id": source,
                "target_account_id": target,
                "amount": f"{rng.randint(1, 4000) / 100:.2f}",
            }
            statuses.append(own.post("/transfers", json=body).status_code)
    return statuses


def server_store(server: Server) -> DynamoDBEventStore:
    """The store the app was created on: the one its threads use."""
    work = server.app.state.work
    assert isinstance(work, ConcurrentWork)
    return work.store


# -- on DynamoDB Local: aiobotocore, many requests in flight on one thread ---------------------


@pytest.mark.dynamodb_local
def test_commands_are_awaited_on_the_aiobotocore_store_many_at_once_on_one_thread(
    server: Server, http: httpx.Client
) -> None:
    work = server.app.state.work
    assert isinstance(work, ConcurrentWork) and work.async_application is not None
    store = work.async_application.application.store
    assert isinstance(store, DynamoDBEventStore) and store.tables == server_store(server).tables
    client = store.client
    assert isinstance(client, BridgedClient)
    in_flight, most, threads = 0, 0, set()

    def sent(**_: Any) -> None:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        threads.add(threading.get_ident())

    def answered(**_: Any) -> None:
        nonlocal in_flight
        in_flight -= 1

    client.meta.events.register("before-call.dynamodb", sent)
    client.meta.events.register("after-call.dynamodb", answered)
    try:
        accounts = [new_id("acc") for _ in range(16)]

        def open_one(account: str) -> int:
            body = {"account_id": account, "owner": "Ola"}
            return http.post("/accounts", json=body).status_code

        with ThreadPoolExecutor(16) as pool:
            assert set(pool.map(open_one, accounts)) == {201}
    finally:
        client.meta.events.unregister("before-call.dynamodb", sent)
        client.meta.events.unregister("after-call.dynamodb", answered)
    assert len(threads) == 1  # the loop's thread: no request held a thread while it waited
    assert most >= 2, most  # yet several commands waited for DynamoDB at the same time


# -- on the embedded store: one piece of work at a time, nothing blocks forever -----------------


@pytest.fixture
def embedded(moto_store: DynamoDBEventStore) -> Iterator[tuple[FastAPI, httpx.Client]]:
    create_read_model_tables(moto_store)
    DynamoDBDeadlineStore(moto_store).create_table()
    app = create_app(moto_store, api_token=TOKEN)
    with Server(app) as client:
        yield app, client


def test_on_the_embedded_store_concurrent_transfers_conserve_money(
    embedded: tuple[FastAPI, httpx.Client], moto_store: DynamoDBEventStore
) -> None:
    app, http = embedded
    assert isinstance(app.state.work, SerializedWork)
    accounts = open_accounts(http, 3, "100.00")
    with ThreadPoolExecutor(4) as pool:
        batches = pool.map(
            lambda seed: transfer_at_random(str(http.base_url), accounts, seed), range(4)
        )
        statuses = [status for batch in batches for status in batch]
    assert set(statuses) <= {200, 422}, statuses
    assert statuses.count(200) >= 10
    balances = [Decimal(http.get(f"/accounts/{a}").json()["balance"]) for a in accounts]
    assert sum(balances) == Decimal(300)
    aggregates = [build_application(moto_store).get(Account, a) for a in accounts]
    assert [a.balance.amount for a in aggregates] == balances


def test_the_gate_lets_its_holder_yield_to_the_loop_and_others_wait_off_it() -> None:
    """A holder that awaits (the retry backoff) while others want the gate, from the loop and
    from a thread: all get their turn, one at a time, and the loop keeps running."""
    gate = SerialGate()
    inside, most, order = 0, 0, []

    def work(name: str) -> None:
        nonlocal inside, most
        inside += 1
        most = max(most, inside)
        pause(0.05)  # in the bridge: awaits asyncio.sleep; in a thread: sleeps
        order.append(name)
        inside -= 1

    async def task(name: str) -> None:
        async with gate.hold():
            await run_in_greenlet(work, name)

    def thread() -> None:
        with gate.lock:
            work("thread")

    async def main() -> float:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.005)
                ticks += 1

        counting = asyncio.create_task(ticker())
        background = threading.Thread(target=thread)
        background.start()
        await asyncio.wait_for(asyncio.gather(*(task(f"task-{n}") for n in range(5))), 10)
        await asyncio.to_thread(background.join, 10)
        counting.cancel()
        return ticks

    started = time.monotonic()
    ticks = asyncio.run(main())
    assert sorted(order) == sorted(["thread", *(f"task-{n}" for n in range(5))])
    assert most == 1  # never two at once
    assert ticks >= (time.monotonic() - started) / 0.005 / 4  # the loop was never frozen


def test_a_cancelled_waiter_leaves_the_gate_free() -> None:
    gate = SerialGate()

    async def main() -> None:
        gate.lock.acquire()  # held by "a thread" for now
        waiter = asyncio.create_task(_enter(gate))
        await asyncio.sleep(0.05)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        gate.lock.release()  # the waiter's thread now takes it, for nobody: given back
        await asyncio.wait_for(_enter(gate), 5)

    asyncio.run(main())  # it waits for the worker threads: the abandoned one has finished
    assert not gate.lock.locked()


def test_a_waiter_cancelled_after_its_thread_took_the_lock_gives_it_back() -> None:
    gate = SerialGate()

    async def main() -> None:
        gate.lock.acquire()
        waiter = asyncio.create_task(_enter(gate))
        await asyncio.sleep(0.05)
        gate.lock.release()
        while not gate.lock.locked():  # blocking the loop: the waiter's task cannot resume yet
            time.sleep(0.001)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert not gate.lock.locked()

    asyncio.run(main())


def test_a_waiter_whose_task_left_gives_the_lock_back_even_with_the_loop_gone() -> None:
    gate = SerialGate()
    gate.lock.acquire()

    async def main() -> None:
        waiter = asyncio.create_task(_enter(gate))
        await asyncio.sleep(0.05)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter

    loop = asyncio.new_event_loop()
    loop.run_until_complete(main())
    loop.close()  # the loop is gone before the worker thread gets the lock
    gate.lock.release()
    deadline = time.monotonic() + 5
    while threading.active_count() > 1 and time.monotonic() < deadline:
        time.sleep(0.01)  # the default executor's thread gives the lock back and goes idle
    assert gate.lock.acquire(timeout=5)  # free again: nobody holds a lock for a gone request
    gate.lock.release()


async def _enter(gate: SerialGate) -> None:
    async with gate.hold():
        pass

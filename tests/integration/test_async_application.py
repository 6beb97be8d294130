"""``AsyncApplication`` on the aiobotocore store against DynamoDB Local: the sync application's
rules (retries, idempotency, claims, snapshots, the cache, personal data) through the async face,
many commands in flight on one thread."""

from __future__ import annotations

import asyncio
import threading
from decimal import Decimal
from typing import Any

import pytest

from example_app.users import ForgetUser, RegisterUser, User
from example_app.wiring import build_application
from framework import Application, DynamoDBEventStore, EveryNEvents
from framework.aio import AsyncApplication
from framework.application import AggregateCache, Backoff
from framework.encryption import KeyRing, LocalKeyWrapper
from framework.errors import CommandIdReused, UniqueConstraintViolated
from framework.store import DynamoDBKeyStorage
from framework.testing.bank import Account, ClaimHandle, Deposit, OpenAccount, Transfer, transfer
from tests.support.aio import BridgedLoop

pytestmark = pytest.mark.dynamodb_local

QUICK = Backoff(base=0.005, cap=0.05)


def bank(store: DynamoDBEventStore, **options: Any) -> AsyncApplication:
    return AsyncApplication(
        Application(
            store=store, aggregates=[Account], handlers=[transfer], backoff=QUICK, **options
        )
    )


class SwitchSafeLock:
    """A lock that refuses to wait: on the loop's one thread, a lock found held means its holder
    is suspended at a ``wait_for`` (the lock was kept across I/O), which would deadlock the loop.
    Failing at once turns that hang into an error the test reports."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.acquisitions = 0

    def __enter__(self) -> None:
        if not self._lock.acquire(blocking=False):
            raise AssertionError("a lock was held across a switch to the event loop")
        self.acquisitions += 1

    def __exit__(self, *_: object) -> None:
        self._lock.release()


def test_handle_and_get_through_the_async_face(
    async_local_store: DynamoDBEventStore, bridged: BridgedLoop
) -> None:
    app = bank(async_local_store)

    async def scenario() -> Account:
        await app.handle(OpenAccount(account_id="a1", owner="Ann"))
        result = await app.handle(Deposit(account_id="a1", amount=Decimal(5)))
        assert result.versions == {"Account#a1": 2}
        return await app.get(Account, "a1")

    account = bridged.run(scenario())
    assert (account.owner, account.balance, account.version) == ("Ann", Decimal(5), 2)


def test_a_repeated_command_id_returns_the_first_result_and_writes_nothing(
    async_local_store: DynamoDBEventStore, bridged: BridgedLoop
) -> None:
    app = bank(async_local_store)

    async def scenario() -> None:
        await app.handle(OpenAccount(account_id="a1", owner="Ann"))
        deposit = Deposit(account_id="a1", amount=Decimal(7), command_id="pay-1")
        first, again = await asyncio.gather(app.handle(deposit), app.handle(deposit))
        assert first.versions == again.versions == {"Account#a1": 2}
        assert {first.duplicate, again.duplicate} == {False, True}
        with pytest.raises(CommandIdReused):
            await app.handle(Deposit(account_id="a1", amount=Decimal(8), command_id="pay-1"))
        assert (await app.get(Account, "a1")).balance == Decimal(7)

    bridged.run(scenario())
    events = bridged.call(async_local_store.load_events, "Account", "a1")
    assert [event.version for event in events] == [1, 2]


def test_tasks_on_one_aggregate_lose_races_and_are_retried_until_all_commit(
    async_local_store: DynamoDBEventStore, bridged: BridgedLoop
) -> None:
    app = bank(async_local_store)

    async def scenario() -> list[int]:
        await app.handle(OpenAccount(account_id="a1", owner="Ann"))
        results = await asyncio.gather(
            *(app.handle(Deposit(account_id="a1", amount=Decimal(1))) for _ in range(10))
        )
        assert (await app.get(Account, "a1")).balance == Decimal(10)
        return [result.attempts for result in results]

    attempts = bridged.run(scenario())
    assert max(attempts) > 1, "the tasks all loaded before any committed: some must retry"


def test_unique_claims_hold_between_concurrent_tasks(
    async_local_store: DynamoDBEventStore, bridged: BridgedLoop
) -> None:
    app = bank(async_local_store)

    async def scenario() -> list[object]:
        for account_id in ("a1", "a2", "a3"):
            await app.handle(OpenAccount(account_id=account_id, owner=account_id))
        return await asyncio.gather(
            *(app.handle(ClaimHandle(account_id=a, handle="@ann")) for a in ("a1", "a2", "a3")),
            return_exceptions=True,
        )

    outcomes = bridged.run(scenario())
    refused = [o for o in outcomes if isinstance(o, UniqueConstraintViolated)]
    assert len(refused) == 2 and len(outcomes) == 3


def test_a_transfer_commits_two_aggregates_at_once(
    async_local_store: DynamoDBEventStore, bridged: BridgedLoop
) -> None:
    app = bank(async_local_store)

    async def scenario() -> tuple[Decimal, Decimal]:
        await app.handle(OpenAccount(account_id="a1", owner="Ann"))
        await app.handle(OpenAccount(account_id="a2", owner="Bob"))
        await app.handle(Deposit(account_id="a1", amount=Decimal(30)))
        await asyncio.gather(
            *(
                app.handle(Transfer(source_id="a1", target_id="a2", amount=Decimal(1)))
                for _ in range(10)
            )
        )
        return (await app.get(Account, "a1")).balance, (await app.get(Account, "a2")).balance

    assert bridged.run(scenario()) == (Decimal(20), Decimal(10))


def test_snapshots_are_taken_and_loaded_through_the_async_face(
    async_local_store: DynamoDBEventStore, bridged: BridgedLoop
) -> None:
    app = bank(async_local_store, snapshots={Account: EveryNEvents(2)})

    async def scenario() -> Account:
        await app.handle(OpenAccount(account_id="a1", owner="Ann"))
        for amount in (1, 2, 3):
            await app.handle(Deposit(account_id="a1", amount=Decimal(amount)))
        return await app.get(Account, "a1")

    assert bridged.run(scenario()).balance == Decimal(6)
    snapshot = bridged.call(async_local_store.load_snapshot, "Account", "a1")
    assert snapshot is not None and snapshot.version == 4


def test_the_cache_serves_aggregates_this_process_committed(
    async_local_store: DynamoDBEventStore, bridged: BridgedLoop
) -> None:
    cache = AggregateCache()
    cache._lock = SwitchSafeLock()  # type: ignore[assignment]
    app = bank(async_local_store, cache=cache)

    async def scenario() -> None:
        await app.handle(OpenAccount(account_id="a1", owner="Ann"))
        await asyncio.gather(
            *(app.handle(Deposit(account_id="a1", amount=Decimal(1))) for _ in range(5))
        )

    bridged.run(scenario())
    assert cache.hits >= 1
    cached = cache.get(Account, "a1")
    assert cached is not None and cached.balance == Decimal(5)


def users_app(store: DynamoDBEventStore) -> tuple[AsyncApplication, KeyRing]:
    keys = KeyRing(LocalKeyWrapper(bytes(range(32))), DynamoDBKeyStorage(store))
    keys._lock = SwitchSafeLock()  # type: ignore[assignment]
    application = build_application(store, keys)
    application.backoff = QUICK
    application.cache = None
    return AsyncApplication(application), keys


def test_personal_data_is_encrypted_and_forgotten_through_the_async_face(
    async_local_store: DynamoDBEventStore, bridged: BridgedLoop
) -> None:
    app, _ = users_app(async_local_store)

    async def scenario() -> tuple[User, User]:
        await app.handle(RegisterUser(user_id="u1", name="Ann Smith", email="ann@example.com"))
        known = await app.get(User, "u1")
        await app.handle(ForgetUser(user_id="u1"))
        return known, await app.get(User, "u1")

    known, forgotten = bridged.run(scenario())
    assert (known.name, known.email) == ("Ann Smith", "ann@example.com")
    assert forgotten.forgotten and forgotten.name != "Ann Smith"
    (stored, *_) = bridged.call(async_local_store.load_events, "User", "u1")
    assert b"Ann Smith" not in stored.payload


def test_fifty_concurrent_commands_with_personal_data_all_complete(
    async_local_store: DynamoDBEventStore, bridged: BridgedLoop
) -> None:
    """Each registration makes, stores and uses a data key (DynamoDB requests) while the other
    49 are in flight on the same thread: no lock of the key ring or the cache may be held
    across those requests, or the loop would deadlock (``SwitchSafeLock`` reports it)."""
    app, keys = users_app(async_local_store)

    async def scenario() -> list[User]:
        commands = [
            RegisterUser(user_id=f"u{n}", name=f"User {n}", email=f"user{n}@example.com")
            for n in range(50)
        ]
        results = await asyncio.wait_for(
            asyncio.gather(*(app.handle(command) for command in commands)), timeout=120
        )
        assert all(result.attempts == 1 for result in results)
        return list(await asyncio.gather(*(app.get(User, f"u{n}") for n in range(50))))

    users = bridged.run(scenario())
    assert [user.name for user in users] == [f"User {n}" for n in range(50)]
    assert keys._lock.acquisitions >= 100  # type: ignore[attr-defined]

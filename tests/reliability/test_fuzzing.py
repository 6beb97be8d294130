"""Property-based fuzzing of commands: any input gives a typed error or a correct commit."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from framework import Application, DomainError, InMemoryEventStore
from framework.errors import (
    AggregateAlreadyExists,
    AggregateNotFound,
    ChangeSetTooLarge,
    InvalidCommand,
    UniqueConstraintViolated,
)
from framework.testing.bank import (
    Account,
    ClaimHandle,
    Deposit,
    OpenAccount,
    Transfer,
    Withdraw,
    transfer,
)

EXPECTED_REFUSALS = (
    InvalidCommand,
    DomainError,
    AggregateNotFound,
    AggregateAlreadyExists,
    UniqueConstraintViolated,
    ChangeSetTooLarge,
)

anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.just("a" * 500_000),  # larger than an item may be
    st.binary(max_size=10),
    st.lists(st.integers(), max_size=3),
)
ids = st.sampled_from(["a", "b", "c", "", "a#b"]) | anything
amounts = st.decimals(min_value=-10, max_value=1000, places=2) | anything


def build(kind: str, first: Any, second: Any, amount: Any) -> Any:
    if kind == "open":
        return OpenAccount(account_id=first, owner=second)
    if kind == "deposit":
        return Deposit(account_id=first, amount=amount)
    if kind == "withdraw":
        return Withdraw(account_id=first, amount=amount)
    if kind == "claim":
        return ClaimHandle(account_id=first, handle=second)
    return Transfer(source_id=first, target_id=second, amount=amount)


def total(app: Application) -> Decimal:
    balances = Decimal(0)
    for account_id in ("a", "b"):
        balances += app.get(Account, account_id).balance
    return balances


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["open", "deposit", "withdraw", "claim", "transfer"]),
            ids,
            ids,
            amounts,
        ),
        max_size=12,
    )
)
def test_any_command_sequence_keeps_the_books_right(
    commands: list[tuple[str, Any, Any, Any]],
) -> None:
    store = InMemoryEventStore()
    app = Application(store=store, aggregates=[Account], handlers=[transfer])
    app.handle(OpenAccount(account_id="a", owner="Ann"))
    app.handle(OpenAccount(account_id="b", owner="Ben"))
    deposited = Decimal(0)
    withdrawn = Decimal(0)
    for kind, first, second, amount in commands:
        try:
            command = build(kind, first, second, amount)
            app.handle(command)
        except EXPECTED_REFUSALS:
            continue
        except TypeError as error:  # missing or extra constructor arguments: Python's own check
            assert "argument" in str(error)
            continue
        if kind == "deposit" and first in ("a", "b"):
            deposited += amount
        if kind == "withdraw" and first in ("a", "b"):
            withdrawn += amount
    assert total(app) == deposited - withdrawn
    for account_id in ("a", "b"):
        versions = [e.version for e in store.load_events("Account", account_id)]
        assert versions == list(range(1, len(versions) + 1))
        assert all(math.isfinite(e) for e in [float(app.get(Account, account_id).balance)])

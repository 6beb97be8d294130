"""Accounts: commands (open, deposit, withdraw, confirm a held withdrawal, close, transfer) and
their read models."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from example_app.api.commands import Commands, IdempotencyKey, account_stream, command_endpoint
from example_app.api.problems import problem
from example_app.api.reads import Reads, read_endpoint
from example_app.api.schemas import (
    AccountIdInPath,
    AccountView,
    AmountBody,
    HoldIdInPath,
    OpenAccountBody,
    StatementLineView,
    TransferBody,
)
from example_app.bank import (
    CloseAccount,
    ConfirmWithdrawal,
    DepositMoney,
    OpenAccount,
    TransferMoney,
    WithdrawMoney,
)
from example_app.money import Money
from example_app.read_models import owner_name

router = APIRouter()
"""Commands on accounts (tag ``accounts``) and their read models (tag ``read models``)."""


@command_endpoint(router, "/accounts", tag="accounts", summary="Open an account", status_code=201)
async def open_account(
    body: OpenAccountBody, commands: Commands, key: IdempotencyKey = None
) -> JSONResponse:
    """Open an account with a balance of zero; 409 when the id is taken."""
    command = OpenAccount(account_id=body.account_id, owner=body.owner, owner_id=body.owner_id)
    return await commands.run(command, key, [account_stream(body.account_id)], 201)


@command_endpoint(
    router, "/accounts/{account_id}/deposits", tag="accounts", summary="Deposit money"
)
async def deposit(
    account_id: AccountIdInPath, body: AmountBody, commands: Commands, key: IdempotencyKey = None
) -> JSONResponse:
    """Deposit money into an open account; the amount must be positive (422)."""
    command = DepositMoney(account_id=account_id, amount=Money(body.amount))
    return await commands.run(command, key, [account_stream(account_id)])


@command_endpoint(
    router, "/accounts/{account_id}/withdrawals", tag="accounts", summary="Withdraw money"
)
async def withdraw(
    account_id: AccountIdInPath, body: AmountBody, commands: Commands, key: IdempotencyKey = None
) -> JSONResponse:
    """Withdraw money from an open account; an overdraft is refused (422, `insufficient funds`,
    with the balance and the amount asked). Above 1000 the money is only held: the withdrawal
    waits for `confirm` (its hold id is `hold-{version}`, the account's version in the answer)
    and is released after 15 minutes without it."""
    command = WithdrawMoney(account_id=account_id, amount=Money(body.amount))
    return await commands.run(command, key, [account_stream(account_id)])


@command_endpoint(
    router,
    "/accounts/{account_id}/withdrawals/{hold_id}/confirm",
    tag="accounts",
    summary="Confirm a held withdrawal",
)
async def confirm_withdrawal(
    account_id: AccountIdInPath,
    hold_id: HoldIdInPath,
    commands: Commands,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """Pay out a withdrawal that was held; an unknown hold, or one already confirmed or
    released, is refused (422)."""
    command = ConfirmWithdrawal(account_id=account_id, hold_id=hold_id)
    return await commands.run(command, key, [account_stream(account_id)])


@command_endpoint(
    router, "/accounts/{account_id}/close", tag="accounts", summary="Close an account"
)
async def close(
    account_id: AccountIdInPath, commands: Commands, key: IdempotencyKey = None
) -> JSONResponse:
    """Close an account; only an empty account can be closed (422 otherwise)."""
    return await commands.run(
        CloseAccount(account_id=account_id), key, [account_stream(account_id)]
    )


@command_endpoint(
    router, "/transfers", tag="accounts", summary="Transfer money between two accounts"
)
async def transfer(
    body: TransferBody, commands: Commands, key: IdempotencyKey = None
) -> JSONResponse:
    """Debit one account and credit the other in one transaction: both or neither."""
    command = TransferMoney(
        source_account_id=body.source_account_id,
        target_account_id=body.target_account_id,
        amount=Money(body.amount),
    )
    streams = [account_stream(body.source_account_id), account_stream(body.target_account_id)]
    return await commands.run(command, key, streams)


@read_endpoint(
    router, "/accounts/{account_id}", response_model=AccountView, summary="An account's balance"
)
async def get_account(account_id: AccountIdInPath, reads: Reads) -> Any:
    """The account's balance, owner and status (balances read model)."""
    models = reads.models
    row: Any = await reads.read(
        reads.balances_table, lambda: models.balances.get(account_id, consistent_read=True)
    )
    if row is None:
        return problem(404, "not found", f"account {account_id!r} is unknown")
    owner = await reads.read(reads.users_table, lambda: owner_name(models, row)) or "(unknown user)"
    return AccountView(
        account_id=row.account_id,
        owner=owner,
        owner_id=row.owner_id,
        balance=f"{row.balance:.2f}",
        closed=bool(row.closed),
        version=int(row.version),
    )


@read_endpoint(
    router,
    "/accounts/{account_id}/statement",
    response_model=list[StatementLineView],
    summary="An account's statement",
)
async def get_statement(account_id: AccountIdInPath, reads: Reads) -> Any:
    """Every money movement of the account, in version order (statements read model)."""
    models = reads.models
    balance = await reads.read(
        reads.balances_table, lambda: models.balances.get(account_id, consistent_read=True)
    )
    if balance is None:
        return problem(404, "not found", f"account {account_id!r} is unknown")
    lines: list[Any] | None = await reads.read(
        reads.statements_table,
        lambda: list(models.statements.query(account_id, consistent_read=True)),
    )
    return [
        StatementLineView(
            version=int(line.version),
            kind=line.kind,
            amount=f"{line.amount:.2f}",
            occurred_at=line.occurred_at,
        )
        for line in lines or []
    ]

"""Accounts: commands (open, deposit, withdraw, close, transfer) and their read models."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from example_app.api.commands import Commands, IdempotencyKey, account_stream
from example_app.api.problems import problem, problem_responses
from example_app.api.reads import Reads
from example_app.api.schemas import (
    AccountIdInPath,
    AccountView,
    AmountBody,
    CommandResponse,
    OpenAccountBody,
    StatementLineView,
    TransferBody,
)
from example_app.bank import CloseAccount, DepositMoney, OpenAccount, TransferMoney, WithdrawMoney
from example_app.money import Money
from example_app.read_models import owner_name

COMMAND_ERRORS = problem_responses(404, 409, 413, 422)
READ_ERRORS = problem_responses(404, 422)

router = APIRouter()
"""Commands on accounts (tag ``accounts``) and their read models (tag ``read models``)."""


@router.post(
    "/accounts",
    status_code=201,
    response_model=CommandResponse,
    responses=COMMAND_ERRORS,
    tags=["accounts"],
    summary="Open an account",
)
def open_account(
    body: OpenAccountBody, commands: Commands, key: IdempotencyKey = None
) -> JSONResponse:
    """Open an account with a balance of zero; 409 when the id is taken."""
    command = OpenAccount(account_id=body.account_id, owner=body.owner, owner_id=body.owner_id)
    return commands.run(command, key, [account_stream(body.account_id)], 201)


@router.post(
    "/accounts/{account_id}/deposits",
    response_model=CommandResponse,
    responses=COMMAND_ERRORS,
    tags=["accounts"],
    summary="Deposit money",
)
def deposit(
    account_id: AccountIdInPath, body: AmountBody, commands: Commands, key: IdempotencyKey = None
) -> JSONResponse:
    """Deposit money into an open account; the amount must be positive (422)."""
    command = DepositMoney(account_id=account_id, amount=Money(body.amount))
    return commands.run(command, key, [account_stream(account_id)])


@router.post(
    "/accounts/{account_id}/withdrawals",
    response_model=CommandResponse,
    responses=COMMAND_ERRORS,
    tags=["accounts"],
    summary="Withdraw money",
)
def withdraw(
    account_id: AccountIdInPath, body: AmountBody, commands: Commands, key: IdempotencyKey = None
) -> JSONResponse:
    """Withdraw money from an open account; an overdraft is refused (422, `insufficient funds`,
    with the balance and the amount asked)."""
    command = WithdrawMoney(account_id=account_id, amount=Money(body.amount))
    return commands.run(command, key, [account_stream(account_id)])


@router.post(
    "/accounts/{account_id}/close",
    response_model=CommandResponse,
    responses=COMMAND_ERRORS,
    tags=["accounts"],
    summary="Close an account",
)
def close(
    account_id: AccountIdInPath, commands: Commands, key: IdempotencyKey = None
) -> JSONResponse:
    """Close an account; only an empty account can be closed (422 otherwise)."""
    return commands.run(CloseAccount(account_id=account_id), key, [account_stream(account_id)])


@router.post(
    "/transfers",
    response_model=CommandResponse,
    responses=COMMAND_ERRORS,
    tags=["accounts"],
    summary="Transfer money between two accounts",
)
def transfer(body: TransferBody, commands: Commands, key: IdempotencyKey = None) -> JSONResponse:
    """Debit one account and credit the other in one transaction: both or neither."""
    command = TransferMoney(
        source_account_id=body.source_account_id,
        target_account_id=body.target_account_id,
        amount=Money(body.amount),
    )
    streams = [account_stream(body.source_account_id), account_stream(body.target_account_id)]
    return commands.run(command, key, streams)


@router.get(
    "/accounts/{account_id}",
    response_model=AccountView,
    responses=READ_ERRORS,
    tags=["read models"],
    summary="An account's balance",
)
def get_account(account_id: AccountIdInPath, reads: Reads) -> Any:
    """The account's balance, owner and status (balances read model)."""
    models = reads.models
    row: Any = reads.read(
        reads.balances_table, lambda: models.balances.get(account_id, consistent_read=True)
    )
    if row is None:
        return problem(404, "not found", f"account {account_id!r} is unknown")
    owner = reads.read(reads.users_table, lambda: owner_name(models, row)) or "(unknown user)"
    return AccountView(
        account_id=row.account_id,
        owner=owner,
        owner_id=row.owner_id,
        balance=f"{row.balance:.2f}",
        closed=bool(row.closed),
        version=int(row.version),
    )


@router.get(
    "/accounts/{account_id}/statement",
    response_model=list[StatementLineView],
    responses=READ_ERRORS,
    tags=["read models"],
    summary="An account's statement",
)
def get_statement(account_id: AccountIdInPath, reads: Reads) -> Any:
    """Every money movement of the account, in version order (statements read model)."""
    models = reads.models
    balance = reads.read(
        reads.balances_table, lambda: models.balances.get(account_id, consistent_read=True)
    )
    if balance is None:
        return problem(404, "not found", f"account {account_id!r} is unknown")
    lines: list[Any] | None = reads.read(
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

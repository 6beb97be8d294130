"""The example app's HTTP API end to end over real HTTP (uvicorn on loopback), on DynamoDB Local.

Nothing here goes through an ASGI test transport: requests cross a real socket, so the server's
threading (FastAPI runs the plain ``def`` endpoints in a thread pool) is the one in production.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config

from example_app.api.work import ConcurrentWork
from example_app.bank import Account
from example_app.http_api import create_app
from example_app.wiring import build_application
from framework import DynamoDBEventStore
from framework.aio import BridgedClient
from framework.testing.dynamodb_local import free_port
from framework.testing.pytest_plugin import unique_prefix
from tests.example.http_support import (
    AUTH,
    CREDENTIAL_VARIABLES,
    TOKEN,
    Server,
    delete_read_model_tables,
    new_id,
    problem_of,
    without_aws_credentials,
)

pytestmark = pytest.mark.dynamodb_local


def open_account(http: httpx.Client, owner: str = "Ann", deposit: str | None = None) -> str:
    account_id = new_id("acc")
    assert http.post("/accounts", json={"account_id": account_id, "owner": owner}).is_success
    if deposit is not None:
        assert http.post(f"/accounts/{account_id}/deposits", json={"amount": deposit}).is_success
    return account_id


# -- every endpoint --------------------------------------------------------------------------


def test_a_forgotten_users_name_leaves_their_accounts(http: httpx.Client) -> None:
    user, account = new_id("user"), new_id("acc")
    email = f"{user}@example.com"
    assert http.post("/users", json={"user_id": user, "name": "Ulla", "email": email}).is_success
    body = {"account_id": account, "owner": "Ulla", "owner_id": user}
    assert http.post("/accounts", json=body).status_code == 201
    assert http.get(f"/accounts/{account}").json()["owner"] == "Ulla"
    assert http.post(f"/users/{user}/forget").is_success
    shown = http.get(f"/accounts/{account}").json()
    assert (shown["owner"], shown["owner_id"]) == ("(erased)", user)


def test_an_account_from_opening_to_closing(http: httpx.Client) -> None:
    account = new_id("acc")
    opened = http.post("/accounts", json={"account_id": account, "owner": "Ann"})
    assert opened.status_code == 201
    body = opened.json()
    assert set(body) == {"command_id", "change_set_id", "versions", "duplicate"}
    assert body["versions"] == {f"Account#{account}": 1} and body["duplicate"] is False
    deposited = http.post(f"/accounts/{account}/deposits", json={"amount": "30.00"})
    assert deposited.status_code == 200 and deposited.json()["versions"] == {
        f"Account#{account}": 2
    }
    withdrawn = http.post(f"/accounts/{account}/withdrawals", json={"amount": "12.25"})
    assert withdrawn.status_code == 200

    assert http.get(f"/accounts/{account}").json() == {
        "account_id": account,
        "owner": "Ann",
        "owner_id": None,
        "balance": "17.75",
        "closed": False,
        "version": 3,
    }
    statement = http.get(f"/accounts/{account}/statement").json()
    assert [(line["version"], line["kind"], line["amount"]) for line in statement] == [
        (2, "deposit", "30.00"),
        (3, "withdrawal", "-12.25"),
    ]
    assert all(line["occurred_at"] for line in statement)

    refused = http.post(f"/accounts/{account}/close")
    assert refused.status_code == 422
    assert "still holds 17.75" in problem_of(refused)["detail"]
    http.post(f"/accounts/{account}/withdrawals", json={"amount": "17.75"})
    closed = http.post(f"/accounts/{account}/close")
    assert closed.status_code == 200 and closed.json()["versions"] == {f"Account#{account}": 5}
    assert http.get(f"/accounts/{account}").json()["closed"] is True
    after = http.post(f"/accounts/{account}/deposits", json={"amount": "1"})
    assert after.status_code == 422 and "is closed" in problem_of(after)["detail"]


def test_a_new_account_has_an_empty_statement(http: httpx.Client) -> None:
    account = open_account(http)
    assert http.get(f"/accounts/{account}/statement").json() == []
    assert http.get(f"/accounts/{account}").json()["balance"] == "0.00"


def test_a_transfer_moves_money_between_two_accounts_at_once(http: httpx.Client) -> None:
    source, target = open_account(http, deposit="10"), open_account(http)
    moved = http.post(
        "/transfers",
        json={"source_account_id": source, "target_account_id": target, "amount": "4.50"},
    )
    assert moved.status_code == 200
    assert moved.json()["versions"] == {f"Account#{source}": 3, f"Account#{target}": 2}
    assert http.get(f"/accounts/{source}").json()["balance"] == "5.50"
    assert http.get(f"/accounts/{target}").json()["balance"] == "4.50"
    assert http.get(f"/accounts/{target}/statement").json()[-1]["amount"] == "4.50"


def test_a_user_registered_renamed_and_forgotten(http: httpx.Client) -> None:
    user, email = new_id("user"), f"{new_id('una')}@example.com"
    registered = http.post("/users", json={"user_id": user, "name": "Una", "email": email})
    assert registered.status_code == 201
    assert registered.json()["versions"] == {f"User#{user}": 1}
    assert http.get(f"/users/{user}").json() == {
        "user_id": user,
        "name": "Una",
        "email": email,
        "forgotten": False,
    }

    taken = http.post("/users", json={"user_id": new_id("user"), "name": "U", "email": email})
    assert taken.status_code == 409
    taken_problem = problem_of(taken)
    assert taken_problem["title"] == "value already taken"
    assert email not in taken_problem["detail"]  # the detail names no address

    new_email = f"{new_id('una')}@example.org"
    changed = http.post(f"/users/{user}/email", json={"email": new_email.upper()})
    assert changed.status_code == 200 and changed.json()["versions"] == {f"User#{user}": 2}
    assert http.get(f"/users/{user}").json()["email"] == new_email  # normalised

    again = http.post("/users", json={"user_id": user, "name": "Una", "email": "u@example.net"})
    assert again.status_code == 409 and problem_of(again)["title"] == "already exists"

    forgotten = http.post(f"/users/{user}/forget")
    assert forgotten.status_code == 200
    assert http.get(f"/users/{user}").json() == {
        "user_id": user,
        "name": "(erased)",
        "email": "(erased)",
        "forgotten": True,
    }
    gone = http.post(f"/users/{user}/email", json={"email": "u@example.net"})
    assert gone.status_code == 422 and "was forgotten" in problem_of(gone)["detail"]
    # The address was released with the user: someone else can have it now.
    reused = http.post("/users", json={"user_id": new_id("user"), "name": "V", "email": new_email})
    assert reused.status_code == 201


# -- errors ----------------------------------------------------------------------------------


def move(source: str, target: str | None, amount: str = "1") -> dict[str, str]:
    """A transfer's body; ``target`` None leaves it out."""
    body = {"source_account_id": source, "amount": amount}
    return body if target is None else {**body, "target_account_id": target}


DEPOSIT, WITHDRAW = "/accounts/{acc}/deposits", "/accounts/{acc}/withdrawals"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "detail"),
    [
        # request validation (pydantic)
        ("POST", DEPOSIT, {"amount": 5.5}, 422, "amount: Input should be a valid string"),
        ("POST", DEPOSIT, {"amount": 5}, 422, "amount: Input should be a valid string"),
        ("POST", DEPOSIT, {}, 422, "amount: Field required"),
        ("POST", DEPOSIT, {"amount": "5", "x": 1}, 422, "x: Extra inputs"),
        ("POST", DEPOSIT, {"amount": "1.234"}, 422, "should match pattern"),
        ("POST", DEPOSIT, {"amount": "1e3"}, 422, "should match pattern"),
        ("POST", DEPOSIT, None, 422, "body: Field required"),
        ("POST", "/accounts", {"account_id": "x"}, 422, "owner: Field required"),
        ("POST", "/transfers", move("{acc}", None), 422, "target_account_id: Field required"),
        ("POST", "/users", {"user_id": "u", "name": "U"}, 422, "email: Field required"),
        # business rules (DomainError)
        ("POST", DEPOSIT, {"amount": "-3"}, 422, "must be positive"),
        ("POST", DEPOSIT, {"amount": "0"}, 422, "must be positive"),
        ("POST", WITHDRAW, {"amount": "500"}, 422, "insufficient funds"),
        ("POST", "/transfers", move("{acc}", "{acc}"), 422, "are the same"),
        ("POST", "/transfers", move("{acc}", "{other}", "99"), 422, "insufficient funds"),
        ("POST", "/users", {"user_id": "{new}", "name": "V", "email": "nope"}, 422, "not an email"),
        # identities
        ("POST", "/accounts", {"account_id": "{acc}", "owner": "Eve"}, 409, "already exists"),
        ("POST", "/accounts/{new}/deposits", {"amount": "1"}, 404, "does not exist"),
        ("POST", "/accounts/{new}/withdrawals", {"amount": "1"}, 404, "does not exist"),
        ("POST", "/accounts/{new}/close", None, 404, "does not exist"),
        ("POST", "/transfers", move("{acc}", "{new}"), 404, "does not exist"),
        ("POST", "/users/{new}/email", {"email": "a@example.com"}, 404, "does not exist"),
        ("POST", "/users/{new}/forget", None, 404, "does not exist"),
        ("GET", "/accounts/{new}", None, 404, "is unknown"),
        ("GET", "/accounts/{new}/statement", None, 404, "is unknown"),
        ("GET", "/users/{new}", None, 404, "is unknown"),
        # HTTP itself
        ("GET", "/nowhere", None, 404, "Not Found"),
        ("DELETE", "/accounts", None, 405, "Method Not Allowed"),
    ],
)
def test_errors_are_problem_documents_with_the_right_status(
    http: httpx.Client, method: str, path: str, body: Any, status: int, detail: str
) -> None:
    names = {
        "acc": open_account(http, deposit="10"),
        "other": open_account(http),
        "new": new_id("x"),
    }

    def fill(value: Any) -> Any:
        if isinstance(value, str):
            return value.format(**names)
        if isinstance(value, dict):
            return {key: fill(item) for key, item in value.items()}
        return value

    response = http.request(method, fill(path), json=fill(body))
    assert response.status_code == status, response.text
    assert detail in problem_of(response)["detail"]


def test_a_body_that_is_not_json_is_422(http: httpx.Client) -> None:
    response = http.post(
        "/accounts", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422 and "JSON decode error" in problem_of(response)["detail"]


def test_refused_commands_write_nothing(
    http: httpx.Client, example_store: DynamoDBEventStore
) -> None:
    account = open_account(http, deposit="5")
    assert http.post(f"/accounts/{account}/withdrawals", json={"amount": "6"}).status_code == 422
    assert [e.event_type for e in example_store.load_events("Account", account)] == [
        "AccountOpened",
        "MoneyDeposited",
    ]


def test_an_unreachable_store_is_503_with_retry_after() -> None:
    unreachable = DynamoDBEventStore(
        table_prefix="nowhere",
        endpoint_url="http://127.0.0.1:9",  # the discard port: nothing listens there
        client_config=Config(retries={"total_max_attempts": 1}, connect_timeout=1),
    )
    with Server(create_app(unreachable, api_token=TOKEN)) as client:
        command = client.post("/accounts", json={"account_id": "x", "owner": "X"})
        query = client.get("/accounts/x")
    for response in (command, query):
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "1"
        assert "did not answer" in problem_of(response)["detail"]


def test_a_misconfigured_store_is_500_naming_the_fix_never_503(
    dynamodb_local_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A missing table, a client without credentials: a retry cannot cure them, so no 503 and
    no Retry-After (clients would retry forever); the detail says what to fix."""
    no_tables = DynamoDBEventStore(
        table_prefix=unique_prefix(), endpoint_url=dynamodb_local_endpoint
    )
    with Server(create_app(no_tables, api_token=TOKEN, background_catch_up=False)) as client:
        opened = client.post("/accounts", json={"account_id": "m-1", "owner": "M"})
    assert opened.status_code == 500 and "retry-after" not in opened.headers
    document = problem_of(opened)
    assert document["title"] == "server misconfigured"
    assert "does not exist: create it with store.create_tables()" in document["detail"]

    for name, value in without_aws_credentials({}, str(tmp_path)).items():
        monkeypatch.setenv(name, value)
    for name in CREDENTIAL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    client_without_credentials = boto3.session.Session().client(
        "dynamodb", region_name="us-east-1", endpoint_url=dynamodb_local_endpoint
    )
    anonymous = DynamoDBEventStore(client_without_credentials, table_prefix=unique_prefix())
    with Server(create_app(anonymous, api_token=TOKEN, background_catch_up=False)) as client:
        opened = client.post("/accounts", json={"account_id": "m-2", "owner": "M"})
    assert opened.status_code == 500 and "retry-after" not in opened.headers
    assert "no AWS credentials were found" in problem_of(opened)["detail"]


def test_a_committed_command_answers_even_when_its_projection_fails(
    dynamodb_local_endpoint: str,
) -> None:
    """No read-model tables: the command still succeeds (it is committed); the GET is a 500
    naming the fix (a misconfiguration: never a 503, which clients would retry forever)."""
    store = DynamoDBEventStore(table_prefix=unique_prefix(), endpoint_url=dynamodb_local_endpoint)
    store.create_tables()
    try:
        with Server(create_app(store, api_token=TOKEN)) as client:
            opened = client.post("/accounts", json={"account_id": "p-1", "owner": "P"})
            row = client.get("/accounts/p-1")
        assert opened.status_code == 201 and opened.json()["versions"] == {"Account#p-1": 1}
        assert row.status_code == 500 and "retry-after" not in row.headers
        row_problem = problem_of(row)
        assert row_problem["title"] == "server misconfigured"
        assert "create_read_model_tables" in row_problem["detail"]
        assert [e.event_type for e in store.load_events("Account", "p-1")] == ["AccountOpened"]
    finally:
        store.delete_tables()


# -- idempotency -----------------------------------------------------------------------------


def test_a_retried_post_returns_the_first_response_and_writes_once(
    http: httpx.Client, example_store: DynamoDBEventStore
) -> None:
    account = new_id("acc")
    key = {"Idempotency-Key": f"open-{account}"}
    created = http.post("/accounts", json={"account_id": account, "owner": "Ida"}, headers=key)
    recreated = http.post("/accounts", json={"account_id": account, "owner": "Ida"}, headers=key)
    assert created.status_code == recreated.status_code == 201
    assert created.json()["command_id"] == f"open-{account}"
    assert recreated.json() == {**created.json(), "duplicate": True}

    key = {"Idempotency-Key": f"deposit-{account}"}
    first = http.post(f"/accounts/{account}/deposits", json={"amount": "7.00"}, headers=key)
    again = http.post(f"/accounts/{account}/deposits", json={"amount": "7.00"}, headers=key)
    assert first.status_code == again.status_code == 200
    assert first.json()["duplicate"] is False
    assert again.json() == {**first.json(), "duplicate": True}

    # Even when the rules would now refuse it, a retry gets the first answer.
    key = {"Idempotency-Key": f"withdraw-all-{account}"}
    emptied = http.post(f"/accounts/{account}/withdrawals", json={"amount": "7.00"}, headers=key)
    retried = http.post(f"/accounts/{account}/withdrawals", json={"amount": "7.00"}, headers=key)
    assert emptied.status_code == retried.status_code == 200
    assert retried.json() == {**emptied.json(), "duplicate": True}

    assert [e.event_type for e in example_store.load_events("Account", account)] == [
        "AccountOpened",
        "MoneyDeposited",
        "MoneyWithdrawn",
    ]
    assert http.get(f"/accounts/{account}").json()["balance"] == "0.00"
    assert len(http.get(f"/accounts/{account}/statement").json()) == 2


def test_insufficient_funds_is_its_own_problem_with_its_facts(http: httpx.Client) -> None:
    # Chosen by the refusal's type (InsufficientFunds), its facts read from its attributes:
    # a client acts on them without parsing the detail.
    source, target = open_account(http, deposit="10.50"), open_account(http)
    for path, body in [
        (f"/accounts/{source}/withdrawals", {"amount": "20"}),
        ("/transfers", {"source_account_id": source, "target_account_id": target, "amount": "11"}),
    ]:
        refused = http.post(path, json=body)
        assert refused.status_code == 422
        document = problem_of(refused)
        assert document["title"] == "insufficient funds"
        assert (document["account_id"], document["balance"]) == (source, "10.50")
        assert document["requested"] == body["amount"]
    other_rule = problem_of(http.post(f"/accounts/{source}/deposits", json={"amount": "0"}))
    assert other_rule["title"] == "refused by a business rule" and "balance" not in other_rule


def test_a_key_reused_for_another_request_is_a_conflict(http: httpx.Client) -> None:
    # The framework refuses a command id reused for another payload (CommandIdReused, a
    # ConflictError): another account, or another amount on the same account.
    one, other = open_account(http), open_account(http)
    key = {"Idempotency-Key": f"deposit-{one}"}
    assert http.post(f"/accounts/{one}/deposits", json={"amount": "1"}, headers=key).is_success
    reused = http.post(f"/accounts/{other}/deposits", json={"amount": "1"}, headers=key)
    assert reused.status_code == 409
    assert "already used for a different command" in problem_of(reused)["detail"]
    more = http.post(f"/accounts/{one}/deposits", json={"amount": "2"}, headers=key)
    assert more.status_code == 409
    assert http.get(f"/accounts/{other}").json()["balance"] == "0.00"
    assert http.get(f"/accounts/{one}").json()["balance"] == "1.00"


def test_a_refused_command_does_not_use_up_its_key(http: httpx.Client) -> None:
    account = open_account(http)
    key = {"Idempotency-Key": f"withdraw-{account}"}
    too_soon = http.post(f"/accounts/{account}/withdrawals", json={"amount": "3"}, headers=key)
    assert too_soon.status_code == 422
    http.post(f"/accounts/{account}/deposits", json={"amount": "3"})
    later = http.post(f"/accounts/{account}/withdrawals", json={"amount": "3"}, headers=key)
    assert later.status_code == 200 and later.json()["duplicate"] is False


# -- concurrency -----------------------------------------------------------------------------


def test_concurrent_transfers_conserve_money(
    server: Server, http: httpx.Client, example_store: DynamoDBEventStore
) -> None:
    # On the async application over the aiobotocore store (see test_http_async).
    work = server.app.state.work
    assert isinstance(work, ConcurrentWork) and work.async_application is not None
    store = work.async_application.application.store
    assert isinstance(store, DynamoDBEventStore) and isinstance(store.client, BridgedClient)
    accounts = [open_account(http, owner=f"c{i}", deposit="100.00") for i in range(4)]
    total = Decimal(400)

    def client_thread(seed: int) -> list[int]:
        rng = random.Random(seed)
        statuses = []
        with httpx.Client(base_url=http.base_url, timeout=60, headers=AUTH) as own:
            for _ in range(15):
                source, target = rng.sample(accounts, 2)
                amount = f"{rng.randint(1, 4000) / 100:.2f}"
                response = own.post(
                    "/transfers",
                    json={
                        "source_account_id": source,
                        "target_account_id": target,
                        "amount": amount,
                    },
                )
                statuses.append(response.status_code)
        return statuses

    with ThreadPoolExecutor(4) as pool:
        statuses = [s for batch in pool.map(client_thread, range(4)) for s in batch]
    # 422: a source ran short. 409 would mean a race lost on all of the app's retries.
    assert set(statuses) <= {200, 422}, statuses
    assert statuses.count(200) >= 15  # the test did move money

    app = build_application(example_store)
    aggregates = {a: app.get(Account, a) for a in accounts}
    rows = {a: http.get(f"/accounts/{a}").json() for a in accounts}
    assert sum(aggregate.balance.amount for aggregate in aggregates.values()) == total
    assert sum(Decimal(row["balance"]) for row in rows.values()) == total
    # No movement was lost or doubled by the read models under concurrent requests either.
    for account in accounts:
        lines = http.get(f"/accounts/{account}/statement").json()
        assert Decimal(rows[account]["balance"]) == aggregates[account].balance.amount
        assert rows[account]["version"] == aggregates[account].version
        assert [line["version"] for line in lines] == list(
            range(2, aggregates[account].version + 1)
        )
        assert sum(Decimal(line["amount"]) for line in lines) == aggregates[account].balance.amount


# -- OpenAPI ---------------------------------------------------------------------------------


def test_the_openapi_description_is_served(http: httpx.Client) -> None:
    spec = http.get("/openapi.json").json()
    assert spec["info"]["title"] == "Example bank" and spec["info"]["description"]
    assert set(spec["paths"]) == {
        "/health",
        "/accounts",
        "/accounts/{account_id}/deposits",
        "/accounts/{account_id}/withdrawals",
        "/accounts/{account_id}/withdrawals/{hold_id}/confirm",
        "/accounts/{account_id}/close",
        "/transfers",
        "/users",
        "/users/{user_id}/email",
        "/users/{user_id}/forget",
        "/accounts/{account_id}",
        "/accounts/{account_id}/statement",
        "/users/{user_id}",
    }
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    for path, operations in spec["paths"].items():
        for operation in operations.values():
            assert operation["summary"] and operation["description"]
            if path == "/health":
                assert "security" not in operation
                continue
            assert operation["security"] == [{"HTTPBearer": []}]
            for status in ("401", "500", "503"):
                assert "application/problem+json" in operation["responses"][status]["content"]
    deposit = spec["paths"]["/accounts/{account_id}/deposits"]["post"]
    assert {"201", "200"} & set(deposit["responses"])
    assert "application/problem+json" in deposit["responses"]["422"]["content"]
    assert any(p["name"] == "Idempotency-Key" for p in deposit["parameters"])
    docs = http.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_docs_and_health_need_no_token(http: httpx.Client) -> None:
    with httpx.Client(base_url=http.base_url, timeout=30) as anonymous:
        assert anonymous.get("/health").json() == {"status": "ok"}
        assert anonymous.get("/openapi.json").status_code == 200
        assert anonymous.get("/docs").status_code == 200
        assert anonymous.get("/redoc").status_code == 200
        assert anonymous.get("/accounts/whatever").status_code == 401


# -- the command line ------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["embedded", "dynamodb-local"])
def test_python_m_example_app_serve(
    backend: str, dynamodb_local_endpoint: str, tmp_path: Path
) -> None:
    """The real entry point, in a process of its own, stopped as a user would (Ctrl-C).

    On the embedded store without a token (open, on loopback only); on DynamoDB Local as the
    docs show it, with a token and without any AWS credentials on the machine.
    """
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DYNAMO_ENDPOINT", "AWS_REGION", "EXAMPLE_API_TOKEN")
    }
    prefix = unique_prefix()
    headers: dict[str, str] = {}
    if backend == "dynamodb-local":
        env = without_aws_credentials(env, str(tmp_path))
        env |= {
            "DYNAMO_ENDPOINT": dynamodb_local_endpoint,
            "DYNAMO_TABLE_PREFIX": prefix,
            "EXAMPLE_API_TOKEN": TOKEN,
        }
        headers = AUTH
    server = subprocess.Popen(
        [sys.executable, "-m", "example_app", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base_url = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base_url, timeout=30, headers=headers) as client:
            deadline = time.monotonic() + 60
            while True:
                assert server.poll() is None, server.stdout.read() if server.stdout else ""
                assert time.monotonic() < deadline, "the server did not start"
                try:
                    client.get("/health")
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            if headers:
                assert httpx.get(f"{base_url}/accounts/a").status_code == 401
            assert client.post("/accounts", json={"account_id": "a", "owner": "A"}).is_success
            assert client.post("/accounts/a/deposits", json={"amount": "2.50"}).is_success
            assert client.get("/accounts/a").json()["balance"] == "2.50"
        server.send_signal(signal.SIGINT)
        output, _ = server.communicate(timeout=30)
        assert server.returncode == 0, output
        assert f"serving on http://127.0.0.1:{port}" in output
        if headers:
            assert "needs the EXAMPLE_API_TOKEN bearer token" in output
        else:
            assert "no EXAMPLE_API_TOKEN set: no authentication" in output
            assert "loopback" in output
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        if backend == "dynamodb-local":
            store = DynamoDBEventStore(table_prefix=prefix, endpoint_url=dynamodb_local_endpoint)
            store.delete_tables()
            delete_read_model_tables(store)

"""The example app's HTTP API end to end over real HTTP (uvicorn on loopback), on DynamoDB Local."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import httpx
import pytest
import uvicorn
from botocore.config import Config

from example_app.bank import Account
from example_app.http_api import create_app
from example_app.read_models import create_read_model_tables
from example_app.wiring import build_application
from framework import DynamoDBEventStore
from framework.dynamodb_local import free_port
from tests.conftest import unique_prefix

pytestmark = pytest.mark.dynamodb_local


class Server:
    """uvicorn serving an app in a background thread on a free loopback port."""

    def __init__(self, app: object) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")  # type: ignore[arg-type]
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> httpx.Client:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        return httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)

    def __exit__(self, *exc_info: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def store(dynamodb_local_endpoint: str) -> Iterator[DynamoDBEventStore]:
    store = DynamoDBEventStore(table_prefix=unique_prefix(), endpoint_url=dynamodb_local_endpoint)
    store.create_tables()
    create_read_model_tables(store)
    yield store
    store.delete_tables()


@pytest.fixture(scope="module")
def http(store: DynamoDBEventStore) -> Iterator[httpx.Client]:
    with Server(create_app(store)) as client:
        yield client


def problem_of(response: httpx.Response) -> dict[str, object]:
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = response.json()
    assert body["status"] == response.status_code
    return body


def test_accounts_from_opening_to_closing(http: httpx.Client) -> None:
    opened = http.post("/accounts", json={"account_id": "acc-1", "owner": "Ann"})
    assert opened.status_code == 201 and opened.json()["versions"] == {"Account#acc-1": 1}
    assert http.post("/accounts/acc-1/deposits", json={"amount": "30.00"}).status_code == 200
    assert http.post("/accounts/acc-1/withdrawals", json={"amount": "12.25"}).status_code == 200
    account = http.get("/accounts/acc-1").json()
    assert account == {
        "account_id": "acc-1",
        "owner": "Ann",
        "balance": "17.75",
        "closed": False,
        "version": 3,
    }
    statement = http.get("/accounts/acc-1/statement").json()
    assert [(line["version"], line["kind"], line["amount"]) for line in statement] == [
        (2, "deposit", "30.00"),
        (3, "withdrawal", "-12.25"),
    ]
    refused = http.post("/accounts/acc-1/close")
    assert refused.status_code == 422 and "still holds 17.75" in str(problem_of(refused)["detail"])
    http.post("/accounts/acc-1/withdrawals", json={"amount": "17.75"})
    assert http.post("/accounts/acc-1/close").status_code == 200
    assert http.get("/accounts/acc-1").json()["closed"] is True


def test_transfers_and_users(http: httpx.Client) -> None:
    for account_id in ("t-1", "t-2"):
        http.post("/accounts", json={"account_id": account_id, "owner": account_id})
    http.post("/accounts/t-1/deposits", json={"amount": "10"})
    moved = http.post(
        "/transfers",
        json={"source_account_id": "t-1", "target_account_id": "t-2", "amount": "4.50"},
    )
    assert moved.status_code == 200 and moved.json()["versions"] == {
        "Account#t-1": 3,
        "Account#t-2": 2,
    }
    assert http.get("/accounts/t-2").json()["balance"] == "4.50"

    assert (
        http.post(
            "/users", json={"user_id": "u-1", "name": "Una", "email": "una@example.com"}
        ).status_code
        == 201
    )
    taken = http.post("/users", json={"user_id": "u-2", "name": "Ulf", "email": "UNA@example.com"})
    assert taken.status_code == 409 and problem_of(taken)["title"] == "value already taken"
    assert http.post("/users/u-1/email", json={"email": "una@example.org"}).status_code == 200
    assert http.get("/users/u-1").json()["email"] == "una@example.org"
    assert http.post("/users/u-1/forget").status_code == 200
    assert http.get("/users/u-1").json() == {
        "user_id": "u-1",
        "name": "(erased)",
        "email": "(erased)",
        "forgotten": True,
    }


@pytest.mark.parametrize(
    ("path", "body", "status", "detail"),
    [
        ("/accounts/v-1/deposits", {"amount": 5.5}, 422, "amount: Input should be a valid string"),
        ("/accounts/v-1/deposits", {}, 422, "amount: Field required"),
        ("/accounts/v-1/deposits", {"amount": "5", "x": 1}, 422, "x: Extra inputs"),
        ("/accounts/v-1/deposits", {"amount": "1.234"}, 422, "should match pattern"),
        ("/accounts/v-1/deposits", {"amount": "-3"}, 422, "must be positive"),
        ("/accounts/v-1/withdrawals", {"amount": "500"}, 422, "insufficient funds"),
        ("/accounts/nobody/deposits", {"amount": "1"}, 404, "'nobody' does not exist"),
        ("/accounts", {"account_id": "v-1", "owner": "Eve"}, 409, "already exists"),
        ("/users", {"user_id": "v", "name": "V", "email": "not-an-email"}, 422, "not an email"),
    ],
)
def test_errors_are_problem_documents_with_the_right_status(
    http: httpx.Client, path: str, body: dict[str, object], status: int, detail: str
) -> None:
    http.post("/accounts", json={"account_id": "v-1", "owner": "Val"})
    response = http.post(path, json=body)
    assert response.status_code == status, response.text
    assert detail in str(problem_of(response)["detail"])


def test_unknown_read_models_are_404(http: httpx.Client) -> None:
    for path in ("/accounts/ghost", "/accounts/ghost/statement", "/users/ghost"):
        response = http.get(path)
        assert response.status_code == 404 and problem_of(response)["title"] == "not found"


def test_a_retried_post_returns_the_first_response(
    http: httpx.Client, store: DynamoDBEventStore
) -> None:
    http.post("/accounts", json={"account_id": "i-1", "owner": "Ida"})
    headers = {"Idempotency-Key": "deposit-i-1-0001"}
    first = http.post("/accounts/i-1/deposits", json={"amount": "7.00"}, headers=headers)
    again = http.post("/accounts/i-1/deposits", json={"amount": "7.00"}, headers=headers)
    assert first.status_code == again.status_code == 200
    assert {**first.json(), "duplicate": True} == again.json()
    created = http.post(
        "/accounts", json={"account_id": "i-2", "owner": "Ivo"}, headers={"Idempotency-Key": "o-2"}
    )
    recreated = http.post(
        "/accounts", json={"account_id": "i-2", "owner": "Ivo"}, headers={"Idempotency-Key": "o-2"}
    )
    assert created.status_code == recreated.status_code == 201
    assert [e.event_type for e in store.load_events("Account", "i-1")] == [
        "AccountOpened",
        "MoneyDeposited",
    ]


def test_concurrent_transfers_conserve_money(http: httpx.Client, store: DynamoDBEventStore) -> None:
    accounts = [f"c-{i}" for i in range(4)]
    for account_id in accounts:
        http.post("/accounts", json={"account_id": account_id, "owner": account_id})
        http.post(f"/accounts/{account_id}/deposits", json={"amount": "100.00"})

    def client_thread(seed: int) -> list[int]:
        rng = random.Random(seed)
        statuses = []
        with httpx.Client(base_url=http.base_url, timeout=60) as own:
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
    assert set(statuses) <= {200, 422}, statuses  # 422: a source ran short; nothing else
    app = build_application(store)
    from_aggregates = sum(app.get(Account, a).balance for a in accounts)
    from_read_model = sum(Decimal(http.get(f"/accounts/{a}").json()["balance"]) for a in accounts)
    assert from_aggregates == from_read_model == Decimal(400)


def test_an_unreachable_store_is_503_with_retry_after(dynamodb_local_endpoint: str) -> None:
    unreachable = DynamoDBEventStore(
        table_prefix="nowhere",
        endpoint_url="http://127.0.0.1:9",
        client_config=Config(retries={"total_max_attempts": 1}, connect_timeout=1),
    )
    with Server(create_app(unreachable)) as client:
        response = client.post("/accounts", json={"account_id": "x", "owner": "X"})
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert "DynamoDB did not answer" in str(problem_of(response)["detail"])


def test_openapi_is_served(http: httpx.Client) -> None:
    spec = http.get("/openapi.json").json()
    assert spec["info"]["title"] == "Example bank"
    assert {"/accounts", "/transfers", "/users/{user_id}/forget"} <= set(spec["paths"])
    assert http.get("/docs").status_code == 200

"""The example HTTP API's guards: the bearer token, the body size limit, the loopback-only
binding without a token, the shape of ids in paths, and malformed emails.

Over real HTTP (uvicorn on loopback) against DynamoDB Local, like ``test_http_api.py``; the
body-size tests write raw HTTP on a socket, so that what the client sends is exactly the case
under test (a declared length with no body behind it, a chunked body with no declared length).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence

import httpx
import pytest

from example_app.http_api import (
    MAX_BODY_BYTES,
    UnsafeServing,
    check_binding,
    create_app,
    is_loopback,
)
from framework import DynamoDBEventStore
from tests.example.http_support import (
    AUTH,
    TOKEN,
    Server,
    new_id,
    problem_of,
)

pytestmark = pytest.mark.dynamodb_local


@pytest.fixture
def anonymous(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        yield client


# -- the bearer token ------------------------------------------------------------------------

PROTECTED = [
    ("POST", "/accounts", {"account_id": "a", "owner": "A"}),
    ("POST", "/accounts/a/deposits", {"amount": "1"}),
    ("POST", "/accounts/a/withdrawals", {"amount": "1"}),
    ("POST", "/accounts/a/withdrawals/hold-2/confirm", None),
    ("POST", "/accounts/a/close", None),
    ("POST", "/transfers", {"source_account_id": "a", "target_account_id": "b", "amount": "1"}),
    ("POST", "/users", {"user_id": "u", "name": "U", "email": "u@example.com"}),
    ("POST", "/users/u/email", {"email": "v@example.com"}),
    ("POST", "/users/u/forget", None),
    ("GET", "/accounts/a", None),
    ("GET", "/accounts/a/statement", None),
    ("GET", "/users/u", None),
    ("GET", "/nowhere", None),  # even what does not exist: no probing without the token
]


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED)
def test_every_endpoint_but_health_and_docs_needs_the_token(
    anonymous: httpx.Client, method: str, path: str, body: object
) -> None:
    response = anonymous.request(method, path, json=body)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert problem_of(response)["title"] == "unauthorized"


def test_the_openapi_description_lists_every_protected_operation(http: httpx.Client) -> None:
    spec = http.get("/openapi.json").json()
    listed = {
        (method.upper(), path)
        for path, operations in spec["paths"].items()
        for method in operations
        if "security" in operations[method]
    }
    assert len(listed) == len(PROTECTED) - 1
    assert "/health" not in {path for _, path in listed}


@pytest.mark.parametrize(
    ("authorization", "invalid_token"),
    [
        (f"Bearer {TOKEN}x", True),
        (f"Bearer {TOKEN[:-1]}", True),
        ("Bearer wrong", True),
        (f"Basic {TOKEN}", False),
        (TOKEN, False),
        ("Bearer", False),
    ],
)
def test_a_wrong_token_is_401(
    anonymous: httpx.Client, authorization: str, invalid_token: bool
) -> None:
    response = anonymous.get("/accounts/a", headers={"Authorization": authorization})
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer")
    assert ('error="invalid_token"' in challenge) is invalid_token
    assert TOKEN not in response.text


def test_the_token_opens_every_endpoint(http: httpx.Client, anonymous: httpx.Client) -> None:
    account = new_id("acc")
    assert http.post("/accounts", json={"account_id": account, "owner": "T"}).status_code == 201
    assert http.get(f"/accounts/{account}").json()["owner"] == "T"
    lower_case_scheme = {"Authorization": f"bearer {TOKEN}"}
    assert anonymous.get(f"/accounts/{account}", headers=lower_case_scheme).status_code == 200


def test_health_and_docs_answer_without_a_token(anonymous: httpx.Client) -> None:
    assert anonymous.get("/health").json() == {"status": "ok"}
    for path in ("/openapi.json", "/docs", "/redoc"):
        assert anonymous.get(path).status_code == 200, path


def test_nothing_is_written_without_the_token(
    anonymous: httpx.Client, http: httpx.Client, example_store: DynamoDBEventStore
) -> None:
    account = new_id("acc")
    refused = anonymous.post("/accounts", json={"account_id": account, "owner": "Eve"})
    assert refused.status_code == 401
    assert example_store.load_events("Account", account) == []


def test_the_token_comes_from_the_environment_by_default(
    example_store: DynamoDBEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXAMPLE_API_TOKEN", TOKEN)
    with Server(create_app(example_store), headers={}) as client:
        assert client.get("/users/nobody").status_code == 401
        assert client.get("/users/nobody", headers=AUTH).status_code == 404


def test_without_a_token_the_api_is_open(
    example_store: DynamoDBEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """For development on loopback (``serve`` refuses any other address without a token)."""
    monkeypatch.delenv("EXAMPLE_API_TOKEN", raising=False)
    with Server(create_app(example_store), headers={}) as client:
        assert client.get("/users/nobody").status_code == 404


@pytest.mark.parametrize("token", ["short", "x" * 15, "has space inside", "tøken-with-non-ascii"])
def test_a_weak_or_unusable_token_is_refused_at_start_up(
    example_store: DynamoDBEventStore, token: str
) -> None:
    with pytest.raises(UnsafeServing, match="EXAMPLE_API_TOKEN"):
        create_app(example_store, api_token=token)


# -- the body size limit ---------------------------------------------------------------------


def raw_request(
    port: int, head: str, body_chunks: Sequence[bytes] = ()
) -> tuple[int, dict[str, str], bytes]:
    """Send ``head`` (request line and headers) and ``body_chunks`` on a fresh connection;
    return the status, headers and body of the response."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(head.encode("latin-1"))
        try:
            for chunk in body_chunks:
                connection.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed early: read what it said
        received = b""
        while b"\r\n\r\n" not in received:
            data = connection.recv(65536)
            assert data, f"connection closed before a response: {received!r}"
            received += data
        header_block, _, rest = received.partition(b"\r\n\r\n")
        lines = header_block.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])
        }
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            data = connection.recv(65536)
            if not data:
                break
            rest += data
        return status, headers, rest[:length]


def request_head(method: str, path: str, extra: str) -> str:
    return (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Type: application/json\r\n{extra}\r\n"
    )


def test_a_declared_length_over_the_limit_is_413_before_the_body_is_read(server: Server) -> None:
    """50 MB announced and not a byte sent: the answer comes at once, from the headers alone."""
    head = request_head("POST", "/accounts", f"Content-Length: {50 * 1024 * 1024}\r\n")
    status, headers, body = raw_request(server.port, head)
    assert status == 413
    assert headers["content-type"] == "application/problem+json"
    document = json.loads(body)
    assert document["status"] == 413 and str(MAX_BODY_BYTES) in document["detail"]


def chunked(payload: bytes, size: int) -> list[bytes]:
    pieces = [payload[i : i + size] for i in range(0, len(payload), size)]
    return [b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces] + [b"0\r\n\r\n"]


def test_a_chunked_body_over_the_limit_is_413_while_streaming(server: Server) -> None:
    """No length declared: the body is counted as it arrives and refused once over the limit."""
    payload = b'{"account_id": "' + b"x" * (MAX_BODY_BYTES + 4096) + b'", "owner": "A"}'
    head = request_head("POST", "/accounts", "Transfer-Encoding: chunked\r\n")
    status, headers, body = raw_request(server.port, head, chunked(payload, 8192))
    assert status == 413 and headers["content-type"] == "application/problem+json"
    assert json.loads(body)["title"] == "request body too large"


def test_a_chunked_body_under_the_limit_goes_through(server: Server) -> None:
    account = new_id("acc")
    payload = json.dumps({"account_id": account, "owner": "C" * 100}).encode()
    head = request_head("POST", "/accounts", "Transfer-Encoding: chunked\r\n")
    status, _, body = raw_request(server.port, head, chunked(payload, 7))
    assert status == 201, body
    assert json.loads(body)["versions"] == {f"Account#{account}": 1}


def test_a_body_just_over_the_limit_is_413_and_one_at_the_limit_is_read(
    http: httpx.Client,
) -> None:
    at_limit = b"{" + b" " * (MAX_BODY_BYTES - 2) + b"}"
    read = http.post("/accounts", content=at_limit, headers={"content-type": "application/json"})
    assert read.status_code == 422  # read and validated: fields are missing
    over = http.post("/accounts", content=at_limit + b" ")
    assert over.status_code == 413 and problem_of(over)["title"] == "request body too large"


# -- ids in paths ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/accounts/{id}", None),
        ("GET", "/accounts/{id}/statement", None),
        ("POST", "/accounts/{id}/deposits", {"amount": "1"}),
        ("POST", "/accounts/{id}/withdrawals", {"amount": "1"}),
        ("POST", "/accounts/{id}/withdrawals/hold-2/confirm", None),
        ("POST", "/accounts/{id}/close", None),
        ("GET", "/users/{id}", None),
        ("POST", "/users/{id}/email", {"email": "a@example.com"}),
        ("POST", "/users/{id}/forget", None),
    ],
)
@pytest.mark.parametrize("bad_id", ["x" * 201, "x" * 5000, "a b", "tab%09here", "nul%00"])
def test_an_id_in_a_path_is_validated_like_one_in_a_body(
    http: httpx.Client, method: str, path: str, body: object, bad_id: str
) -> None:
    response = http.request(method, path.format(id=bad_id), json=body)
    assert response.status_code == 422, response.text
    assert problem_of(response)["title"] == "invalid request"


@pytest.mark.parametrize("bad_id", ["x" * 201, "a b", ""])
def test_an_id_in_a_body_is_validated(http: httpx.Client, bad_id: str) -> None:
    response = http.post("/accounts", json={"account_id": bad_id, "owner": "A"})
    assert response.status_code == 422 and problem_of(response)["title"] == "invalid request"


def test_an_id_of_the_longest_length_is_accepted(http: httpx.Client) -> None:
    account = "y" * 192 + new_id("")[1:]
    assert len(account) == 200
    assert http.post("/accounts", json={"account_id": account, "owner": "L"}).status_code == 201
    assert http.post(f"/accounts/{account}/deposits", json={"amount": "1"}).status_code == 200
    assert http.get(f"/accounts/{account}").json()["balance"] == "1.00"


# -- emails ----------------------------------------------------------------------------------


@pytest.mark.parametrize("email", ["a@@b.c", "a@b@c.de", "@example.com", "a@example", "a b@c.de"])
def test_a_malformed_email_is_422(http: httpx.Client, email: str) -> None:
    response = http.post("/users", json={"user_id": new_id("u"), "name": "M", "email": email})
    assert response.status_code == 422
    assert "not an email address" in problem_of(response)["detail"]


# -- where serve listens ---------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_addresses(host: str) -> None:
    assert is_loopback(host)
    check_binding(host, None)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.com", ""])
def test_other_addresses_need_a_token(host: str) -> None:
    assert not is_loopback(host)
    with pytest.raises(UnsafeServing, match="without EXAMPLE_API_TOKEN"):
        check_binding(host, None)
    check_binding(host, TOKEN)


def test_serve_refuses_a_public_address_without_a_token() -> None:
    """One clear line, a failing exit status, and nothing started (it returns at once)."""
    env = {k: v for k, v in os.environ.items() if k != "EXAMPLE_API_TOKEN"}
    result = subprocess.run(
        [sys.executable, "-m", "example_app", "serve", "--host", "0.0.0.0", "--port", "9"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "refusing to listen on 0.0.0.0 without EXAMPLE_API_TOKEN" in lines[0]
    assert "127.0.0.1" in lines[0]


def test_serve_refuses_a_short_token() -> None:
    env = {**os.environ, "EXAMPLE_API_TOKEN": "short"}
    result = subprocess.run(
        [sys.executable, "-m", "example_app", "serve", "--port", "9"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "EXAMPLE_API_TOKEN is shorter than 16 characters" in result.stderr

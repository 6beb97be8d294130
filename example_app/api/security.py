"""Who may call, and how much they may send: the bearer token and the body limit, as ASGI
middleware in front of the app, and the rule that an API without a token listens on loopback only.

Every endpoint but ``/health`` and the docs needs ``Authorization: Bearer <EXAMPLE_API_TOKEN>``
when a token is configured. Request bodies are limited to ``MAX_BODY_BYTES``.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os

from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from example_app.api.problems import problem

TOKEN_ENV = "EXAMPLE_API_TOKEN"
"""The environment variable holding the bearer token every endpoint but health and docs needs."""

MIN_TOKEN_LENGTH = 16
"""A shorter token is refused at start-up: it could be guessed."""

PUBLIC_PATHS = frozenset({"/health", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc"})
"""What answers without the token: health checks and the API's description."""


class UnsafeServing(ValueError):
    """``serve`` refuses a configuration that would expose the API: the message says why."""


# -- authentication and body size -----------------------------------------------------------


def api_token_from_env() -> str | None:
    """The bearer token from ``EXAMPLE_API_TOKEN``, ``None`` when unset; a short one is refused."""
    token = os.environ.get(TOKEN_ENV) or None
    if token is not None:
        check_token(token)
    return token


def check_token(token: str) -> None:
    """Refuse a token that could be guessed, or that cannot travel in a header."""
    if len(token) < MIN_TOKEN_LENGTH:
        raise UnsafeServing(
            f"{TOKEN_ENV} is shorter than {MIN_TOKEN_LENGTH} characters: use a random one, "
            'for example python -c "import secrets; print(secrets.token_urlsafe(32))"'
        )
    if not token.isascii() or not token.isprintable() or " " in token:
        raise UnsafeServing(f"{TOKEN_ENV} must be printable ASCII without spaces")


def is_loopback(host: str) -> bool:
    """Whether listening on ``host`` keeps the server reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).digest()


class RequestGuard:
    """ASGI middleware: the bearer token, then the body size, before the app sees the request.

    The token is compared in constant time (both sides hashed to equal lengths first, then
    ``hmac.compare_digest``). The body is read here, up to ``max_body`` bytes, and handed to the
    app only once it is known to fit: a declared ``Content-Length`` over the limit is refused
    before a byte of the body is read, and a chunked body as soon as it goes over.
    """

    def __init__(self, app: ASGIApp, *, token: str | None, max_body: int) -> None:
        self.app = app
        self.token_digest = None if token is None else _digest(token)
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if self.token_digest is not None and scope["path"] not in PUBLIC_PATHS:
            refusal = self._refuse_unauthorised(headers.get("authorization"))
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            await self._too_large()(scope, receive, send)
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left: nobody to answer
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_body:
                await self._too_large()(scope, receive, send)
                return
        await self.app(scope, _replay(bytes(body), receive), send)

    def _refuse_unauthorised(self, authorization: str | None) -> JSONResponse | None:
        realm = 'Bearer realm="example-bank"'
        scheme, _, presented = (authorization or "").partition(" ")
        if not authorization or scheme.lower() != "bearer" or not presented.strip():
            return problem(
                401,
                "unauthorized",
                "this endpoint needs an 'Authorization: Bearer <token>' header",
                headers={"WWW-Authenticate": realm},
            )
        assert self.token_digest is not None
        if hmac.compare_digest(_digest(presented.strip()), self.token_digest):
            return None
        return problem(
            401,
            "unauthorized",
            "the bearer token is not valid",
            headers={"WWW-Authenticate": f'{realm}, error="invalid_token"'},
        )

    def _too_large(self) -> JSONResponse:
        return problem(
            413,
            "request body too large",
            f"request bodies are limited to {self.max_body} bytes",
            headers={"Connection": "close"},
        )


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands over the buffered body, then whatever the client sends next."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def check_binding(host: str, token: str | None) -> None:
    """Refuse to listen beyond loopback without a token: anyone could read and forget users
    and move money."""
    if token is None and not is_loopback(host):
        raise UnsafeServing(
            f"refusing to listen on {host} without {TOKEN_ENV}: anyone who can reach it could "
            f"read and forget users and move money; set {TOKEN_ENV} or listen on 127.0.0.1"
        )

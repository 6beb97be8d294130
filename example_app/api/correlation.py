"""Which conversation a request belongs to: ASGI middleware around the whole app.

It reads ``X-Correlation-Id`` (a new conversation when absent; a malformed one is a 400 problem,
before anything runs) and the W3C ``traceparent``, serves the request inside
``framework.http.request_scope`` (so the commands it runs carry the correlation id, and the
request's id as their cause), and answers every response, errors included, with
``X-Correlation-Id`` and ``X-Request-Id``.
"""

from __future__ import annotations

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from example_app.api.problems import problem
from framework.http import (
    CORRELATION_ID_HEADER,
    REQUEST_ID_HEADER,
    TRACEPARENT_HEADER,
    TRACESTATE_HEADER,
    InvalidCorrelationId,
    RequestContext,
    request_scope,
)


class Correlation:
    """ASGI middleware: the request's context for the app, its ids on the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        try:
            context = RequestContext.from_headers(
                headers.get(CORRELATION_ID_HEADER),
                traceparent=headers.get(TRACEPARENT_HEADER),
                tracestate=headers.get(TRACESTATE_HEADER),
            )
        except InvalidCorrelationId as error:
            refusal = problem(
                400,
                "invalid correlation id",
                str(error),
                headers={REQUEST_ID_HEADER: error.request_id},
            )
            await refusal(scope, receive, send)
            return

        async def send_with_ids(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_headers = MutableHeaders(scope=message)
                response_headers[CORRELATION_ID_HEADER] = context.correlation_id
                response_headers[REQUEST_ID_HEADER] = context.request_id
            await send(message)

        with request_scope(context):
            await self.app(scope, receive, send_with_ids)

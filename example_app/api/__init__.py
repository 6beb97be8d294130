"""The example bank over HTTP (FastAPI), one module per job: copy the layout.

- ``schemas``: request and response bodies (pydantic), ids and amounts as they travel;
- ``problems``: errors as RFC 9457 problem documents, chosen by the error's type;
- ``security``: the bearer token and the body limit (ASGI middleware), the binding rule;
- ``commands``: runs a command for an endpoint: its ``Idempotency-Key`` bound to it, read models
  updated before the response (both from ``framework.http``);
- ``reads``: read-model reads, their errors translated like the store's;
- ``catch_up``: the example's read-your-writes, over its own projectors;
- ``accounts``, ``users``, ``operations``: the routers, one per area;
- ``app``: ``create_app``, which puts them together; ``serving``: ``python -m example_app serve``.

``example_app.http_api`` re-exports what callers use (``create_app``, ``serve``, ...).
"""

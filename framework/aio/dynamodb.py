"""The DynamoDB event store on aiobotocore: the same store code, its requests awaited.

``DynamoDBEventStore`` talks to a boto3-shaped client: ``client.query(**request)`` returns the
parsed answer or raises botocore's ``ClientError``. ``BridgedClient`` gives an aiobotocore client
that very surface: each API method awaits the aiobotocore call with ``wait_for``, so the store's
plan, conditions, lean ``Query`` decoding, feed markers, key storage and error mapping run
unchanged, one copy for both faces. aiobotocore raises botocore's own exception classes, so the
mapping onto the framework's errors needs no second copy either.

``open_async_store(store)`` opens the aiobotocore clients a store needs (DynamoDB, and S3 when
large payloads go to a bucket), attaches them, and closes them on exit. Every call into the store
must then come through the bridge: ``AsyncApplication`` or ``run_in_greenlet``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiobotocore.response import StreamingBody
from aiobotocore.session import AioSession, get_session

from framework.aio.bridge import wait_for
from framework.store.dynamodb.event_store import DynamoDBEventStore, lean_client
from framework.store.large_payloads import S3PayloadStore

__all__ = ["BridgedClient", "open_async_store"]


class BridgedClient:
    """The sync methods of a botocore client, each awaiting an aiobotocore client's call.

    Only API operations are offered (``query``, ``transact_write_items``...): they are what the
    store calls. ``meta`` and ``exceptions`` are the aiobotocore client's own (the same event
    names and the same botocore exception classes). Call it only from code that runs in
    ``run_in_greenlet``: elsewhere each call raises ``BridgeError``.
    """

    def __init__(self, client: Any) -> None:
        self.aio_client = client
        self.meta = client.meta
        self.exceptions = client.exceptions
        self._operations = frozenset(client.meta.method_to_api_mapping)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_") or name not in self._operations:
            raise AttributeError(
                f"{type(self).__name__} offers the API operations of the "
                f"{self.meta.service_model.service_name} client, not {name!r}"
            )
        operation = getattr(self.aio_client, name)

        def call(**request: Any) -> Any:
            return _synchronous(wait_for(operation(**request)))

        call.__name__ = name
        return call


class _BridgedBody:
    """A streamed answer body (S3 ``GetObject``) read through the bridge, like botocore's."""

    def __init__(self, body: StreamingBody) -> None:
        self._body = body

    def read(self, amt: int | None = None) -> bytes:
        data: bytes = wait_for(self._body.read(amt))
        return data

    def close(self) -> None:
        self._body.close()


def _synchronous(response: Any) -> Any:
    """The answer with its streamed body, if any, made readable from sync code."""
    if isinstance(response, dict) and isinstance(response.get("Body"), StreamingBody):
        return {**response, "Body": _BridgedBody(response["Body"])}
    return response


@contextlib.asynccontextmanager
async def open_async_store(
    store: DynamoDBEventStore, *, session: AioSession | None = None
) -> AsyncIterator[DynamoDBEventStore]:
    """``store`` with its requests sent by aiobotocore clients, open for the block.

    ``store`` is built as for the sync face and not used yet (``DynamoDBEventStore(...)``,
    ``from_env()``, ``from_settings(...)``): its endpoint, region, client settings and dummy
    local credentials are the ones its own client would have had, and its DynamoDB client is
    made lean the same way (``lean_client``). An ``S3PayloadStore`` without a client of its own
    gets an aiobotocore S3 client too. The clients belong to the running event loop: open the
    store in the loop that will use it.
    """
    session = session or get_session()
    async with contextlib.AsyncExitStack() as clients:
        dynamodb = await clients.enter_async_context(
            session.create_client("dynamodb", **store.client_options())
        )
        store.attach_client(BridgedClient(lean_client(dynamodb)))
        payloads = store.large_payloads
        if isinstance(payloads, S3PayloadStore) and payloads._client is None:
            s3 = await clients.enter_async_context(
                session.create_client("s3", region_name=payloads.region_name)
            )
            store.large_payloads = S3PayloadStore(
                payloads.bucket,
                prefix=payloads.prefix,
                client=BridgedClient(s3),
                region_name=payloads.region_name,
            )
        yield store

"""The async face's other AWS clients: S3 for large payloads and KMS for data keys, on
aiobotocore, against moto's server on the loopback (the store itself on DynamoDB Local)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from aiobotocore.session import get_session

from example_app.users import RegisterUser, User
from example_app.wiring import build_application
from framework import Application, DynamoDBEventStore
from framework.aio import AsyncApplication, BridgedClient, open_async_store, run_in_greenlet
from framework.config import Settings
from framework.encryption import KeyRing, KmsKeyWrapper
from framework.store import DynamoDBKeyStorage, S3PayloadStore
from tests.integration.test_large_payloads import Attach, Document, big_text
from tests.support.aio import BridgedLoop

pytestmark = pytest.mark.dynamodb_local

BUCKET = "events-large"


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:  # a free port on the loopback
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def test_large_payloads_go_to_s3_and_come_back_through_aiobotocore(
    moto_endpoint: str,
    dynamodb_settings: Settings,
    bridged: BridgedLoop,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_endpoint)
    boto3.client("s3", region_name="us-east-1", endpoint_url=moto_endpoint).create_bucket(
        Bucket=BUCKET
    )
    content = big_text()

    async def scenario() -> tuple[Document, list[int], Any]:
        store = DynamoDBEventStore.from_settings(dynamodb_settings)
        store.large_payloads = S3PayloadStore(BUCKET)
        async with open_async_store(store) as opened:
            payloads = opened.large_payloads
            assert isinstance(payloads, S3PayloadStore)
            assert isinstance(payloads.client, BridgedClient)
            await run_in_greenlet(opened.create_tables)
            try:
                app = AsyncApplication(Application(store=opened, aggregates=[Document]))
                await asyncio.gather(
                    app.handle(Attach(document_id="d", content=content)),
                    app.handle(Attach(document_id="e", content="small")),
                )
                document = await app.get(Document, "d")
                fed = await run_in_greenlet(lambda: list(opened.read_feed()))
                missing = await run_in_greenlet(payloads.get, "no/such/key")
                return document, sorted(len(event.payload) for event in fed), missing
            finally:
                await run_in_greenlet(opened.delete_tables)

    document, sizes, missing = bridged.run(scenario())
    assert document.sizes == (len(content),)
    assert sizes[-1] > 300_000 and sizes[0] < 1_000
    assert missing is None
    listed = boto3.client("s3", region_name="us-east-1", endpoint_url=moto_endpoint)
    assert listed.list_objects_v2(Bucket=BUCKET)["KeyCount"] == 1


def test_data_keys_wrapped_by_kms_through_aiobotocore(
    moto_endpoint: str, async_local_store: DynamoDBEventStore, bridged: BridgedLoop
) -> None:
    key_id = boto3.client("kms", region_name="us-east-1", endpoint_url=moto_endpoint).create_key()[
        "KeyMetadata"
    ]["KeyId"]

    async def scenario() -> list[User]:
        async with contextlib.AsyncExitStack() as clients:
            kms = await clients.enter_async_context(
                get_session().create_client(
                    "kms", region_name="us-east-1", endpoint_url=moto_endpoint
                )
            )
            keys = KeyRing(
                KmsKeyWrapper(key_id, client=BridgedClient(kms)),
                DynamoDBKeyStorage(async_local_store),
                cache_seconds=0,  # every read unwraps again: KMS Decrypt on every load
            )
            app = AsyncApplication(build_application(async_local_store, keys))
            await asyncio.gather(
                *(
                    app.handle(
                        RegisterUser(user_id=f"u{n}", name=f"User {n}", email=f"u{n}@example.com")
                    )
                    for n in range(10)
                )
            )
            return list(await asyncio.gather(*(app.get(User, f"u{n}") for n in range(10))))

    users = bridged.run(scenario())
    assert [user.name for user in users] == [f"User {n}" for n in range(10)]

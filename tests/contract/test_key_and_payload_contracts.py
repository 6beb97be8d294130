"""The shipped key-storage and payload-store contracts, run against the framework's adapters."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from framework.encryption import InMemoryKeyStorage, WrappedKeyStorage
from framework.store import DynamoDBEventStore
from framework.store.dynamodb.key_storage import DynamoDBKeyStorage
from framework.store.large_payloads import InMemoryPayloadStore, PayloadStore, S3PayloadStore
from framework.testing.contracts import KeyStorageContract, PayloadStoreContract


class TestInMemoryKeyStorage(KeyStorageContract):
    @pytest.fixture
    def key_storage(self) -> WrappedKeyStorage:
        return InMemoryKeyStorage()


class TestMotoKeyStorage(KeyStorageContract):
    @pytest.fixture
    def key_storage(self, moto_store: DynamoDBEventStore) -> WrappedKeyStorage:
        return DynamoDBKeyStorage(moto_store)


@pytest.mark.dynamodb_local
class TestDynamoDBLocalKeyStorage(KeyStorageContract):
    @pytest.fixture
    def key_storage(self, local_store: DynamoDBEventStore) -> WrappedKeyStorage:
        return DynamoDBKeyStorage(local_store)


class TestInMemoryPayloadStore(PayloadStoreContract):
    @pytest.fixture
    def payloads(self) -> PayloadStore:
        return InMemoryPayloadStore()


class TestS3PayloadStoreOnMoto(PayloadStoreContract):
    @pytest.fixture
    def payloads(self) -> Iterator[PayloadStore]:
        with mock_aws():
            s3 = boto3.client("s3", region_name="us-east-1")
            s3.create_bucket(Bucket="contract-payloads")
            yield S3PayloadStore("contract-payloads", client=s3)

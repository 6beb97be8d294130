"""``DynamoDBEventStore.unopened_copy``: the same deployment, for a second face (the async one)."""

from __future__ import annotations

import datetime as dt

import boto3
import pytest
from botocore.config import Config

from framework import DynamoDBEventStore
from framework.errors import ConfigurationError
from framework.store import S3PayloadStore


def test_the_copy_names_the_same_tables_endpoint_and_settings_without_a_client() -> None:
    payloads = S3PayloadStore("bucket")
    config = Config(connect_timeout=3)
    store = DynamoDBEventStore(
        table_prefix="copied",
        endpoint_url="http://127.0.0.1:8000",
        region_name="eu-west-3",
        command_retention=dt.timedelta(days=2),
        client_config=config,
        large_payloads=payloads,
        feed_shards=3,
    )
    assert store.client is not None  # the original made its client: the copy must not share it
    copy = store.unopened_copy()
    assert copy.tables == store.tables
    assert copy.client_options() == store.client_options()
    assert (copy.command_retention, copy.feed_shards) == (dt.timedelta(days=2), 3)
    assert copy.large_payloads is payloads
    copy.attach_client(object())  # not used yet: a client can still be attached


def test_a_store_given_its_own_client_is_not_copied() -> None:
    client = boto3.session.Session().client("dynamodb", region_name="us-east-1")
    with pytest.raises(ConfigurationError, match="given its own client"):
        DynamoDBEventStore(client, table_prefix="given").unopened_copy()

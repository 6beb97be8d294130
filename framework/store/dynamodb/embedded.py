"""The embedded default: a DynamoDB event store on moto, in process, for a first run.

No AWS account, no Java, no configuration: ``with embedded_dynamodb_store() as store`` gives a
``DynamoDBEventStore`` whose boto3 client talks to moto's in-process DynamoDB, with the tables
created. Everything is gone when the block ends. moto ships with the ``embedded`` extra.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

from framework.errors import StoreUnavailable
from framework.store.dynamodb.event_store import DynamoDBEventStore

_FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "embedded",
    "AWS_SECRET_ACCESS_KEY": "embedded",
    "AWS_SESSION_TOKEN": "embedded",
}


@contextmanager
def embedded_dynamodb_store(
    table_prefix: str = "embedded", region_name: str = "us-east-1"
) -> Iterator[DynamoDBEventStore]:
    """A DynamoDB store on moto, tables created, for the length of the ``with`` block."""
    try:
        from moto import mock_aws
    except ImportError as error:
        raise StoreUnavailable(
            "the embedded DynamoDB needs moto: pip install 'dynamo-cqrs-framework[embedded]'"
        ) from error
    # Fake credentials keep boto3 from looking for (or finding) real ones while mocked.
    with mock.patch.dict(os.environ, _FAKE_CREDENTIALS), mock_aws():
        store = DynamoDBEventStore(table_prefix=table_prefix, region_name=region_name)
        store.create_tables()
        yield store

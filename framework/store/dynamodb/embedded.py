"""The embedded default: a DynamoDB event store on moto, in process, for a first run.

No AWS account, no Java, no configuration: ``with embedded_dynamodb_store() as store`` gives a
``DynamoDBEventStore`` whose boto3 client talks to moto's in-process DynamoDB, with the tables
created. Everything is gone when the block ends. moto ships with the ``embedded`` extra.

moto keeps its tables in plain dictionaries with no lock of its own, and a ``TransactWriteItems``
copies them all (to roll back on a refused condition) while another thread may be writing: the
catch-up runner's lanes, a server's worker threads. So moto answers one request at a time,
whichever client sent it (the store's, PynamoDB's, the user's own): the first embedded store
wraps moto's request handler in a lock, once for the process, and leaves it so. Wrapping it per
block and unwrapping it after would undo another block's wrapping when two blocks, in two
threads, end in another order than they began.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

from framework.errors import StoreUnavailable
from framework.store.dynamodb.event_store import DynamoDBEventStore

_FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "embedded",
    "AWS_SECRET_ACCESS_KEY": "embedded",
    "AWS_SESSION_TOKEN": "embedded",
}

# moto's DynamoDB lives once per process, however many embedded stores are open: one lock for all.
_ONE_REQUEST_AT_A_TIME = threading.RLock()
_WRAPPED = "framework_one_request_at_a_time"


@contextmanager
def embedded_dynamodb_store(
    table_prefix: str = "embedded", region_name: str = "us-east-1"
) -> Iterator[DynamoDBEventStore]:
    """A DynamoDB store on moto, tables created, for the length of the ``with`` block."""
    try:
        from moto import mock_aws
        from moto.core.botocore_stubber import BotocoreStubber
    except ImportError as error:
        raise StoreUnavailable(
            "the embedded DynamoDB needs moto: pip install 'dynamo-cqrs-framework[embedded]'"
        ) from error
    _answer_one_request_at_a_time(BotocoreStubber)
    # Fake credentials keep boto3 from looking for (or finding) real ones while mocked.
    with mock.patch.dict(os.environ, _FAKE_CREDENTIALS), mock_aws():
        store = DynamoDBEventStore(table_prefix=table_prefix, region_name=region_name)
        store.create_tables()
        yield store


def _answer_one_request_at_a_time(stubber: Any) -> None:
    """Wrap moto's ``process_request`` (the class ``stubber``'s) in the lock, once per process."""
    with _ONE_REQUEST_AT_A_TIME:
        answer_unlocked = stubber.process_request
        if getattr(answer_unlocked, _WRAPPED, False):
            return

        def answer_alone(self: Any, request: Any) -> Any:
            with _ONE_REQUEST_AT_A_TIME:
                return answer_unlocked(self, request)

        setattr(answer_alone, _WRAPPED, True)
        stubber.process_request = answer_alone

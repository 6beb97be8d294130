"""The embedded store (moto, in process) serves several threads at once without corrupting moto.

moto copies all its tables on every ``TransactWriteItems`` (to roll back a refused condition);
a write from another thread during that copy broke the copy ("dictionary changed size during
iteration"), which the catch-up runner's parallel lanes met on the demo.
"""

from __future__ import annotations

import threading

import boto3

from framework.store import embedded_dynamodb_store
from framework.store.dynamodb import embedded

ROUNDS = 150
THREADS = 4


def test_threads_writing_through_different_clients_all_succeed() -> None:
    failures: list[BaseException] = []
    with embedded_dynamodb_store(table_prefix="threads") as store:
        own_client = boto3.client("dynamodb", region_name=store.region_name)  # not the store's

        def write(thread: int) -> None:
            client = store.client if thread % 2 else own_client
            try:
                for round_ in range(ROUNDS):
                    key = {"S": f"thread-{thread}-{round_}"}
                    client.transact_write_items(
                        TransactItems=[
                            {
                                "Put": {
                                    "TableName": store.tables.positions,
                                    "Item": {"pk": key},
                                    "ConditionExpression": "attribute_not_exists(pk)",
                                }
                            }
                        ]
                    )
            except BaseException as error:
                failures.append(error)

        threads = [threading.Thread(target=write, args=(n,)) for n in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        stored = store.client.scan(TableName=store.tables.positions, Select="COUNT")["Count"]

    assert failures == []
    assert stored == ROUNDS * THREADS


def test_two_blocks_ending_out_of_order_leave_moto_wrapped_once() -> None:
    from moto.core.botocore_stubber import BotocoreStubber

    first = embedded_dynamodb_store(table_prefix="first")
    second = embedded_dynamodb_store(table_prefix="second")
    first.__enter__()
    second.__enter__()
    wrapped = BotocoreStubber.process_request
    assert getattr(wrapped, embedded._WRAPPED, False)  # moto's handler behind the lock
    first.__exit__(None, None, None)  # the first to begin ends first
    assert BotocoreStubber.process_request is wrapped  # the second's requests stay locked
    second.__exit__(None, None, None)
    with embedded_dynamodb_store(table_prefix="third"):
        assert BotocoreStubber.process_request is wrapped  # not wrapped again

"""The DynamoDB adapters of the store's ports: one module a job.

``event_store`` commits plans and reads streams and the feed; ``tables`` creates and describes
the tables; ``feed_hours`` keeps the feed's hour markers; ``streams`` turns DynamoDB Streams
records into stored events; ``positions`` and ``key_storage`` keep projector positions and data
keys; ``embedded`` runs the event store on moto in process for a first run. Only these modules
(and the AWS adapters of the projections) load the AWS SDK.

Names are imported on first use, so that importing one adapter does not load the others.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from framework.store.dynamodb.embedded import embedded_dynamodb_store
    from framework.store.dynamodb.event_store import DynamoDBEventStore, translated_errors
    from framework.store.dynamodb.key_storage import DynamoDBKeyStorage
    from framework.store.dynamodb.positions import DynamoDBPositionStore
else:
    from framework._lazy import lazy_exports

    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "DynamoDBEventStore": "framework.store.dynamodb.event_store",
            "DynamoDBKeyStorage": "framework.store.dynamodb.key_storage",
            "DynamoDBPositionStore": "framework.store.dynamodb.positions",
            "embedded_dynamodb_store": "framework.store.dynamodb.embedded",
            "translated_errors": "framework.store.dynamodb.event_store",
        },
    )

__all__ = [
    "DynamoDBEventStore",
    "DynamoDBKeyStorage",
    "DynamoDBPositionStore",
    "embedded_dynamodb_store",
    "translated_errors",
]

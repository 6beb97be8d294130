"""Read models: the ``Projector`` base class, the engine that applies events exactly once and in
order per stream, and the runners that deliver events to it (catch-up over the feed index, a
DynamoDB Streams poller, an AWS Lambda handler in ``framework.projections.aws_lambda``), and the
``EventBridgePublisher`` that follows events the same way to publish them
(``framework.projections.publisher``), and ``ProcessManager``, which follows them to issue
commands, now or at a deadline (``framework.projections.process_managers``, ``deadlines``, and
the DynamoDB deadline store in ``dynamodb_deadlines``).

This is the public module of the read side; ``framework.projections.read_models`` creates, binds
and deletes the read models' tables. The runners read DynamoDB through boto3 and are imported on
first use.
"""

from typing import TYPE_CHECKING

from framework.projections.engine import ApplyReport, ProjectionEngine
from framework.projections.projector import Envelope, Projector

if TYPE_CHECKING:
    from framework.projections.catch_up import (
        DEFAULT_SAFETY_WINDOW,
        DEFAULT_WORKERS,
        CatchUpRunner,
    )
    from framework.projections.deadlines import (
        CancelResult,
        Deadline,
        DeadlineRunner,
        DeadlineStatus,
        DeadlineStore,
        InMemoryDeadlineStore,
    )
    from framework.projections.dynamodb_deadlines import DynamoDBDeadlineStore
    from framework.projections.process_managers import ProcessManager, derived_command_id
    from framework.projections.process_state import ProcessState
    from framework.projections.publisher import EventBridgePublisher
    from framework.projections.streams_poller import StreamsPoller
else:
    from framework._lazy import lazy_exports

    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "CatchUpRunner": "framework.projections.catch_up",
            "DEFAULT_SAFETY_WINDOW": "framework.projections.catch_up",
            "DEFAULT_WORKERS": "framework.projections.catch_up",
            "CancelResult": "framework.projections.deadlines",
            "Deadline": "framework.projections.deadlines",
            "DeadlineRunner": "framework.projections.deadlines",
            "DeadlineStatus": "framework.projections.deadlines",
            "DeadlineStore": "framework.projections.deadlines",
            "DynamoDBDeadlineStore": "framework.projections.dynamodb_deadlines",
            "EventBridgePublisher": "framework.projections.publisher",
            "InMemoryDeadlineStore": "framework.projections.deadlines",
            "ProcessManager": "framework.projections.process_managers",
            "ProcessState": "framework.projections.process_state",
            "derived_command_id": "framework.projections.process_managers",
            "StreamsPoller": "framework.projections.streams_poller",
        },
    )

__all__ = [
    "DEFAULT_SAFETY_WINDOW",
    "DEFAULT_WORKERS",
    "ApplyReport",
    "CancelResult",
    "CatchUpRunner",
    "Deadline",
    "DeadlineRunner",
    "DeadlineStatus",
    "DeadlineStore",
    "DynamoDBDeadlineStore",
    "Envelope",
    "EventBridgePublisher",
    "InMemoryDeadlineStore",
    "ProcessManager",
    "ProcessState",
    "ProjectionEngine",
    "Projector",
    "StreamsPoller",
    "derived_command_id",
]

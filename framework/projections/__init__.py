"""Read models: the ``Projector`` base class, the engine that applies events exactly once and in
order per stream, and the runners that deliver events to it (catch-up over the feed index, a
DynamoDB Streams poller, an AWS Lambda handler in ``framework.projections.aws_lambda``), and the
``EventBridgePublisher`` that follows events the same way to publish them
(``framework.projections.publisher``).

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
            "EventBridgePublisher": "framework.projections.publisher",
            "StreamsPoller": "framework.projections.streams_poller",
        },
    )

__all__ = [
    "DEFAULT_SAFETY_WINDOW",
    "DEFAULT_WORKERS",
    "ApplyReport",
    "CatchUpRunner",
    "Envelope",
    "EventBridgePublisher",
    "ProjectionEngine",
    "Projector",
    "StreamsPoller",
]

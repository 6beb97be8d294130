"""Read models: the ``Projector`` base class, the engine that applies events exactly once and in
order per stream, and the runners that deliver events to it (catch-up over the feed index, a
DynamoDB Streams poller, an AWS Lambda handler)."""

from framework.projections.catch_up import CatchUpRunner
from framework.projections.engine import ApplyReport, ProjectionEngine
from framework.projections.projector import Envelope, Projector
from framework.projections.streams_poller import StreamsPoller

__all__ = [
    "ApplyReport",
    "CatchUpRunner",
    "Envelope",
    "ProjectionEngine",
    "Projector",
    "StreamsPoller",
]

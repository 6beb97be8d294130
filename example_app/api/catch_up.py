"""The example's read-your-writes: ``framework.http``'s, over the example's projectors.

``ReadModelUpdater`` projects streams in the request; ``ReadModelCatchUp`` adds the retries and
the periodic run over the feed, started and stopped with the app (``app.state.read_models``). Both
read old events through the bank's upcasters, as the application does. Given the application,
both run the bank's process manager (``WithdrawalHolds``) with the read models, so that a held
withdrawal's release is scheduled before the response.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable
from typing import Any

from example_app.bank import UPCASTERS
from example_app.processes import WithdrawalHolds
from example_app.read_models import all_projectors
from framework import Application, DynamoDBEventStore, Projector
from framework.http import (
    FEED_INTERVAL_SECONDS,
    RETRY_INTERVAL_SECONDS,
    ReadYourWrites,
    StreamProjection,
)
from framework.projections import DynamoDBDeadlineStore
from framework.store import DynamoDBPositionStore


def example_projectors(
    store: DynamoDBEventStore, application: Application | None
) -> Callable[[], list[Projector]]:
    """The read models' projectors, and the process manager when there is an application."""
    deadlines = DynamoDBDeadlineStore(store)

    def projectors() -> list[Projector]:
        found = all_projectors(store)
        if application is not None:
            found.append(WithdrawalHolds(application, deadlines=deadlines))
        return found

    return projectors


class ReadModelUpdater(StreamProjection):
    """Brings the example's read models of some streams up to date, in the request."""

    def __init__(self, store: DynamoDBEventStore, application: Application | None = None) -> None:
        super().__init__(
            store,
            DynamoDBPositionStore(store),
            example_projectors(store, application),
            upcasters=UPCASTERS,
        )


class ReadModelCatchUp(ReadYourWrites):
    """The example's read models, updated in the request and caught up in the background."""

    def __init__(
        self,
        store: DynamoDBEventStore,
        *,
        lock: contextlib.AbstractContextManager[Any] | None = None,
        retry_interval: float = RETRY_INTERVAL_SECONDS,
        feed_interval: float = FEED_INTERVAL_SECONDS,
        safety_window: dt.timedelta | None = None,
        application: Application | None = None,
    ) -> None:
        super().__init__(
            store,
            DynamoDBPositionStore(store),
            example_projectors(store, application),
            lock=lock,
            retry_interval=retry_interval,
            feed_interval=feed_interval,
            safety_window=safety_window,
            upcasters=UPCASTERS,
        )
        self.updater = ReadModelUpdater(store, application)

"""The example's read-your-writes: ``framework.http``'s, over the example's projectors.

``ReadModelUpdater`` projects streams in the request; ``ReadModelCatchUp`` adds the retries and
the periodic run over the feed, started and stopped with the app (``app.state.read_models``). Both
read old events through the bank's upcasters, as the application does.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any

from example_app.bank import UPCASTERS
from example_app.read_models import all_projectors
from framework import DynamoDBEventStore
from framework.http import (
    FEED_INTERVAL_SECONDS,
    RETRY_INTERVAL_SECONDS,
    ReadYourWrites,
    StreamProjection,
)
from framework.store import DynamoDBPositionStore


class ReadModelUpdater(StreamProjection):
    """Brings the example's read models of some streams up to date, in the request."""

    def __init__(self, store: DynamoDBEventStore) -> None:
        super().__init__(
            store,
            DynamoDBPositionStore(store),
            lambda: all_projectors(store),
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
    ) -> None:
        super().__init__(
            store,
            DynamoDBPositionStore(store),
            lambda: all_projectors(store),
            lock=lock,
            retry_interval=retry_interval,
            feed_interval=feed_interval,
            safety_window=safety_window,
            upcasters=UPCASTERS,
        )
        self.updater = ReadModelUpdater(store)

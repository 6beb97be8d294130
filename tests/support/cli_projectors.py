"""Projectors the CLI tests load by name (``module:Class``), as an operator would."""

from __future__ import annotations

import os

from framework import event_handler
from framework.projections import Envelope
from framework.testing.bank import Withdrawn
from tests.support.projectors import TableBalances


class FlakyBalances(TableBalances, name="flaky-balances"):
    """Balances in ``{prefix}-read-cli``; fails on withdrawals while ``FLAKY_READ_MODEL`` is set,
    like a read model that is down."""

    def __init__(self) -> None:
        super().__init__(f"{os.environ['DYNAMO_TABLE_PREFIX']}-read-cli")

    @event_handler(Withdrawn)
    def _withdrawn(self, event: Withdrawn, envelope: Envelope) -> None:
        if os.environ.get("FLAKY_READ_MODEL"):
            raise ConnectionError("read model unreachable")
        super()._withdrawn(event, envelope)

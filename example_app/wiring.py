"""Builds the example application on any event store."""

from __future__ import annotations

from example_app.bank import Account, transfer_money
from example_app.users import User
from framework import Application, EventStore, EveryNEvents

SNAPSHOT_EVERY = 5
"""Small on purpose, so that the demo shows snapshots at work."""


def build_application(store: EventStore) -> Application:
    """The bank application: accounts, transfers, users, a snapshot every few events."""
    return Application(
        store=store,
        aggregates=[Account, User],
        handlers=[transfer_money],
        snapshots={Account: EveryNEvents(SNAPSHOT_EVERY)},
    )

"""A stored event whose payload does not fit its class is refused on every store and read path.

Decoding builds plain event classes without their ``__init__`` (``framework.mapping.structure``);
what that ``__init__`` checked must still be refused when the event is read back: loading the
aggregate raises ``CorruptEvent`` naming the type, stream and version, and a projector parks the
event with that reason instead of applying a wrong value.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from framework import Application, Projector, event_handler
from framework.errors import CorruptEvent
from framework.projections import Envelope, ProjectionEngine
from framework.store import EventStore, InMemoryPositionStore, StoredEvent
from framework.store.items import event_item
from framework.testing.bank import Account, Deposited, OpenAccount
from framework.testing.records import plant_item


class Deposits(Projector, name="deposits"):
    def __init__(self) -> None:
        super().__init__()
        self.amounts: list[Decimal] = []

    @event_handler(Deposited)
    def _deposited(self, event: Deposited, envelope: Envelope) -> None:
        self.amounts.append(event.amount)


def _deposit_item(payload: bytes) -> dict[str, dict[str, object]]:
    return event_item(
        StoredEvent(
            aggregate_type="Account",
            aggregate_id="a",
            version=2,
            event_type="Deposited",
            schema=1,
            payload=payload,
            occurred_at=dt.datetime.now(dt.UTC),
            change_set_id="planted",
            command_id="planted",
            correlation_id="planted",
            causation_id="planted",
        )
    )


@pytest.mark.parametrize(
    "document",
    [{"amount": "NaN"}, {"amount": "-Infinity"}, {"amount": [1]}, {"amount": "lots"}, {}],
    ids=["nan", "infinite", "a list", "not a number", "missing"],
)
def test_a_deposit_that_does_not_fit_its_class_is_refused(
    store: EventStore, document: dict[str, object]
) -> None:
    app = Application(store=store, aggregates=[Account])
    app.handle(OpenAccount(account_id="a", owner="Ann"))
    plant_item(store, store.tables.events, _deposit_item(json.dumps(document).encode()))
    with pytest.raises(CorruptEvent, match="version 2 of stream 'Account#a'") as raised:
        app.get(Account, "a")
    assert "cannot decode Deposited" in str(raised.value)

    projector = Deposits()
    positions = InMemoryPositionStore()
    engine = ProjectionEngine(
        projector, store, positions, mapper=app.mapper, max_attempts=1, retry_delay=0
    )
    engine.apply(store.load_events("Account", "a"))
    assert projector.amounts == []
    parked = positions.get("deposits", "Account#a").parked
    assert parked is not None and parked.version == 2
    assert "cannot decode Deposited" in parked.error

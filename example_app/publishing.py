"""The bank's events, published to EventBridge for other services.

Every committed event of accounts and users goes to the bus ``EVENT_BUS_NAME`` with ``Source``
``example-bank``. Users' names and emails, and account owners' names, are personal data: they are
published erased (nothing in ``readable``), so no subscriber, archive or dead-letter queue ever
holds them.
"""

from __future__ import annotations

from example_app.bank import Account
from example_app.users import User
from framework.projections.publisher import EventBridgePublisher


class BankEvents(EventBridgePublisher, name="bank-events"):
    """Accounts' and users' events, on the bus, personal data erased."""

    source = "example-bank"
    aggregates = (Account, User)

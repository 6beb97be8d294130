"""The bank's process manager: held withdrawals are released when nobody confirms them.

``WithdrawalHolds`` follows the accounts' events like a projector. When a withdrawal is held it
schedules ``ReleaseHold`` for ``HOLD_FOR`` after the event, keyed by the account and the hold;
when the withdrawal is confirmed it cancels that deadline. The deadline runner fires what falls
due (locally ``python -m framework deadlines run``, on AWS the template's scheduled function).

Why a process manager and not a rule in ``Account``: nothing happens to the account when 15
minutes pass, so no command would ever check the time. The release is a command like any other,
so the account's rules still decide: a hold confirmed at the last moment (the cancellation came
too late) makes the release a refusal (``UnknownHold``), and the money leaves once.
"""

from __future__ import annotations

from example_app.bank import (
    HOLD_FOR,
    Account,
    ReleaseHold,
    WithdrawalConfirmed,
    WithdrawalHeld,
)
from framework import event_handler
from framework.projections import Envelope, ProcessManager


class WithdrawalHolds(ProcessManager, name="withdrawal-holds"):
    """Schedules the release of each held withdrawal, and cancels it on confirmation.

    Built without arguments (``PROJECTORS=example_app.processes:WithdrawalHolds``), it takes
    its application from ``APPLICATION`` (``example_app.wiring:build_application``).
    """

    aggregate_types = frozenset({Account.aggregate_type()})

    @event_handler(WithdrawalHeld)
    def _held(self, event: WithdrawalHeld, envelope: Envelope) -> None:
        self.schedule(
            ReleaseHold(account_id=envelope.aggregate_id, hold_id=event.hold_id),
            at=envelope.occurred_at + HOLD_FOR,
            key=(envelope.aggregate_id, event.hold_id),
        )

    @event_handler(WithdrawalConfirmed)
    def _confirmed(self, event: WithdrawalConfirmed, envelope: Envelope) -> None:
        self.cancel((envelope.aggregate_id, event.hold_id))

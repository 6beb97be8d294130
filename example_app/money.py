"""``Money``: an amount of money as a value object, the only way amounts travel in the bank.

Why a value object rather than a bare ``Decimal``: the rules every amount obeys (a finite number,
never negative, at most two decimal places) are checked once, where an amount is made, instead of
in every handler; and the aggregate's arithmetic (``balance + amount``, ``balance - amount``,
``amount > balance``) reads as the business says it.

It is a frozen attrs class, so the framework's converter stores it in events and commands as
``{"amount": "12.50"}`` with no registration: a Decimal travels as its exact decimal string.
Events stored before it existed held a bare decimal string; their upcasters are in
``example_app.bank``.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from attrs import field, frozen

from framework import DomainError

DECIMAL_PLACES = 2
"""Cents: an amount with more decimal places than this is refused."""


class InvalidAmount(DomainError):
    """An amount that cannot be money: not a number, negative, or finer than a cent."""

    def __init__(self, amount: object, reason: str) -> None:
        super().__init__(f"an amount of money {reason}, got {amount}")
        self.amount = amount
        self.reason = reason


def _decimal(value: Decimal | int | str) -> Decimal:
    """The exact decimal ``value`` stands for; a float is refused, as it is not exact."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise InvalidAmount(
            value, f"must be a Decimal, an int or a decimal string, not a {type(value).__name__}"
        )
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise InvalidAmount(value, "must be a number") from None
    if not amount.is_finite():
        raise InvalidAmount(value, "must be a finite number")
    if amount < 0:
        raise InvalidAmount(value, "must be positive or zero")
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -DECIMAL_PLACES:
        raise InvalidAmount(value, f"has at most {DECIMAL_PLACES} decimal places")
    return amount


@frozen(order=True)
class Money:
    """A non-negative amount, exact to the cent. ``Money("12.50") == Money(Decimal("12.5"))``."""

    amount: Decimal = field(converter=_decimal)

    @classmethod
    def zero(cls) -> Money:
        return cls(Decimal(0))

    @property
    def is_zero(self) -> bool:
        return self.amount == 0

    def __add__(self, other: Money) -> Money:
        return Money(self.amount + other.amount)

    def __sub__(self, other: Money) -> Money:
        """The difference; a negative one raises ``InvalidAmount``: check ``<=`` first."""
        return Money(self.amount - other.amount)

    def __str__(self) -> str:
        return str(self.amount)


def money(value: Money | Decimal | int | str) -> Money:
    """``value`` as ``Money``: the converter of every amount field, so that commands and events
    are written with a Decimal, an int, a decimal string or Money alike."""
    return value if isinstance(value, Money) else Money(value)

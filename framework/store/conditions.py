"""The conditions a transaction plan's writes carry: defined once, carried out by every store.

Each write of a change set says what must hold of the item it targets for the whole transaction
to go through: the aggregate still at the version the command loaded, no event at that version
yet, the command id not processed yet, a unique value free or already this owner's. DynamoDB
checks a condition expression; the in-memory store evaluates the same condition on its copy of
the item. Both come from the classes here, so the two stores cannot drift apart rule by rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import attrs

Item = Mapping[str, Any]
"""A DynamoDB item in the low-level attribute-value format."""


class Condition(Protocol):
    """What must hold of a write's target item (``None`` when there is none) for it to go."""

    def expression(self) -> dict[str, Any]:
        """``ConditionExpression`` with its attribute names and values, for DynamoDB."""
        ...

    def holds(self, existing: Item | None) -> bool:
        """Whether the condition holds of ``existing``, for stores that check it themselves."""
        ...


@attrs.frozen
class Absent:
    """The item does not exist yet: a new aggregate, a new event version, a new command id."""

    attribute: str = "pk"

    def expression(self) -> dict[str, Any]:
        return {"ConditionExpression": f"attribute_not_exists({self.attribute})"}

    def holds(self, existing: Item | None) -> bool:
        return existing is None


@attrs.frozen
class VersionIs:
    """The aggregate item is at ``expected`` (0: it does not exist)."""

    expected: int

    def expression(self) -> dict[str, Any]:
        if self.expected == 0:
            return Absent().expression()
        return {
            "ConditionExpression": "#v = :expected",
            "ExpressionAttributeNames": {"#v": "version"},
            "ExpressionAttributeValues": {":expected": {"N": str(self.expected)}},
        }

    def holds(self, existing: Item | None) -> bool:
        actual = 0 if existing is None else int(existing["version"]["N"])
        return actual == self.expected


@attrs.frozen
class FreeOrOwnedBy:
    """A unique value's claim item is absent or held by ``owner``."""

    owner: str

    def expression(self) -> dict[str, Any]:
        return {
            "ConditionExpression": "attribute_not_exists(pk) OR #o = :owner",
            "ExpressionAttributeNames": {"#o": "owner"},
            "ExpressionAttributeValues": {":owner": {"S": self.owner}},
        }

    def holds(self, existing: Item | None) -> bool:
        return existing is None or existing.get("owner") == {"S": self.owner}


def merged(request: dict[str, Any], condition: Condition) -> dict[str, Any]:
    """``request`` (a Put, Update, Delete or ConditionCheck) guarded by ``condition``."""
    guard = condition.expression()
    request = {**request, "ConditionExpression": guard["ConditionExpression"]}
    for part in ("ExpressionAttributeNames", "ExpressionAttributeValues"):
        if part in guard:
            request[part] = {**request.get(part, {}), **guard[part]}
    return request

"""Counting the DynamoDB requests a client sends, for the tests and benchmarks that bound them."""

from __future__ import annotations

from collections import Counter
from typing import Any

_CAPACITY_OPERATIONS = ("Query", "GetItem", "TransactWriteItems", "PutItem", "UpdateItem")
_READS = ("Query", "GetItem")


class RequestCounter:
    """Records each request ``clients`` send: its operation and its parameters, in order.

    It listens to botocore's ``provide-client-params`` hook, which fires once per API call
    (botocore's own retries of a call are not counted again) with the parameters as the caller
    gave them. With ``capacity=True`` it also asks DynamoDB for the capacity each read and write
    consumed (``ReturnConsumedCapacity``, which changes the requests: benchmarks only) and sums
    it in ``read_units`` and ``write_units``.
    """

    def __init__(self, *clients: Any, capacity: bool = False) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.read_units = 0.0
        self.write_units = 0.0
        self._capacity = capacity
        for client in clients:
            events = client.meta.events
            events.register("provide-client-params.dynamodb.*", self._record)
            if capacity:
                events.register("after-call.dynamodb.*", self._add_capacity)

    @property
    def operations(self) -> list[str]:
        """The operations sent, in order (``["Query", "TransactWriteItems"]``)."""
        return [operation for operation, _ in self.requests]

    @property
    def counts(self) -> Counter[str]:
        """How many requests of each operation were sent."""
        return Counter(self.operations)

    def clear(self) -> None:
        """Forget what was recorded so far (the hooks stay)."""
        self.requests.clear()
        self.read_units = self.write_units = 0.0

    def take(self) -> list[str]:
        """The operations sent since the last ``take`` or ``clear``, forgetting them."""
        operations = self.operations
        self.clear()
        return operations

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        if self._capacity and model.name in _CAPACITY_OPERATIONS:
            params.setdefault("ReturnConsumedCapacity", "TOTAL")
        self.requests.append((model.name, dict(params)))

    def _add_capacity(self, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        consumed = parsed.get("ConsumedCapacity")
        entries = consumed if isinstance(consumed, list) else [consumed] if consumed else []
        for entry in entries:
            units = float(entry.get("CapacityUnits", 0))
            if model.name in _READS:
                self.read_units += units
            else:
                self.write_units += units

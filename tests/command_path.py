"""Trace one command through the framework and measure its path: layers, hops, and no way back up.

A maintainer should be able to follow a command from ``Application.handle`` to the store's commit
in one sitting. This traces a deposit on the in-memory store of the test bank (``sys.setprofile``)
and keeps every call from one framework module to another. Calls into leaf helpers (keys, stored
records, table names, conditions, field checks, results) are left out: they are values and
functions that answer, not steps of the path. What remains, each caller-callee pair once, is the
command's path; a *hop* is one step of it from one layer to another. A call from a lower layer to
a higher one is a way back up, and the path must have none.

Run ``python -m tests.command_path`` to print the path; ``tests/unit/test_command_path.py`` holds
it to its limits.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from decimal import Decimal
from types import FrameType
from typing import Any

import attrs

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("application", ("framework.application.application",)),
    ("unit of work", ("framework.application.unit_of_work",)),
    ("repository", ("framework.application.repository", "framework.application.cache")),
    (
        "mapping",
        ("framework.mapping", "framework.application.snapshots"),
    ),
    ("domain", ("framework.domain", "framework.testing.bank")),
    ("store", ("framework.store",)),
)
"""The layers, top to bottom, and the modules of each (the test bank is the user's domain)."""

LEAVES = (
    "framework.store.keys",
    "framework.store.records",
    "framework.store.dynamodb.tables",
    "framework.store.conditions",
    "framework.typecheck",
    "framework.application.results",
)
"""Modules of values and answers, not steps: left out, the path is what a reader follows."""


@attrs.frozen
class Step:
    caller: str
    callee: str
    caller_layer: int
    callee_layer: int
    leads_on: bool
    """Whether the callee went on to call another module: a step on the way, not an answer."""

    @property
    def upward(self) -> bool:
        return self.callee_layer < self.caller_layer

    def __str__(self) -> str:
        marks = ("UP " if self.upward else "") + ("" if self.leads_on else "(answers) ")
        layers = f"{LAYERS[self.caller_layer][0]} -> {LAYERS[self.callee_layer][0]}"
        return f"{marks}{layers}: {self.caller} -> {self.callee}"


@attrs.frozen
class CommandPath:
    steps: tuple[Step, ...]
    """Each caller-callee pair that crosses modules, once, in the order first made."""

    @property
    def hops(self) -> tuple[Step, ...]:
        """Steps from one layer to another that lead on (a question answered is not a hop)."""
        return tuple(
            step for step in self.steps if step.caller_layer != step.callee_layer and step.leads_on
        )

    @property
    def upward(self) -> tuple[Step, ...]:
        return tuple(step for step in self.steps if step.upward)

    @property
    def modules(self) -> frozenset[str]:
        return frozenset(
            name.rsplit(".", 1)[0] for step in self.steps for name in (step.caller, step.callee)
        )


def layer_of(module: str) -> int | None:
    for index, (_, prefixes) in enumerate(LAYERS):
        if any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes):
            return index
    return None


def trace(command: Callable[[], object]) -> CommandPath:
    """The path of the framework calls made while ``command()`` runs."""
    order: list[tuple[str, str, int, int]] = []
    leading: set[tuple[str, str]] = set()
    pair_of_frame: dict[int, tuple[str, str]] = {}

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event == "return":
            pair_of_frame.pop(id(frame), None)  # a frame's id is reused once it is gone
            return
        if event != "call" or frame.f_back is None:
            return
        callee_module = frame.f_globals.get("__name__", "")
        caller_module = frame.f_back.f_globals.get("__name__", "")
        if callee_module == caller_module or callee_module.startswith(LEAVES):
            return
        caller_layer, callee_layer = layer_of(caller_module), layer_of(callee_module)
        if caller_layer is None or callee_layer is None:
            return
        caller = f"{caller_module}.{frame.f_back.f_code.co_qualname}"
        callee = f"{callee_module}.{frame.f_code.co_qualname}"
        pair = (caller, callee)
        if pair not in pair_of_frame.values():
            order.append((caller, callee, caller_layer, callee_layer))
        pair_of_frame[id(frame)] = pair
        # The caller's own step (if it was reached by one) leads on: it called another module.
        # Frames of one module calling each other share the step that entered the module.
        outer: FrameType | None = frame.f_back
        while outer is not None and outer.f_globals.get("__name__", "") == caller_module:
            if id(outer) in pair_of_frame:
                leading.add(pair_of_frame[id(outer)])
                break
            outer = outer.f_back

    sys.setprofile(profile)
    try:
        command()
    finally:
        sys.setprofile(None)
    return CommandPath(
        tuple(
            Step(caller, callee, caller_layer, callee_layer, (caller, callee) in leading)
            for caller, callee, caller_layer, callee_layer in order
        )
    )


def deposit_path() -> CommandPath:
    """The path of a deposit to an existing account: load, decide, record, commit."""
    from framework import Application, InMemoryEventStore
    from framework.testing.bank import Account, Deposit, OpenAccount

    app = Application(store=InMemoryEventStore(), aggregates=[Account])
    app.handle(OpenAccount(account_id="a", owner="Ann"))
    command = Deposit(account_id="a", amount=Decimal(1))
    return trace(lambda: app.handle(command))


def main() -> None:
    import structlog

    structlog.configure(
        logger_factory=structlog.ReturnLoggerFactory()
    )  # the path, not the command's log line
    path = deposit_path()
    for step in path.steps:
        sys.stdout.write(f"{step}\n")
    sys.stdout.write(
        f"\n{len(path.hops)} hops between layers, {len(path.upward)} upward, "
        f"{len(path.modules)} modules\n"
    )


if __name__ == "__main__":
    main()

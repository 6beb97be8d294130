"""What tracing costs: µs per command (and per projected event) on the in-memory store.

Three modes, rounds interleaved and the first mode rotated:

- ``baseline``: the tracing and log-context hooks replaced by stubs that do nothing, the nearest
  this process can get to the code without them;
- ``off``: as shipped, no OpenTelemetry SDK provider set (what every user without tracing runs);
- ``sdk``: an SDK ``TracerProvider`` exporting every span to memory (``SimpleSpanProcessor``).

    python -m bench.tracing [--rounds 5] [--accounts 100] [--per-account 20]
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import framework.application
import framework.application.repository
import framework.application.unit_of_work
import framework.projections.engine
from bench.common import machine, markdown_table, median
from bench.inmemory import bank_workload
from framework import Application, InMemoryEventStore
from framework.logs import configure_logging
from framework.projections import ProjectionEngine
from framework.store import InMemoryPositionStore
from framework.testing.bank import Account
from framework.tracing import use_tracer_provider
from tests.support.projectors import Balances

_NOTHING = contextlib.nullcontext()


def _no_context(**ids: Any) -> contextlib.nullcontext[None]:
    return _NOTHING


def _no_tracer() -> None:
    return None


def _no_trace_context() -> tuple[None, None]:
    return None, None


@contextlib.contextmanager
def stubbed() -> Iterator[None]:
    """The hooks the command path and the engine call, replaced by stubs for the baseline."""
    saved: list[tuple[Any, str, Any]] = []
    for module, name, stub in [
        (framework.application, "log_context", _no_context),
        (framework.application, "active_tracer", _no_tracer),
        (framework.application.repository, "active_tracer", _no_tracer),
        (framework.application.unit_of_work, "active_tracer", _no_tracer),
        (framework.application.unit_of_work, "current_trace_context", _no_trace_context),
        (framework.projections.engine, "log_context", _no_context),
        (framework.projections.engine, "active_tracer", _no_tracer),
    ]:
        saved.append((module, name, getattr(module, name)))
        setattr(module, name, stub)
    try:
        yield
    finally:
        for module, name, original in saved:
            setattr(module, name, original)


def one_round(accounts: int, per_account: int) -> tuple[float, float]:
    """µs per command and µs per projected event."""
    store = InMemoryEventStore()
    app = Application(store=store, aggregates=[Account])
    started = time.perf_counter()
    commands = bank_workload(app, accounts, per_account)
    per_command = (time.perf_counter() - started) / commands * 1e6
    records = list(store.read_feed())
    engine = ProjectionEngine(Balances(), store, InMemoryPositionStore())
    started = time.perf_counter()
    engine.apply(records)
    per_event = (time.perf_counter() - started) / len(records) * 1e6
    return per_command, per_event


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--per-account", type=int, default=20)
    arguments = parser.parse_args(argv)
    configure_logging("WARNING")
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    def sdk() -> contextlib.AbstractContextManager[None]:
        exporter.clear()
        return use_tracer_provider(provider)

    modes: dict[str, Callable[[], contextlib.AbstractContextManager[None]]] = {
        "baseline": stubbed,
        "off": lambda: use_tracer_provider(None),
        "sdk": sdk,
    }
    results: dict[str, list[tuple[float, float]]] = {mode: [] for mode in modes}
    one_round(arguments.accounts, 3)  # warm up
    for round_number in range(arguments.rounds):
        order = list(modes)
        shift = round_number % len(order)
        for mode in order[shift:] + order[:shift]:
            with modes[mode]():
                results[mode].append(one_round(arguments.accounts, arguments.per_account))
    commands = [median([r[0] for r in results[mode]]) for mode in modes]
    events = [median([r[1] for r in results[mode]]) for mode in modes]
    print(
        f"Tracing overhead ({machine()}), in-memory store, {arguments.accounts} accounts x "
        f"{arguments.per_account + 1} commands, medians of {arguments.rounds} interleaved rounds:\n"
    )
    rows = [
        [
            mode,
            f"{command:.1f}",
            f"{command / commands[0]:.3f}",
            f"{event:.1f}",
            f"{event / events[0]:.3f}",
        ]
        for mode, command, event in zip(modes, commands, events, strict=True)
    ]
    print(
        markdown_table(
            ["mode", "µs/command", "ratio", "µs/projected event", "ratio"],
            rows,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

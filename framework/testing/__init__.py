"""Tools for testing applications built on the framework: they are never needed at run time.

- ``scenario`` (``Scenario``): given events, when a command, then these events or this error,
  through a real ``Application`` on an ``InMemoryEventStore``;
- ``ProjectorScenario``: given events, then the read model holds this;
- ``ProcessManagerScenario``: given events, then these commands issued, these deadlines
  scheduled or cancelled;
- ``framework.testing.pytest_plugin``: pytest fixtures (an in-memory store, DynamoDB Local and a
  store on it), opt-in: ``pytest_plugins = ["framework.testing.pytest_plugin"]`` in a conftest;
- ``framework.testing.dynamodb_local``: installs and runs AWS's DynamoDB Local
  (``python -m framework.testing.dynamodb_local``).

Importing this package starts nothing and imports nothing but itself: the scenarios load on first
use, so that running the launcher or the plugin does not import the application and projections.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from framework.testing.processes import ProcessManagerScenario, Scheduled
    from framework.testing.scenarios import ProjectorScenario, Scenario, ScenarioFailed, scenario
else:
    from framework._lazy import lazy_exports

    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            **{
                name: "framework.testing.scenarios"
                for name in ("ProjectorScenario", "Scenario", "ScenarioFailed", "scenario")
            },
            "ProcessManagerScenario": "framework.testing.processes",
            "Scheduled": "framework.testing.processes",
        },
    )

__all__ = [
    "ProcessManagerScenario",
    "ProjectorScenario",
    "Scenario",
    "ScenarioFailed",
    "Scheduled",
    "scenario",
]

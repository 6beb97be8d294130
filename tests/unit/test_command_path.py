"""A command's path stays short and one-way: the restructuring's figures, held by a test."""

from __future__ import annotations

from tests.command_path import LAYERS, Step, deposit_path, layer_of


def test_a_deposit_goes_down_the_layers_and_never_back_up() -> None:
    path = deposit_path()
    assert path.upward == (), "\n".join(map(str, path.upward))


def test_a_deposit_reaches_the_store_in_at_most_ten_hops() -> None:
    path = deposit_path()
    assert len(path.hops) <= 10, "\n".join(map(str, path.hops))
    callees = [step.callee for step in path.hops]
    assert "framework.application.repository.Repository.load" in callees
    assert any(callee.endswith("InMemoryEventStore.load_history") for callee in callees)
    assert any(callee.endswith("InMemoryEventStore.commit") for callee in callees)


def test_the_tracer_sees_a_call_back_up() -> None:
    """The measure can fail: a step from the store to the application is reported as upward."""
    store = layer_of("framework.store.memory")
    application = layer_of("framework.application.application")
    assert store is not None and application is not None and application < store
    step = Step(
        "framework.store.memory.f", "framework.application.application.g", store, application, True
    )
    assert step.upward and str(step).startswith("UP ")
    assert LAYERS[0][0] == "application"

"""The public API: a slim root, public modules that export what they list, an example that uses
nothing else, an ``import framework`` that loads neither the AWS SDK nor cryptography, and test
tooling that nothing loads unless asked."""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

import framework

ROOT = Path(__file__).resolve().parents[2]

PUBLIC_MODULES = (
    "framework",
    "framework.aio",
    "framework.application",
    "framework.config",
    "framework.encryption",
    "framework.errors",
    "framework.http",
    "framework.logs",
    "framework.mapping",
    "framework.projections",
    "framework.projections.aws_lambda",
    "framework.projections.deadlines",
    "framework.projections.dynamodb_deadlines",
    "framework.projections.eventbridge",
    "framework.projections.process_managers",
    "framework.projections.process_state",
    "framework.projections.publisher",
    "framework.projections.read_models",
    "framework.store",
    "framework.testing",
    "framework.testing.bank",
    "framework.testing.contracts",
    "framework.testing.dynamodb_local",
    "framework.testing.pytest_plugin",
    "framework.testing.records",
    "framework.tracing",
)
"""The modules users import from, each with its own ``__all__`` (docs/api.md lists them)."""

PINNED = {
    "Aggregate",
    "Event",
    "Command",
    "command_handler",
    "event_handler",
    "DomainError",
    "ConcurrencyError",
    "Application",
    "UnitOfWork",
    "InMemoryEventStore",
    "DynamoDBEventStore",
    "EveryNEvents",
    "NoSnapshots",
    "Projector",
}
"""The names DESIGN.md pins to the root."""

HEAVY = ("boto3", "botocore", "cryptography", "aiobotocore", "framework.aio")
"""What a domain never needs. (Not greenlet: structlog loads it by itself when it is installed.)"""


def test_the_root_keeps_the_pinned_names_and_little_else() -> None:
    assert set(framework.__all__) >= PINNED
    assert len(framework.__all__) <= 20, "the root is for what a domain author writes with"


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_a_public_module_exports_every_name_it_lists(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert len(set(exported)) == len(exported)
    for attribute in exported:
        assert getattr(module, attribute) is not None, attribute
    assert set(dir(module)) >= set(exported)
    with pytest.raises(AttributeError, match="no attribute"):
        module.NoSuchName  # noqa: B018 (the access is the test)


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_a_type_checker_sees_every_name_a_public_module_lists(name: str) -> None:
    """A lazily exported name must be imported under ``TYPE_CHECKING`` too, or mypy and IDEs
    would not know it."""
    module = importlib.import_module(name)
    source = Path(module.__file__ or "").read_text()
    visible: set[str] = set()
    for node in ast.parse(source).body:
        statements = [node]
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            statements = list(node.body)
        for statement in statements:
            if isinstance(statement, ast.ImportFrom | ast.Import):
                visible.update((alias.asname or alias.name) for alias in statement.names)
            elif isinstance(statement, ast.ClassDef | ast.FunctionDef):
                visible.add(statement.name)
            elif isinstance(statement, ast.Assign | ast.AnnAssign):
                targets = statement.targets if isinstance(statement, ast.Assign) else []
                if isinstance(statement, ast.AnnAssign):
                    targets = [statement.target]
                visible.update(t.id for t in targets if isinstance(t, ast.Name))
    assert set(module.__all__) <= visible


def _framework_imports(path: Path) -> list[tuple[str, list[str]]]:
    """Every ``framework`` module ``path`` imports, with the names it takes from it."""
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "framework":
            found.append((node.module or "", [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found += [
                (alias.name, []) for alias in node.names if alias.name.split(".")[0] == "framework"
            ]
    return found


def test_the_example_app_imports_public_names_of_public_modules_only() -> None:
    checked = 0
    for path in sorted((ROOT / "example_app").rglob("*.py")):
        for module_name, names in _framework_imports(path):
            where = f"{path.relative_to(ROOT)} imports {module_name}"
            assert module_name in PUBLIC_MODULES, f"{where}, which is not a public module"
            public = importlib.import_module(module_name).__all__
            assert set(names) <= set(public), f"{where}: {sorted(set(names) - set(public))}"
            checked += 1
    assert checked > 10


def _run_fresh(code: str) -> object:
    """Run ``code`` in a fresh interpreter at the repository root; it prints one JSON object."""
    finished = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert finished.returncode == 0, finished.stderr
    return json.loads(finished.stdout.strip().splitlines()[-1])


def test_a_domain_and_its_tests_run_without_the_aws_sdk_or_cryptography() -> None:
    """``import framework``, the example's domain modules, and a domain's own unit test on the
    in-memory store (no scenario helper) load neither boto3, botocore nor cryptography."""
    result = _run_fresh(
        f"""
        import json, sys
        HEAVY = {HEAVY!r}

        def loaded():
            return sorted(name for name in HEAVY if name in sys.modules)

        import framework
        after_root = loaded()

        import example_app.bank, example_app.users
        after_domains = loaded()

        from attrs import frozen
        from framework import (Aggregate, Application, Command, DomainError, Event,
                               InMemoryEventStore, command_handler, event_handler)

        @frozen
        class Tick(Command, target="counter_id"):
            counter_id: str

        @frozen
        class Ticked(Event):
            pass

        class Counter(Aggregate):
            ticks: int = 0

            @command_handler(Tick, creates=None)
            def tick(self, command: Tick) -> None:
                if self.ticks >= 2:
                    raise DomainError("enough")
                self.emit(Ticked())

            @event_handler(Ticked)
            def _ticked(self, event: Ticked) -> None:
                self.ticks += 1

        app = Application(aggregates=[Counter], store=InMemoryEventStore())
        app.handle(Tick(counter_id="c-1"))
        app.handle(Tick(counter_id="c-1"))
        try:
            app.handle(Tick(counter_id="c-1"))
        except DomainError:
            pass
        print(json.dumps({{
            "after_root": after_root,
            "after_domains": after_domains,
            "after_use": loaded(),
            "ticks": app.get(Counter, "c-1").ticks,
        }}))
        """
    )
    assert result == {"after_root": [], "after_domains": [], "after_use": [], "ticks": 2}


def test_a_scenario_test_of_a_domain_loads_no_aws_sdk() -> None:
    """``framework.testing.scenario`` loads neither boto3, botocore nor PynamoDB (its throw-away
    key ring for personal fields loads cryptography)."""
    result = _run_fresh(
        """
        import json, sys
        from decimal import Decimal

        from example_app.bank import (UPCASTERS, Account, AccountOpened, MoneyDeposited,
                                      MoneyWithdrawn, WithdrawMoney)
        from framework.testing import scenario

        scenario(Account, upcasters=UPCASTERS).given(
            AccountOpened(owner="Ann"), MoneyDeposited(amount=Decimal(10))
        ).when(WithdrawMoney(account_id="a-1", amount=Decimal(4))).then(
            MoneyWithdrawn(amount=Decimal(4))
        )
        heavy = ("boto3", "botocore", "pynamodb")
        print(json.dumps(sorted(name for name in heavy if name in sys.modules)))
        """
    )
    assert result == []


def test_a_lazy_name_is_imported_on_first_use_and_then_cached() -> None:
    result = _run_fresh(
        """
        import json, sys
        import framework
        before = "framework.store.dynamodb.event_store" in sys.modules
        store_class = framework.DynamoDBEventStore
        after = "framework.store.dynamodb.event_store" in sys.modules
        cached = vars(framework)["DynamoDBEventStore"] is store_class
        print(json.dumps([before, after, cached, "boto3" in sys.modules]))
        """
    )
    assert result == [False, True, True, True]


def test_installing_the_framework_registers_no_pytest_plugin() -> None:
    """An installed ``pytest11`` entry point would load in every pytest run of the environment."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "pytest11" not in project.get("entry-points", {})


def test_importing_the_test_tooling_starts_nothing() -> None:
    """No module of the runtime imports the test tooling or pytest; and importing the testing
    package, its plugin and the DynamoDB Local launcher starts no thread and no process."""
    result = _run_fresh(
        """
        import importlib, json, os, pathlib, sys, threading

        for path in sorted(pathlib.Path("framework").rglob("*.py")):
            name = ".".join(path.with_suffix("").parts).removesuffix(".__init__")
            if not name.startswith(("framework.testing", "framework.__main__")):
                importlib.import_module(name)
        runtime = sorted(
            name for name in sys.modules if name.startswith(("framework.testing", "pytest"))
        )
        import framework.testing
        import framework.testing.dynamodb_local
        import framework.testing.pytest_plugin

        def children():
            if not os.path.isdir("/proc"):
                return []
            found = []
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    with open(f"/proc/{pid}/stat") as stat:
                        parent = int(stat.read().rsplit(")", 1)[1].split()[1])
                except OSError:
                    continue
                if parent == os.getpid():
                    found.append(pid)
            return found

        print(json.dumps([runtime, threading.active_count(), children()]))
        """
    )
    assert result == [[], 1, []]


def test_the_testing_package_and_the_launcher_load_no_aws_sdk() -> None:
    """``python -m framework.testing.dynamodb_local --install-only`` runs in CI before anything
    else: it needs the standard library and structlog, not the application or boto3."""
    result = _run_fresh(
        """
        import json, sys
        import framework.testing, framework.testing.dynamodb_local
        heavy = ("boto3", "botocore", "cryptography", "pynamodb", "framework.testing.scenarios")
        print(json.dumps(sorted(name for name in heavy if name in sys.modules)))
        """
    )
    assert result == []


def test_the_dynamodb_local_launcher_runs_as_a_module() -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "framework.testing.dynamodb_local", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 0, finished.stderr
    assert "--install-only" in finished.stdout

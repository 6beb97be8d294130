"""Read models: the PynamoDB models a projector declares, kept next to the event store's tables.

A read model is a plain PynamoDB ``Model`` whose ``Meta.table_name`` is a *logical* name
(``"balances"``). Its table in a given deployment is ``{prefix}-read-{logical name}``, with the
event store's prefix, so that every test, stage and developer gets tables of its own from one
model class: the projector's handlers queue writes built from the model (``self.save(row)``,
``self.update(row, actions=[...])``), and the engine names the real table. Code that reads a model
binds it to a store first: ``bound(AccountBalance, store).get("acc-1")``.

This module also provisions those tables (create, status, delete, clear for a rebuild), from the
models' own key schemas, with the event store's client: same endpoint, same credentials.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

import structlog
from botocore.exceptions import ClientError
from pynamodb.models import Model

from framework.errors import DefinitionError
from framework.pauses import pause
from framework.store.dynamodb.event_store import DynamoDBEventStore, translated_errors
from framework.store.dynamodb.tables import describe_table_status

__all__ = [
    "bound",
    "clear_tables",
    "create_tables",
    "declared_models",
    "delete_tables",
    "existing_tables",
    "table_name",
    "table_status",
]

log = structlog.get_logger(__name__)

M = TypeVar("M", bound=Model)

LOCAL_CREDENTIALS = "local"
"""What read models sign with on DynamoDB Local when the environment has no credentials."""

READ_MODEL_INFIX = "read"
"""Read-model tables are named ``{prefix}-read-{logical name}``."""


def logical_name(model: type[Model]) -> str:
    """The name a read model declares in its ``Meta.table_name``."""
    meta = getattr(model, "Meta", None)
    name = getattr(meta, "table_name", None)
    if not isinstance(name, str) or not name:
        raise DefinitionError(f"read model {model.__name__} needs a Meta.table_name")
    return name


def table_name(model: type[Model], prefix: str) -> str:
    """The table of ``model`` next to the event store whose tables are ``{prefix}-...``."""
    return f"{prefix}-{READ_MODEL_INFIX}-{logical_name(_declared(model))}"


def read_model_prefix(prefix: str) -> str:
    """What the names of every read-model table of ``prefix`` start with."""
    return f"{prefix}-{READ_MODEL_INFIX}-"


def _declared(model: type[Model]) -> type[Model]:
    """The model class the user declared (``bound`` makes subclasses of it)."""
    declared: type[Model] = getattr(model, "__read_model__", model)
    return declared


def bound(model: type[M], store: DynamoDBEventStore) -> type[M]:
    """``model`` bound to its table next to ``store`` (same endpoint, region and credentials).

    The bound class is a subclass, cached per store settings, so ``isinstance`` checks and type
    hints keep working: ``bound(AccountBalance, store).get(key)`` is an ``AccountBalance``. It
    signs as the store's own client does: with an endpoint (DynamoDB Local) and no credentials
    in the environment, with dummy ones.
    """
    local = bool(store.endpoint_url) and not (
        os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE")
    )
    return _bind(model, store.tables.prefix, store.endpoint_url, store.region_name, local)


@functools.cache
def _bind(
    model: type[M], prefix: str, endpoint: str | None, region: str, local_credentials: bool
) -> type[M]:
    declared = _declared(model)
    attributes: dict[str, Any] = {
        "table_name": table_name(declared, prefix),
        "region": region,
        "aws_access_key_id": LOCAL_CREDENTIALS if local_credentials else None,
        "aws_secret_access_key": LOCAL_CREDENTIALS if local_credentials else None,
    }
    if endpoint:
        attributes["host"] = endpoint
    meta = type("Meta", (), attributes)
    namespace = {"Meta": meta, "__module__": declared.__module__, "__read_model__": declared}
    return type(declared.__name__, (declared,), namespace)


def declared_models(projectors: Iterable[Any]) -> list[type[Model]]:
    """Every read model the projectors declare; one model owned by two projectors is refused.

    A rebuild clears a projector's tables: a table shared with another projector would lose the
    other's rows.
    """
    owners: dict[str, str] = {}
    models: list[type[Model]] = []
    for projector in projectors:
        for model in projector.read_models:
            name = logical_name(model)
            owner = projector.projector_name()
            if name in owners and owners[name] != owner:
                raise DefinitionError(
                    f"read model table {name!r} is declared by {owners[name]} and {owner}: "
                    "each read model belongs to one projector"
                )
            if name not in owners:
                owners[name] = owner
                models.append(model)
    return models


def table_definition(model: type[Model], name: str) -> dict[str, Any]:
    """``CreateTable`` arguments for ``model``'s table ``name`` (on-demand capacity)."""
    schema = _declared(model)._get_schema()
    definitions = {d["AttributeName"]: d for d in schema["attribute_definitions"]}
    request: dict[str, Any] = {
        "TableName": name,
        "KeySchema": schema["key_schema"],
        "BillingMode": "PAY_PER_REQUEST",
    }
    index_kinds: list[tuple[list[Any], str]] = [
        (list(schema["global_secondary_indexes"]), "GlobalSecondaryIndexes"),
        (list(schema["local_secondary_indexes"]), "LocalSecondaryIndexes"),
    ]
    for indexes, key in index_kinds:
        if indexes:
            request[key] = [
                {
                    "IndexName": index["index_name"],
                    "KeySchema": index["key_schema"],
                    "Projection": index["projection"],
                }
                for index in indexes
            ]
            for index in indexes:
                for definition in index.get("attribute_definitions", []):
                    definitions[definition["AttributeName"]] = definition
    request["AttributeDefinitions"] = list(definitions.values())
    return request


def create_tables(
    store: DynamoDBEventStore, models: Sequence[type[Model]], *, timeout: float = 120.0
) -> list[str]:
    """Create the tables of ``models`` that are missing and wait until they are active."""
    names = [table_name(model, store.tables.prefix) for model in models]
    with translated_errors(None):
        for model, name in zip(models, names, strict=True):
            try:
                store.client.create_table(**table_definition(model, name))
                log.info("read_model.table_created", table=name)
            except ClientError as error:
                if error.response["Error"]["Code"] != "ResourceInUseException":
                    raise
        for name in names:
            _wait(store, name, lambda status: status == "ACTIVE", timeout)
    return names


def table_status(store: DynamoDBEventStore, models: Sequence[type[Model]]) -> dict[str, str | None]:
    """Each read-model table's status, ``None`` for a missing one."""
    with translated_errors(None):
        return {
            name: describe_table_status(store.client, name)
            for name in (table_name(model, store.tables.prefix) for model in models)
        }


def delete_tables(
    store: DynamoDBEventStore, names: Iterable[str], *, timeout: float = 120.0
) -> None:
    """Delete the tables ``names`` (missing ones are fine) and wait until they are gone."""
    names = list(names)
    with translated_errors(None):
        for name in names:
            try:
                store.client.delete_table(TableName=name)
                log.info("read_model.table_deleted", table=name)
            except ClientError as error:
                if error.response["Error"]["Code"] != "ResourceNotFoundException":
                    raise
        for name in names:
            _wait(store, name, lambda status: status is None, timeout)


def existing_tables(store: DynamoDBEventStore) -> list[str]:
    """Every read-model table of the store's prefix, declared by a loaded projector or not."""
    start = read_model_prefix(store.tables.prefix)
    found: list[str] = []
    request: dict[str, Any] = {}
    with translated_errors(None):
        while True:
            page = store.client.list_tables(**request)
            found.extend(name for name in page.get("TableNames", []) if name.startswith(start))
            last = page.get("LastEvaluatedTableName")
            if not last:
                return found
            request["ExclusiveStartTableName"] = last


def clear_tables(store: DynamoDBEventStore, models: Sequence[type[Model]]) -> None:
    """Empty the tables of ``models`` for a rebuild: delete them and create them again.

    Dropping a table is one request whatever its size, and leaves nothing behind; a scan and
    delete would cost a write per row and race with anything still writing.
    """
    delete_tables(store, [table_name(model, store.tables.prefix) for model in models])
    create_tables(store, models)


def _wait(store: DynamoDBEventStore, name: str, done: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        status = describe_table_status(store.client, name)
        if done(status):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"read-model table {name!r} is still {status} after {timeout:.0f} s")
        pause(delay)  # on the loop, when the store is on aiobotocore (a rebuild's)
        delay = min(delay * 2, 1.0)

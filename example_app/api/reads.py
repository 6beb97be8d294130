"""Reading the read models for the GET endpoints: a missing row is ``None``, and PynamoDB's
errors become the framework's errors for the same cause, so that they answer alike (a missing
table is a misconfiguration, 500; an unreachable DynamoDB is 503)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Request
from fastapi.types import DecoratedCallable
from pynamodb.exceptions import DoesNotExist, PynamoDBException, TableDoesNotExist

from example_app.api.problems import problem_responses
from example_app.api.work import RequestWork
from example_app.read_models import ReadModels
from framework.errors import ConfigurationError, FrameworkError, StoreUnavailable
from framework.store import translated_errors

T = TypeVar("T")

READ_ERRORS = problem_responses(404, 422)
"""What a read can answer besides the row: unknown (404) or a malformed id (422)."""


def read_endpoint(
    router: APIRouter, path: str, *, response_model: Any, summary: str
) -> Callable[[DecoratedCallable], DecoratedCallable]:
    """Declare a GET of ``router`` that answers from a read model (tag ``read models``)."""
    return router.get(
        path,
        response_model=response_model,
        responses=READ_ERRORS,
        tags=["read models"],
        summary=summary,
    )


class ReadModelReader:
    """The app's read models, read off the loop by the app's ``work`` (PynamoDB blocks)."""

    def __init__(self, models: ReadModels, work: RequestWork) -> None:
        self.models = models
        self.work = work
        self.balances_table = models.balances.Meta.table_name
        self.statements_table = models.statements.Meta.table_name
        self.users_table = models.users.Meta.table_name

    async def read(self, table: str, load: Callable[[], T]) -> T | None:
        """A read-model read, ``None`` when the row does not exist.

        Rows come back typed ``Any`` at the call sites: the PynamoDB model classes are built per
        table prefix at run time, so their attributes are unknown to the type checker.
        """

        def read_row() -> T | None:
            try:
                with translated_errors(table):
                    return load()
            except DoesNotExist:
                return None
            except PynamoDBException as error:
                raise _read_model_error(error, table) from error

        return await self.work.call(read_row)


def _reader(request: Request) -> ReadModelReader:
    reader: ReadModelReader = request.app.state.reads
    return reader


Reads = Annotated[ReadModelReader, Depends(_reader)]
"""An endpoint parameter: the app's ``ReadModelReader``."""


def _read_model_error(error: PynamoDBException, table: str) -> Exception:
    """A PynamoDB error as the framework's error for the same cause, so that it answers alike."""
    if isinstance(error, TableDoesNotExist) or error.cause_response_code in (
        "ResourceNotFoundException",
    ):
        return ConfigurationError(
            f"the read-model table {table!r} does not exist: create it with "
            "example_app.read_models.create_read_model_tables(store) (python -m example_app "
            "serve does at start-up), or check DYNAMO_TABLE_PREFIX"
        )
    cause = error.cause
    if cause is None:
        return error
    try:
        with translated_errors(table):  # botocore's errors become the framework's, others pass
            raise cause
    except StoreUnavailable as unavailable:
        if type(unavailable) is StoreUnavailable:  # not Throttled: name the read model
            return StoreUnavailable(
                f"DynamoDB did not answer the read model ({type(cause).__name__})"
            )
        return unavailable
    except FrameworkError as translated:
        return translated
    except Exception:
        return error

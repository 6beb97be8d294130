"""``python -m example_app serve``: the store to serve and uvicorn, one worker process."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from example_app.api.app import create_app
from example_app.api.security import TOKEN_ENV, api_token_from_env, check_binding
from example_app.read_models import create_read_model_tables
from example_app.wiring import open_example_store
from framework import DynamoDBEventStore
from framework.projections import DynamoDBDeadlineStore


@contextlib.contextmanager
def serving_store() -> Iterator[tuple[DynamoDBEventStore, bool]]:
    """The store to serve, all tables created, and whether it is the embedded (moto) one.

    The store the framework's settings describe (``DYNAMO_ENDPOINT``, ``AWS_REGION``, a
    ``FRAMEWORK_CONFIG`` file, as for the demo); with none, the embedded moto store, which lives
    as long as the ``with`` block.
    """
    with open_example_store(embedded_prefix="serve") as (store, settings):
        create_read_model_tables(store)
        DynamoDBDeadlineStore(store).create_table()
        yield store, settings.backend == "embedded"


def serve(host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the API with uvicorn until interrupted: one worker process, whatever the store.

    Raises ``UnsafeServing`` before anything starts when ``host`` is not loopback and no
    ``EXAMPLE_API_TOKEN`` is set, or when the token is too short.
    """
    import uvicorn

    token = api_token_from_env()
    check_binding(host, token)
    with serving_store() as (store, embedded):
        where = store.endpoint_url or f"AWS region {store.region_name}"
        if embedded:
            where = "embedded DynamoDB (moto, in process; gone when the server stops)"
        print(f"serving on http://{host}:{port} (docs at /docs); store: {where}", flush=True)
        if token is None:
            print(
                f"no {TOKEN_ENV} set: no authentication, so listening on this machine only "
                "(loopback)",
                flush=True,
            )
        else:
            print(
                f"every endpoint but /health and the docs needs the {TOKEN_ENV} bearer token",
                flush=True,
            )
        app = create_app(store, api_token=token, serialize_requests=embedded)
        uvicorn.run(app, host=host, port=port, workers=1, log_level="warning")

"""The cattrs converter that turns events, snapshot states and commands into JSON documents.

One converter serves every mapper: it holds no application's settings, only how the framework
writes the types it supports exactly (Decimal, datetime, UUID), and cattrs caches the structure
and unstructure functions it builds per class in it, so sharing it shares that work.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import cattrs
from cattrs.preconf.json import make_converter


def make_framework_converter() -> cattrs.Converter:
    """The converter for events and snapshots: exact round trips of Decimal, datetime, UUID."""
    converter = make_converter()
    converter.register_unstructure_hook(Decimal, str)
    converter.register_structure_hook(Decimal, lambda value, _: Decimal(value))
    converter.register_unstructure_hook(uuid.UUID, str)
    converter.register_structure_hook(uuid.UUID, lambda value, _: uuid.UUID(value))
    converter.register_unstructure_hook(dt.datetime, dt.datetime.isoformat)
    converter.register_structure_hook(
        dt.datetime, lambda value, _: dt.datetime.fromisoformat(value)
    )
    return converter


converter = make_framework_converter()

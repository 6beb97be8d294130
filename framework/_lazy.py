"""Names a package exports without importing the module that defines them until first used.

``import framework`` must stay cheap: a domain module and its unit tests need attrs and the
standard library, not the AWS SDK, cryptography or PynamoDB. A package lists the names whose
modules are heavy, with the module each comes from, and installs the two hooks of PEP 562::

    if TYPE_CHECKING:
        from framework.store.memory import InMemoryEventStore
    else:
        origins = {"InMemoryEventStore": "framework.store.memory"}
        __getattr__, __dir__ = lazy_exports(__name__, origins)

Type checkers and IDEs read the ``TYPE_CHECKING`` imports; at run time the first access imports
the module and caches the name in the package, so later accesses are plain attribute reads.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, origins: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module ``__getattr__`` and ``__dir__`` of ``package`` for the names in ``origins``.

    ``origins`` maps each lazily exported name to the module that defines it.
    """
    namespace = vars(sys.modules[package])

    def __getattr__(name: str) -> Any:
        origin = origins.get(name)
        if origin is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(origin), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *origins})

    return __getattr__, __dir__

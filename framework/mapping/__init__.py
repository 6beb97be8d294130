"""Events and snapshot states to stored bytes and back: one mapper per application.

An ``EventMapper`` holds everything that decides how an event is stored and read back: the event
classes by their stored type names, cattrs' conversion, the upcasters of older schema versions,
the hooks that seal personal fields with their subjects' keys, and the payload format (compact
JSON, compressed above a threshold, told by its first byte). ``Application`` builds one
(``app.mapper``) from its aggregates, ``upcasters=`` and ``keys=``; the projection engines and
runners take that mapper or the same upcasters, so a projector reads old events exactly as the
application does.

``upcaster`` (also exported by the root) only marks a function with the step it performs: it
registers nothing process-wide. Importing this module loads attrs and the standard library only;
the mapper and cattrs load on first use.
"""

from typing import TYPE_CHECKING

from framework.mapping.upcasters import Upcaster, upcaster

if TYPE_CHECKING:
    from framework.mapping.mapper import EncodedEvent, EventMapper
    from framework.mapping.state import DecodedState, SnapshotStateError
else:
    from framework._lazy import lazy_exports

    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "DecodedState": "framework.mapping.state",
            "EncodedEvent": "framework.mapping.mapper",
            "EventMapper": "framework.mapping.mapper",
            "SnapshotStateError": "framework.mapping.state",
        },
    )

__all__ = [
    "DecodedState",
    "EncodedEvent",
    "EventMapper",
    "SnapshotStateError",
    "Upcaster",
    "upcaster",
]

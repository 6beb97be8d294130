"""What ``Application.handle`` returns."""

from __future__ import annotations

import json
from collections.abc import Mapping

import attrs

from framework.domain import Event

_compact_json = json.JSONEncoder(separators=(",", ":")).encode
"""Built once: ``json.dumps`` with options makes a new encoder on every call."""


@attrs.frozen
class CommandResult:
    """The outcome of a handled command.

    ``versions`` maps each changed stream (``{aggregate_type}#{aggregate_id}``) to its new
    version. ``duplicate`` is true when the command id had already been processed: the result is
    then the first run's, and nothing was written this time (``events`` is empty).
    """

    command_id: str
    change_set_id: str | None
    versions: Mapping[str, int] = attrs.field(factory=dict)
    events: tuple[Event, ...] = ()
    duplicate: bool = False
    attempts: int = 1

    @property
    def version(self) -> int:
        """The new version of the one aggregate the command changed."""
        if len(self.versions) != 1:
            raise ValueError(
                f"the command changed {len(self.versions)} aggregates; read .versions instead"
            )
        return next(iter(self.versions.values()))

    def to_json(self) -> bytes:
        """The part of the result that is stored with the command id."""
        document = {"change_set_id": self.change_set_id, "versions": dict(self.versions)}
        return _compact_json(document).encode()

    @classmethod
    def from_stored(cls, command_id: str, stored: bytes) -> CommandResult:
        """Rebuild the first run's result from what was stored with its command id."""
        document = json.loads(stored)
        return cls(
            command_id=command_id,
            change_set_id=document.get("change_set_id"),
            versions={str(k): int(v) for k, v in document.get("versions", {}).items()},
            duplicate=True,
        )

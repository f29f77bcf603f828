"""``swarm improve``: being built (issue 4)."""

from __future__ import annotations

from swarm.errors import SwarmError


def improve() -> None:
    """Not built yet."""
    raise SwarmError("swarm improve is not built yet")

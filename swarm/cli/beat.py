"""``swarm beat``: being built (issue 4)."""

from __future__ import annotations

from swarm.errors import SwarmError


def beat() -> None:
    """Not built yet."""
    raise SwarmError("swarm beat is not built yet")

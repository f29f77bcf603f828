"""``swarm flower``: being built (issue 5)."""

from __future__ import annotations

from swarm.errors import SwarmError


def flower() -> None:
    """Not built yet."""
    raise SwarmError("swarm flower is not built yet")

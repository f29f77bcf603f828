"""``swarm health``: being built (issue 5)."""

from __future__ import annotations

from swarm.errors import SwarmError


def health() -> None:
    """Not built yet."""
    raise SwarmError("swarm health is not built yet")

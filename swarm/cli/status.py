"""``swarm status``: being built (issue 5)."""

from __future__ import annotations

from swarm.errors import SwarmError


def status() -> None:
    """Not built yet."""
    raise SwarmError("swarm status is not built yet")

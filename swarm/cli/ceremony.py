"""``swarm ceremony``: being built (issue 4)."""

from __future__ import annotations

from swarm.errors import SwarmError


def ceremony() -> None:
    """Not built yet."""
    raise SwarmError("swarm ceremony is not built yet")

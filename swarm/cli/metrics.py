"""``swarm metrics``: being built (issue 5)."""

from __future__ import annotations

from swarm.errors import SwarmError


def metrics() -> None:
    """Not built yet."""
    raise SwarmError("swarm metrics is not built yet")

"""The roles a worker serves: those of the queues it consumes, and nothing else.

``swarm worker --role R`` consumes R's queues; a plain ``celery -A workers.app worker`` (no
``-Q``) consumes every queue, so it serves every role. A message of a role the worker does not
serve (sent to the wrong queue by hand) is sent on to its role's queue, never claimed here, and
registers no agent here. The roles are read once the worker has applied ``-Q`` (Celery's
``celeryd_after_setup``), before its pool starts, so prefork children inherit them.
"""

from __future__ import annotations

from collections.abc import Iterable

from swarm.celery_app import role_queues
from swarm.models import Role
from swarm.settings import Settings

_served: list[frozenset[Role]] = []  # empty until the worker set up its queues: every role


def record(settings: Settings, consumed: Iterable[str]) -> frozenset[Role]:
    """Records (and returns) the roles of the ``consumed`` queue names."""
    names = set(consumed)
    roles = frozenset(r for r in Role if names.intersection(role_queues(settings, r)))
    _served[:] = [roles]
    return roles


def served() -> frozenset[Role]:
    """The roles this process serves (every role outside a worker, e.g. a test calling the task)."""
    return _served[0] if _served else frozenset(Role)


def serves(role: Role) -> bool:
    return role in served()

"""The restarts ``swarm up`` made, kept in Redis (``Keys.fleet_restarts``) for ``swarm status``.

Each host's ``swarm up`` writes one field per child, ``<host>/<child>``: how often it restarted
that child since it started, the child's last exit code (negative: the signal that killed it)
and when (the Redis server's clock). A new ``swarm up`` starts its host's counts afresh.
"""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime

from pydantic import BaseModel

from swarm.ledger import Ledger


class ChildRestarts(BaseModel):
    host: str
    child: str  # pm, architect, developer, qa, devops, beat, flower
    restarts: int
    last_exit: int | None  # negative: killed by that signal
    at: datetime | None  # when it last exited or restarted


def field(child: str, host: str | None = None) -> str:
    return f"{host or socket.gethostname()}/{child}"


def reset(ledger: Ledger, children: list[str]) -> None:
    """Forgets this host's counts for ``children`` (a new ``swarm up``)."""
    if children:
        ledger.read(ledger.client.hdel, ledger.keys.fleet_restarts, *(field(c) for c in children))


def record(ledger: Ledger, child: str, restarts: int, last_exit: int) -> None:
    at_ms = int(ledger.server_time().timestamp() * 1000)
    value = json.dumps({"restarts": restarts, "last_exit": last_exit, "at": at_ms})
    ledger.read(ledger.client.hset, ledger.keys.fleet_restarts, field(child), value)


def read(ledger: Ledger) -> list[ChildRestarts]:
    """Every host's children that ``swarm up`` restarted, or saw exit, by host and child."""
    raw: dict[str, str] = ledger.read(ledger.client.hgetall, ledger.keys.fleet_restarts)
    rows = []
    for name, value in sorted(raw.items()):
        host, _, child = name.rpartition("/")
        try:
            data = json.loads(value)
            at = datetime.fromtimestamp(int(data["at"]) / 1000, UTC) if data.get("at") else None
            rows.append(
                ChildRestarts(
                    host=host,
                    child=child,
                    restarts=int(data["restarts"]),
                    last_exit=data.get("last_exit"),
                    at=at,
                )
            )
        except (ValueError, KeyError, TypeError):
            continue  # not a record this version wrote
    return rows

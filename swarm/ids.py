"""Identifiers: ``work_<ns>_<node>`` and ``agent_<ns>_<node>``.

``<ns>`` is a 19-digit nanosecond timestamp made strictly increasing within a process, so
ids sort by creation time. ``<node>`` is 48 random bits drawn per process (again after every
fork), so two hosts minting an id in the same nanosecond still differ.
"""

from __future__ import annotations

import os
import re
import threading
import time

NODE_HEX_DIGITS = 12  # 48 bits: a same-nanosecond collision across two processes is ~3.6e-15

_ID_RE = re.compile(r"^(work|agent)_(\d{19})_([0-9a-f]{12})$")

_lock = threading.Lock()
_last_ns = 0
_node = ""


def _new_node() -> None:
    global _node, _last_ns
    _node = os.urandom(NODE_HEX_DIGITS // 2).hex()
    _last_ns = 0


_new_node()
os.register_at_fork(after_in_child=_new_node)


def _next_ns() -> int:
    global _last_ns
    with _lock:
        ns = time.time_ns()
        if ns <= _last_ns:
            ns = _last_ns + 1
        _last_ns = ns
        return ns


def new_work_id() -> str:
    """A new, unique, time-sortable work id."""
    return f"work_{_next_ns():019d}_{_node}"


def new_agent_id() -> str:
    """A new, unique, time-sortable agent id."""
    return f"agent_{_next_ns():019d}_{_node}"


def id_timestamp_ns(identifier: str) -> int:
    """The creation time (ns since the epoch) encoded in a swarm id."""
    match = _ID_RE.match(identifier)
    if match is None:
        raise ValueError(f"not a swarm id: {identifier!r}")
    return int(match.group(2))

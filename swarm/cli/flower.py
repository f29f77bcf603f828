"""``swarm flower``: Flower on the swarm's broker, with basic auth, or on loopback only without it.

The rule is applied to the options Flower will actually run with, not to the words typed: before
Flower starts, its own parser (``flower.command``, over ``tornado.options``) reads its ``FLOWER_*``
environment variables, the config file ``--conf`` names and the whole command line, exactly as
Flower reads them when it starts in this process a moment later. However the address is spelled
(``--address=``, ``-address=``, ``---address=``, the last of several; ``--address X`` is refused
as Flower refuses it; ``FLOWER_ADDRESS`` and a config file lose to the command line, as in
Flower), a TCP address that does not resolve to loopback only is refused (exit 2) unless Flower
asks for credentials: basic auth (``SWARM_FLOWER_BASIC_AUTH``, or Flower's own ``basic_auth``) or
Flower's OAuth (``auth``). A ``unix_socket`` is local.

Flower executes ``./flowerconfig.py`` when it finds one in the working directory; ``swarm flower``
reads a config file only when one is named (``-- --conf=FILE`` or ``FLOWER_CONF``).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import typer

from swarm.cli.runtime import err, load_settings, run
from swarm.errors import BadInput

if TYPE_CHECKING:
    from swarm.settings import Settings

LOOPBACK = "127.0.0.1"
OPEN_ADDRESS = "0.0.0.0"  # noqa: S104 - only ever bound with basic auth on
FLOWER_ENV_PREFIX = "FLOWER_"  # flower.command.ENV_VAR_PREFIX


def is_loopback(address: str) -> bool:
    """Whether listening on ``address`` (resolved as tornado's ``bind_sockets`` resolves it)
    reaches this host only. Empty means every interface; a name that does not resolve is not
    loopback."""
    if not address:
        return False
    try:
        found = socket.getaddrinfo(address, None, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
    except (OSError, UnicodeError):
        return False
    hosts = {str(info[4][0]).split("%", 1)[0] for info in found}
    return bool(hosts) and all(ipaddress.ip_address(host).is_loopback for host in hosts)


def basic_auth(settings: Settings) -> str | None:
    """SWARM_FLOWER_BASIC_AUTH checked: ``user:password[,user2:password2]``, or None when unset."""
    raw = (settings.flower_basic_auth or "").strip()
    if not raw:
        return None
    for credential in raw.split(","):
        user, colon, password = credential.strip().partition(":")
        if not (user and colon and password):
            # Never echo the value: it holds passwords.
            raise BadInput("SWARM_FLOWER_BASIC_AUTH must be user:password[,user2:password2]")
    return ",".join(c.strip() for c in raw.split(","))


def _names_config_in_environment() -> bool:
    """Whether a ``FLOWER_CONF`` variable (any case after the prefix, as Flower reads it) is set."""
    prefix = FLOWER_ENV_PREFIX
    return any(name.startswith(prefix) and name[len(prefix) :].lower() == "conf" for name in os.environ)


def flower_options(argv: Sequence[str]) -> Any:
    """The options Flower will run with for ``celery flower ARGV``: Flower's own parse of its
    environment, its config file and ``argv`` (``flower.command.apply_env_options`` and
    ``apply_options``), into this process's ``tornado.options``, which Flower parses again the
    same way when it starts. A value Flower would refuse is bad input."""
    from flower import command  # type: ignore[import-untyped]

    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    try:
        command.apply_env_options()
        command.apply_options("flower", list(argv))
    except Exception as exc:  # tornado's option errors, a bad value's ValueError, a config file's own
        raise BadInput(f"Flower refuses its options: {type(exc).__name__}: {exc}") from None
    finally:  # tornado's parse callback sets up logging; Flower does it again when it starts
        root.setLevel(level)
        root.handlers[:] = handlers
    return command.options


def flower_argv(
    settings: Settings, port: int | None, address: str | None, extra: list[str]
) -> tuple[list[str], dict[str, str]]:
    """The ``celery flower`` arguments and the environment Flower needs, checked against the rule
    on the options Flower will run with (``flower_options``)."""
    auth = basic_auth(settings)
    bind = address or (LOOPBACK if auth is None else OPEN_ADDRESS)
    argv = ["flower", f"--port={port or settings.flower_port}", f"--address={bind}"]
    if auth is not None:
        argv.append(f"--basic-auth={auth}")
    if not _names_config_in_environment():
        argv.append(f"--conf={os.devnull}")  # never ./flowerconfig.py unless named; a later --conf wins
    argv += extra
    options = flower_options(argv[1:])
    authenticated = bool(options.basic_auth) or bool(options.auth)
    if not authenticated and not options.unix_socket and not is_loopback(options.address):
        where = options.address or "every interface"
        raise BadInput(
            f"Flower would listen on {where} with no auth: without SWARM_FLOWER_BASIC_AUTH it binds "
            "loopback only; set SWARM_FLOWER_BASIC_AUTH=user:password to serve other hosts"
        )
    # Reachable from this host only, its API may answer without auth (Flower refuses it otherwise).
    env = {} if authenticated else {"FLOWER_UNAUTHENTICATED_API": "true"}
    return argv, env


def flower(
    port: int | None = typer.Option(
        None, "--port", min=1, max=65535, help="Port (default SWARM_FLOWER_PORT, 5555)."
    ),
    address: str | None = typer.Option(
        None,
        "--address",
        help="Address to bind: 0.0.0.0 by default with SWARM_FLOWER_BASIC_AUTH, loopback only without.",
    ),
    flower_args: list[str] | None = typer.Argument(None, help="More Flower options, after --."),
) -> None:
    """Run Flower (the Celery monitor) on the swarm's broker: workers by role-named node, task events.

    With SWARM_FLOWER_BASIC_AUTH=user:password[,user2:password2] it asks for those credentials;
    without it, it binds loopback only (however the address is given) and its API answers there
    without auth.
    """

    def body() -> None:
        from swarm.celery_app import create_app
        from swarm.cli.celery_command import run_celery
        from swarm.embedded import resolve_redis

        settings = load_settings()
        argv, env = flower_argv(settings, port, address, list(flower_args or []))
        with resolve_redis(settings.redis_url) as target:
            if target.embedded:
                err().print(
                    f"note: REDIS_URL is not set; Flower watches an embedded Redis ({target.kind}) "
                    "that no worker shares. Set REDIS_URL to the swarm's Redis.",
                    style="yellow",
                )
            os.environ.update(env)
            app = create_app(settings, target.url)
            run_celery(app, argv)

    run(False, body)

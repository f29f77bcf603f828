"""``swarm flower``: Flower on the swarm's broker, with basic auth, or on loopback only without it."""

from __future__ import annotations

import ipaddress
import os
from typing import TYPE_CHECKING

import typer

from swarm.cli.runtime import err, load_settings, run
from swarm.errors import BadInput

if TYPE_CHECKING:
    from swarm.settings import Settings

LOOPBACK = "127.0.0.1"
OPEN_ADDRESS = "0.0.0.0"  # noqa: S104 - only ever bound with basic auth on
# Flower options `swarm flower` owns: they would bypass the loopback rule or the settings.
OWN_OPTIONS = ("--address", "--port", "--basic-auth", "--basic_auth")


def is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


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


def flower_argv(
    settings: Settings, port: int | None, address: str | None, extra: list[str]
) -> tuple[list[str], dict[str, str]]:
    """The ``celery flower`` arguments and the environment Flower needs, by the auth rules."""
    for arg in extra:
        if arg.split("=", 1)[0] in OWN_OPTIONS:
            raise BadInput(
                f"{arg.split('=', 1)[0]} is set by swarm flower: use its --port/--address, "
                "and SWARM_FLOWER_BASIC_AUTH for the credentials"
            )
    auth = basic_auth(settings)
    env: dict[str, str] = {}
    if auth is None:
        bind = address or LOOPBACK
        if not is_loopback(bind):
            raise BadInput(
                f"without SWARM_FLOWER_BASIC_AUTH, Flower binds loopback only (not {bind}); "
                "set SWARM_FLOWER_BASIC_AUTH=user:password to serve other hosts"
            )
        # Bound to loopback, its API may answer without auth (Flower refuses it otherwise).
        env["FLOWER_UNAUTHENTICATED_API"] = "true"
    else:
        bind = address or OPEN_ADDRESS
    argv = ["flower", f"--port={port or settings.flower_port}", f"--address={bind}"]
    if auth is not None:
        argv.append(f"--basic-auth={auth}")
    return [*argv, *extra], env


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
    without it, it binds 127.0.0.1 only and its API answers there without auth.
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

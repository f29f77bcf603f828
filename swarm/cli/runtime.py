"""What every CLI command shares: settings, the Redis target, output and exit codes.

Every command module is imported whenever ``swarm`` starts (``--help`` lists them all), so they
import what they need when they run: Rich, the ledger and the settings are imported here on
first use, and Celery, OpenTelemetry's SDK and the ceremonies only by the commands that use them.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from functools import cache
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import typer

from swarm.errors import BadInput, ClaimConflict, NotOwner, RedisUnavailable, SwarmError

if TYPE_CHECKING:
    from pydantic import BaseModel
    from rich.console import Console

    from swarm.embedded import RedisTarget
    from swarm.ledger import Ledger
    from swarm.settings import Settings

T = TypeVar("T")


@cache
def out() -> Console:
    """The console on standard output, made on first use: a command that prints JSON, or one
    plain line, never imports Rich."""
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


@cache
def err() -> Console:
    """The console on standard error, made on first use."""
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


JSON_OPTION = typer.Option(False, "--json", help="Print machine-readable JSON.")
AGENT_OPTION = typer.Option(
    None, "--agent", envvar="SWARM_AGENT_ID", help="The acting agent's id (or SWARM_AGENT_ID)."
)
FENCE_OPTION = typer.Option(None, "--fence", min=1, help="The fencing token your claim returned.")


def load_settings() -> Settings:
    from pydantic import ValidationError

    from swarm.settings import Settings

    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BadInput(f"invalid setting {where}: {first['msg']}") from None


@contextlib.contextmanager
def ledger_session(*, announce: bool = True) -> Iterator[Ledger]:
    """A ledger on REDIS_URL, or on an embedded Redis that lives for this command."""
    from swarm.embedded import EmbeddedUnavailable, resolve_redis
    from swarm.ledger import Ledger

    settings = load_settings()
    try:
        with resolve_redis(settings.redis_url) as target:
            if announce and target.embedded:
                _announce(target)
            ledger = Ledger.from_url(target.url, settings)
            try:
                yield ledger
            finally:
                ledger.client.close()
    except EmbeddedUnavailable as exc:
        raise RedisUnavailable(f"no REDIS_URL is set and {exc}") from None


def _announce(target: RedisTarget) -> None:
    if os.environ.get("SWARM_QUIET_EMBEDDED"):
        return
    err().print(
        f"note: REDIS_URL is not set; using an embedded Redis ({target.kind}) that stops when "
        "this command ends. Set REDIS_URL to keep work between commands.",
        style="yellow",
    )


def print_line(text: str) -> None:
    """One line of plain text on stdout, as is (no Rich: a one-line reply need not import it)."""
    sys.stdout.write(text + "\n")


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False) + "\n")


def print_model(model: BaseModel) -> None:
    sys.stdout.write(model.model_dump_json() + "\n")


def fail(exc: SwarmError, as_json: bool) -> NoReturn:
    """Reports an expected error in one line (or one JSON object) and exits with its code."""
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if as_json:
        body: dict[str, Any] = {"error": type(exc).__name__, "message": message, "exit_code": exc.exit_code}
        if isinstance(exc, ClaimConflict | NotOwner):
            body["holder"] = exc.holder
        print_json(body)
    else:
        err().print(f"error: {message}", markup=False)
    raise typer.Exit(exc.exit_code)


def run(as_json: bool, action: Callable[[], T]) -> T:
    """Runs a command body, turning every expected error into its exit code without a traceback."""
    try:
        return action()
    except SwarmError as exc:
        fail(exc, as_json)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except (typer.Exit, typer.Abort):
        raise
    except Exception as exc:
        if os.environ.get("SWARM_DEBUG"):
            raise
        unexpected = SwarmError(f"unexpected {type(exc).__name__}: {exc} (set SWARM_DEBUG=1 for a traceback)")
        fail(unexpected, as_json)


def read_text_argument(value: str, what: str) -> str:
    """``-`` means standard input (byte-exact, UTF-8); anything else is the text itself."""
    if value != "-":
        return value
    data = sys.stdin.buffer.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(
            f"{what} on standard input is not valid UTF-8 ({exc.reason} at byte {exc.start})"
        ) from None


def require_agent(agent: str | None) -> str:
    if not agent:
        raise BadInput("an agent id is required: pass --agent or set SWARM_AGENT_ID")
    return agent

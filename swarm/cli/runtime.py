"""What every CLI command shares: settings, the Redis target, output and exit codes.

A command's module is imported when the command runs (``--help`` imports them all, to list them),
and imports what the command needs inside it: Rich, the settings and the ledger are imported
here on first use, Celery, OpenTelemetry's SDK, the workers and the ceremonies only by the
commands that use them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from functools import cache
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import typer

from swarm.errors import BadInput, ClaimConflict, NotOwner, RedisUnavailable, SwarmError
from swarm.terminal import terminal_safe

if TYPE_CHECKING:
    from pydantic import BaseModel
    from rich.console import Console

    from swarm.embedded import RedisTarget
    from swarm.ledger import Ledger
    from swarm.settings import Settings

T = TypeVar("T")


def _console(**options: Any) -> Console:
    """A Rich console whose output never carries a raw control character: whatever is printed
    has them escaped (``render.EscapeControls``)."""
    from rich.console import Console

    from swarm.cli.render import EscapeControls

    console = Console(**options)
    console.push_render_hook(EscapeControls())
    return console


@cache
def out() -> Console:
    """The console on standard output, made on first use: a command that prints JSON, or one
    plain line, never imports Rich."""
    return _console(highlight=False, soft_wrap=True)


@cache
def err() -> Console:
    """The console on standard error, made on first use."""
    return _console(stderr=True, highlight=False, soft_wrap=True)


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
    """One line of plain text on stdout (no Rich: a one-line reply need not import it), its
    control characters escaped (``swarm.terminal``)."""
    sys.stdout.write(terminal_safe(text) + "\n")


# Characters JSON may leave raw that a terminal would act on or reorder: DEL, the C1 controls,
# the bidirectional overrides and isolates (JSON itself escapes U+0000-U+001F).
_RAW_IN_JSON = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def write_json(text: str) -> None:
    """One JSON document on a line of stdout, with the characters ``_RAW_IN_JSON`` names written
    as ``\\uXXXX`` escapes (they occur only inside strings: the same JSON value)."""
    sys.stdout.write(_RAW_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n")


def print_json(value: Any) -> None:
    write_json(json.dumps(value, ensure_ascii=False))


def print_model(model: BaseModel) -> None:
    write_json(model.model_dump_json())


def fail(exc: SwarmError, as_json: bool) -> NoReturn:
    """Reports an expected error in one line (or one JSON object) and exits with its code."""
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if as_json:
        body: dict[str, Any] = {"error": type(exc).__name__, "message": message, "exit_code": exc.exit_code}
        if isinstance(exc, ClaimConflict | NotOwner):
            body["holder"] = exc.holder
        print_json(body)
    else:
        err().print(f"error: {terminal_safe(message)}", markup=False)
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

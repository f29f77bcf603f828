"""Running a ``celery`` subcommand (worker, beat, flower) in-process, keeping its exit code.

``Celery.worker_main`` and ``Celery.start`` drop the code ``celery worker`` exits with (1 after
an unrecoverable error: with ``standalone_mode=False`` click returns it rather than raising it,
and ``start`` discards the return value), and click hands its usage errors back as exceptions: so
``swarm worker``/``beat``/``flower`` would exit 0 when their process died of an error, and a
supervisor's ``Restart=on-failure`` would never restart them. Here the code goes back to the
shell: 0 after a warm shutdown (Ctrl-C, SIGTERM), 2 for options Celery refuses, 7 when the
command gave up on an unreachable Redis (beat, after retrying for a minute), and the command's
own non-zero code (1 for an error) otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence

import click
import typer
from celery import Celery
from celery.bin.celery import celery as celery_cli
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from swarm.connection import unavailable
from swarm.errors import BadInput


def run_celery(app: Celery, argv: Sequence[str]) -> None:
    """``celery <argv>`` on ``app``; returns after a clean exit, raises ``typer.Exit`` otherwise.

    An exception the command raises (e.g. beat's, from its scheduler) propagates to the CLI's
    ``run``, which reports it and exits 1.
    """
    celery_cli.params[0].default = app  # the --app option, as Celery.start sets it
    try:
        code = celery_cli.main(args=list(argv), standalone_mode=False)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except (RedisConnectionError, RedisTimeoutError) as exc:
        raise unavailable(str(app.conf.broker_url or ""), exc) from None
    except click.UsageError as exc:
        raise BadInput(f"celery {argv[0]}: {exc.format_message()}") from None
    except click.ClickException as exc:
        raise typer.Exit(exc.exit_code or 1) from None
    except SystemExit as exc:  # a command that calls sys.exit itself
        status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if status:
            raise typer.Exit(status) from None
        return
    finally:
        celery_cli.params[0].default = None
    if isinstance(code, int) and code:
        raise typer.Exit(code)

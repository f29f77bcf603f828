"""``swarm improve``: run one self-improvement cycle now (SPEC §9) and show it, then past cycles.

It goes through ``ceremonies.improve.cycle.run_cycle``, the same path beat's ``swarm.improve``
task takes, so a manual run during a scheduled one is refused by the cycle's lock. Remote
control (pool sizes, rate limits) needs a Celery app on the ledger's Redis.
"""

from __future__ import annotations

import typer

from swarm.cli.runtime import JSON_OPTION, ledger_session, out, print_model, run, write_json

LISTED_CYCLES = 10  # past cycles listed after a run (and by --list)


def improve(
    dry_run: bool = typer.Option(False, "--dry-run", help="Discover, propose and validate; deploy nothing."),
    as_json: bool = JSON_OPTION,
    list_only: bool = typer.Option(False, "--list", help="Only list past cycles and their outcomes."),
) -> None:
    """Run one self-improvement cycle now and print it, then list past cycles."""

    def body() -> None:
        from ceremonies.improve.cycle import past_cycles, run_cycle
        from swarm.celery_app import create_app
        from swarm.cli.improve_view import history_table, show

        with ledger_session() as ledger:
            if list_only:
                cycles = past_cycles(ledger, LISTED_CYCLES)
                if as_json:
                    write_json("[" + ",".join(c.model_dump_json() for c in cycles) + "]")
                else:
                    out().print(history_table(cycles))
                return
            app = create_app(ledger.settings, ledger.url or "")
            try:
                cycle = run_cycle(ledger, app, dry_run=dry_run)
            finally:
                app.close()
            if as_json:
                print_model(cycle)
                return
            show(cycle)
            out().print(history_table(past_cycles(ledger, LISTED_CYCLES)))

    run(as_json, body)

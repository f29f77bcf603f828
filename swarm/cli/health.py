"""``swarm health``: pass/fail checks with reasons; the exit code says whether the swarm is healthy."""

from __future__ import annotations

import typer

from swarm.cli.runtime import JSON_OPTION, err, load_settings, out, print_model, run


def health(
    ack_dead: bool = typer.Option(
        False,
        "--ack-dead",
        help="Acknowledge every item dead and every message dead-lettered now (those checks pass "
        "until another dies or is dead-lettered).",
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Check that Redis answers, that every role with work has agents consuming it (not merely
    alive), that beat ticks, that no lease has stayed expired past the reaper interval, and that
    no dead item is unacknowledged.

    Exit codes: 0 healthy, 1 a check failed, 7 Redis unreachable. It never starts an embedded
    Redis: without REDIS_URL it checks the local one.
    """

    def body() -> int:
        from rich.table import Table
        from rich.text import Text

        from swarm import deadletters
        from swarm.embedded import LOCAL_REDIS_URL
        from swarm.health import EXIT_UNREACHABLE, acknowledge_dead, check_health
        from swarm.ledger import Ledger

        settings = load_settings()
        ledger = Ledger.from_url(settings.redis_url or LOCAL_REDIS_URL, settings)
        try:
            if ack_dead:
                report = check_health(ledger)  # Redis must answer before anything is recorded
                if report.exit_code != EXIT_UNREACHABLE:
                    ack = acknowledge_dead(ledger)
                    letters = deadletters.acknowledge(ledger)
                    if not as_json:
                        err().print(f"acknowledged {ack.count} dead item(s) and {letters} dead letter(s)")
            report = check_health(ledger)
        finally:
            ledger.client.close()
        if as_json:
            print_model(report)
        else:
            table = Table(title=f"swarm health ({report.redis})")
            table.add_column("check")
            table.add_column("", justify="center")
            table.add_column("reason", overflow="fold")
            for check in report.checks:
                mark = Text("ok", style="green") if check.ok else Text("FAIL", style="bold red")
                table.add_row(check.name, mark, check.reason)
            out().print(table)
            out().print(
                Text("healthy", style="bold green") if report.healthy else Text("unhealthy", style="bold red")
            )
        return report.exit_code

    code = run(as_json, body)
    raise typer.Exit(code)

"""``swarm metrics``: the ledger's Prometheus exposition, printed once or served on ``/metrics``."""

from __future__ import annotations

import sys
import threading

import typer

from swarm.cli.runtime import err, ledger_session, load_settings, run

ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - a scrape target, as exporters usually are; see --address


def metrics(
    serve: bool = typer.Option(False, "--serve", help="Serve /metrics until Ctrl-C instead of printing."),
    port: int | None = typer.Argument(
        None, min=1, max=65535, help="With --serve: the port (default SWARM_METRICS_PORT, 9808)."
    ),
    address: str = typer.Option(ALL_INTERFACES, "--address", help="With --serve: the address to bind."),
) -> None:
    """Print the swarm's metrics in Prometheus's text format, computed from the ledger.

    `swarm metrics --serve [PORT]` serves them on http://ADDRESS:PORT/metrics instead; every
    scrape reads the ledger again, so any host's endpoint shows the whole swarm.
    """

    def body() -> None:
        from prometheus_client import start_http_server

        from swarm.metrics import exposition, registry_for

        if port is not None and not serve:
            raise typer.BadParameter("PORT is only taken with --serve")
        settings = load_settings()
        with ledger_session() as ledger:
            if not serve:
                sys.stdout.write(exposition(ledger))
                return
            chosen = port or settings.metrics_port
            server, thread = start_http_server(chosen, addr=address, registry=registry_for(ledger))
            err().print(f"serving metrics on http://{address}:{chosen}/metrics (Ctrl-C to stop)")
            try:
                threading.Event().wait()
            finally:
                server.shutdown()
                thread.join(timeout=5)

    run(False, body)

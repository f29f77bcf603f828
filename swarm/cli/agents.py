"""The agent commands: register, agents, generate-id."""

from __future__ import annotations

import socket

import typer

from swarm.cli.runtime import JSON_OPTION, ledger_session, out, print_json, print_line, print_model, run
from swarm.ids import new_agent_id, new_work_id


def register(
    agent_id: str = typer.Argument(..., help="The agent's id (see generate-id)."),
    role: str | None = typer.Option(None, help="pm|architect|developer|qa|devops."),
    team: str | None = typer.Option(None, help="The agent's team."),
    capacity: int = typer.Option(1, min=1, help="Items it can hold at once."),
    specialization: str = typer.Option("", help="Free text, e.g. 'frontend'."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Register an agent, or update its record (metrics are kept)."""

    def body() -> None:
        with ledger_session() as ledger:
            agent = ledger.register_agent(
                agent_id,
                role=role,
                team=team,
                capacity=capacity,
                specialization=specialization,
                host=socket.gethostname(),
            )
        if as_json:
            print_model(agent)
        else:
            print_line(f"registered {agent.id}")

    run(as_json, body)


def agents(as_json: bool = JSON_OPTION) -> None:
    """List agents with their live metrics."""

    def body() -> None:
        with ledger_session() as ledger:
            found = ledger.agents()
        if as_json:
            print_json([a.model_dump(mode="json") for a in found])
        else:
            from swarm.cli import render

            out().print(render.AgentsTable(found))

    run(as_json, body)


def generate_id(
    work: bool = typer.Option(False, "--work", help="A work id instead of an agent id."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Print a new unique, time-sortable id (agent_<ns>_<node>, or work_… with --work)."""
    del as_json  # the id is printed bare either way, so scripts can use $(swarm generate-id)
    typer.echo(new_work_id() if work else new_agent_id())

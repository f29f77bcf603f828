"""``swarm improve``'s views of a cycle and of past cycles, as Rich renderables."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text

from ceremonies.improve.cycle import Cycle
from ceremonies.improve.deploy import Deployment
from swarm.cli.runtime import out

OUTCOME_STYLE = {
    "improved": "green", "no_change": "dim", "worse": "bold red", "inconclusive": "yellow",
    "abandoned": "magenta",
}  # fmt: skip


def _num(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def show(cycle: Cycle) -> None:
    """Prints every phase of one cycle and its evidence."""
    kind = "dry run" if cycle.dry_run else "cycle"
    out().print(Text(f"Improvement {kind} {cycle.id} ({cycle.status.value})", style="bold"))
    for phase in cycle.phases:
        out().print(Text(f"  {phase.name} ({phase.seconds:.2f}s): {phase.summary}"))
    if cycle.error:
        out().print(Text(f"  error: {cycle.error}", style="red"))
    if cycle.discovery is not None:
        out().print(metrics_table(cycle))
    if cycle.learned:
        table = _table("Judged", "action", "deployed in", "before", "after", "outcome", "rollback")
        for x in cycle.learned:
            j = x.judgement
            style = OUTCOME_STYLE.get(j.outcome, "")
            table.add_row(x.action, x.cycle_id, _num(j.before_value), _num(j.after_value),
                          Text(j.outcome, style=style), j.rollback)  # fmt: skip
        out().print(table)
    if cycle.advisor is not None:
        a = cycle.advisor
        state = "used" if a.used else f"ignored: {a.reason}"
        out().print(Text(f"Advisor: {state} (cost ${a.cost_usd or 0:g}, {a.seconds or 0:.1f}s)"))
    table = _table("Proposals", "action", "source", "reason", "verdict", "dry run")
    for v in cycle.verdicts:
        verdict = (
            Text("accepted", style="green") if v.accepted else Text(f"rejected: {v.reason}", style="red")
        )
        action = v.proposal.action
        table.add_row(action.describe(), v.proposal.source.value, action.reason, verdict, v.dry_run)
    out().print(table if cycle.verdicts else Text("Proposals: none"))
    table = _table("Deployments", "action", "before", "after", "result")
    for d in cycle.deployments:
        table.add_row(d.action.describe(), _compact(d.before), _compact(d.after), "ok" if d.ok else d.error)
    out().print(
        table if cycle.deployments else Text("Deployments: none" + (" (dry run)" if cycle.dry_run else ""))
    )


def metrics_table(cycle: Cycle) -> Table:
    assert cycle.discovery is not None
    table = _table(
        f"Metrics over {cycle.window_s:g}s",
        "role", "pending", "oldest wait s", "mean wait s", "success", "duration s", "throughput/s",
        "expired", "dead", "cost $", "slots", "nodes",
    )  # fmt: skip
    for m in cycle.discovery.roles.values():
        table.add_row(
            m.role.value, str(m.queue_depth), _num(m.oldest_wait_s, 1), _num(m.mean_wait_s, 1),
            _num(m.success_rate), _num(m.mean_duration_s), _num(m.throughput), str(m.expired_leases),
            str(m.dead_items), _num(m.cost_usd, 4), "" if m.concurrency is None else str(m.concurrency),
            ", ".join(m.nodes),
        )  # fmt: skip
    return table


def history_table(cycles: list[Cycle]) -> Table:
    """Past cycles, newest first, with what each deployed and how it was judged."""
    table = _table("Past cycles", "cycle", "started", "kind", "status", "proposals", "deployed", "outcomes")
    for c in cycles:
        outcomes = ", ".join(
            f"{d.action.describe()}: {_state(d)}"
            + (" (rolled back)" if d.judgement and d.judgement.rolled_back else "")
            for d in c.deployments
        )
        table.add_row(
            c.id, c.started_at.isoformat(timespec="seconds"), "dry run" if c.dry_run else "cycle",
            c.status.value, str(len(c.proposals)), str(sum(d.ok for d in c.deployments)), outcomes,
        )  # fmt: skip
    return table


def _state(deployment: Deployment) -> str:
    """A deployment's outcome, or where it stands until it is judged."""
    if deployment.judgement is not None:
        return deployment.judgement.outcome
    return "monitoring" if deployment.ok else deployment.status.value


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    return table


def _compact(snapshot: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in snapshot.items())

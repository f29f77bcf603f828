"""The demo's ceremonies: a compressed calendar, and one line per stored report at the end."""

from __future__ import annotations

from rich.table import Table

from ceremonies import store
from ceremonies.art_sync import ARTSyncReport
from ceremonies.figures import ObjectiveState
from ceremonies.inspect_adapt import InspectAdaptReport
from ceremonies.pi_planning import PIPlanningReport
from ceremonies.registry import ceremonies
from ceremonies.report import CeremonyReport
from ceremonies.system_demo import SystemDemoReport
from swarm.durations import format_duration
from swarm.ledger import Ledger
from swarm.settings import Settings

ITERATION_S = 8.0  # a PI of 3 such iterations covers start-up and the backlog
PI_ITERATIONS = 3
TICK_S = 0.5


def compressed(settings: Settings) -> dict[str, str]:
    """The ``SWARM_*`` calendar settings of the demo (its fleet and its own ledger use them)."""
    return {
        "SWARM_ITERATION_LENGTH": format_duration(ITERATION_S),
        "SWARM_PI_ITERATIONS": str(PI_ITERATIONS),
        "SWARM_ART_SYNC_EVERY": format_duration(ITERATION_S),  # one ART Sync per iteration
        "SWARM_CALENDAR_TICK": format_duration(TICK_S),
        "SWARM_BEAT_MAX_INTERVAL": format_duration(TICK_S),
        "SWARM_IMPROVE_EVERY": format_duration(ITERATION_S),
        "SWARM_REAPER_INTERVAL": format_duration(settings.reaper_interval_seconds),
    }


def _mean_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def headline(report: CeremonyReport) -> str:
    """What the report says, in one line."""
    if isinstance(report, PIPlanningReport):
        return (
            f"{len(report.objectives)} objectives ({report.total_business_value} business value) "
            f"from a backlog of {report.backlog_size}; {len(report.leftovers)} left over"
        )
    if isinstance(report, ARTSyncReport):
        held = sum(len(t.in_progress) for t in report.teams)
        blocked = sum(len(t.blocked) for t in report.teams)
        done = report.objectives.counts.get(ObjectiveState.DONE, 0)
        planned = len(report.objectives.objectives)
        return f"{held} in progress, {blocked} blocked; objectives done {done}/{planned}"
    if isinstance(report, SystemDemoReport):
        ends = report.workflow_velocity_by_team
        velocity = ", ".join(f"{t} {p}" for t, p in sorted(ends.items())) or "none"
        return f"{len(report.completed)} stages completed; velocity (finished work) {velocity}"
    if isinstance(report, InspectAdaptReport):
        return (
            f"predictability {_mean_ratio(report.overall_predictability)}, success rate "
            f"{_mean_ratio(report.success_rate)}, throughput {report.throughput}; "
            f"{len(report.filed)} improvement items filed"
        )
    return ""


def ceremonies_table(ledger: Ledger) -> Table:
    """Every report the demo's calendar produced, in the order they were written."""
    table = Table(title="Ceremonies (beat, compressed calendar)", title_justify="left")
    for name in ("period", "ceremony", "report"):
        table.add_column(name)
    rows: list[tuple[float, str, str, str]] = []
    for chosen in ceremonies().values():
        for period in store.periods(chosen, ledger):
            report = store.load(chosen, ledger, period)
            if report is not None:
                rows.append((report.generated_at.timestamp(), period, chosen.title, headline(report)))
    for *_, period, title, line in sorted(rows):
        table.add_row(period, title, line)
    return table

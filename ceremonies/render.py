"""Ceremony reports for people: a Rich renderable for the terminal, and Markdown for files.

Both are drawn from one ``View`` per report (a title, key facts, and tables), so the terminal and
the Markdown always show the same figures. User text (descriptions, errors) is never read as
Rich markup, has its control characters escaped on the terminal (``swarm.terminal``), and is
escaped in Markdown tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from ceremonies.art_sync import ARTSyncReport
from ceremonies.inspect_adapt import InspectAdaptReport
from ceremonies.pi_planning import ObjectivesProgress, PIPlanningReport, PlannedItem
from ceremonies.registry import ceremonies
from ceremonies.report import CeremonyReport
from ceremonies.system_demo import SystemDemoReport
from swarm.durations import format_duration
from swarm.terminal import terminal_safe

NONE = "—"


@dataclass
class Section:
    title: str
    headers: list[str]
    rows: list[list[str]]


@dataclass
class View:
    title: str
    facts: list[tuple[str, str]]
    sections: list[Section] = field(default_factory=list)


def _when(at: datetime | None) -> str:
    return at.isoformat(timespec="seconds") if at else NONE


def _secs(seconds: float | None) -> str:
    return NONE if seconds is None else format_duration(seconds) if seconds > 0 else "0s"


def _ratio(value: float | None) -> str:
    return NONE if value is None else f"{value:.1%}"


def _num(value: float) -> str:
    return f"{value:g}" if value == int(value) else f"{value:.2f}"


def _planned(title: str, items: Sequence[PlannedItem]) -> Section:
    headers = ["id", "type", "team", "role", "priority", "points", "WSJF", "BV"]
    rows = [
        [
            i.work_id,
            i.type,
            i.team,
            i.role.value,
            i.priority.value,
            str(i.points),
            _num(i.wsjf),
            str(i.business_value),
        ]
        for i in items
    ]
    return Section(title, headers, rows)


def _objectives(progress: ObjectivesProgress) -> tuple[list[tuple[str, str]], Section]:
    counts = ", ".join(f"{n} {state.value.replace('_', ' ')}" for state, n in progress.counts.items() if n)
    facts = [
        (f"PI{progress.pi} objectives", progress.note or counts or "none"),
        (
            "business value delivered",
            f"{progress.delivered_business_value} of {progress.planned_business_value}",
        ),
    ]
    headers = ["objective", "type", "team", "state", "stages done", "now at", "BV"]
    rows = [
        [
            o.work_id,
            o.type,
            o.team,
            o.state.value,
            str(o.stages_completed),
            o.current_role or NONE,
            str(o.business_value),
        ]
        for o in progress.objectives
    ]
    return facts, Section(f"Objectives as of {_when(progress.as_of)}", headers, rows)


def _pi_planning(r: PIPlanningReport) -> View:
    capacity = Section(
        "Capacity",
        [
            "team",
            "basis",
            "per iteration",
            "PI capacity",
            "history",
            "planned points",
            "planned BV",
            "objectives",
            "leftovers",
        ],
        [
            [
                t.team,
                t.capacity.basis,
                _num(t.capacity.per_iteration),
                _num(t.pi_capacity),
                ", ".join(t.capacity.iterations) or NONE,
                str(t.planned_points),
                str(t.planned_business_value),
                str(t.objectives),
                str(t.leftovers),
            ]
            for t in r.teams
        ],
    )
    facts = [
        ("backlog", f"{r.backlog_size} item(s) ({r.skipped_handoffs} handoff stage(s) left out)"),
        ("planned business value", str(r.total_business_value)),
    ]
    return View(
        "", facts, [capacity, _planned("Objectives", r.objectives), _planned("Leftovers", r.leftovers)]
    )


def _art_sync(r: ARTSyncReport) -> View:
    summary = Section(
        "Teams",
        ["team", "in progress", "blocked", "expired leases", "impediments", "handoffs waiting"],
        [
            [
                t.team,
                str(len(t.in_progress)),
                str(len(t.blocked)),
                str(len(t.expired_leases)),
                str(len(t.impediments)),
                str(len(t.handoffs_waiting)),
            ]
            for t in r.teams
        ],
    )
    blocked = Section(
        "Blocked",
        ["team", "id", "type", "role", "agent", "idle"],
        [
            [t.team, b.work_id, b.type, b.role.value, b.agent_id or NONE, _secs(b.idle_seconds)]
            for t in r.teams
            for b in t.blocked
        ],
    )
    leases = Section(
        "Expired leases",
        ["team", "id", "type", "role", "agent", "source", "at"],
        [
            [t.team, e.work_id, e.type, e.role.value, e.agent_id or NONE, e.source, _when(e.at)]
            for t in r.teams
            for e in t.expired_leases
        ],
    )
    impediments = Section(
        "Impediments",
        ["team", "id", "type", "role", "status", "attempts", "last error"],
        [
            [
                t.team,
                i.work_id,
                i.type,
                i.role.value,
                i.status.value,
                str(i.attempts),
                (i.error or NONE).splitlines()[0],
            ]
            for t in r.teams
            for i in t.impediments
        ],
    )
    handoffs = Section(
        "Handoffs waiting",
        ["team", "id", "type", "role", "stage", "waiting"],
        [
            [t.team, h.work_id, h.type, h.role.value, h.stage or NONE, _secs(h.waiting_seconds)]
            for t in r.teams
            for h in t.handoffs_waiting
        ],
    )
    facts, objectives = _objectives(r.objectives)
    facts = [("iteration", r.iteration), ("blocked after", _secs(r.blocked_after_seconds)), *facts]
    return View("", facts, [summary, blocked, leases, impediments, handoffs, objectives])


def _system_demo(r: SystemDemoReport) -> View:
    teams = sorted(set(r.velocity_by_team) | set(r.workflow_velocity_by_team))
    velocity = Section(
        "Velocity by team",
        ["team", "points (every stage)", "workflow points (last stages)"],
        [[t, str(r.velocity_by_team.get(t, 0)), str(r.workflow_velocity_by_team.get(t, 0))] for t in teams],
    )
    roles = Section(
        "Velocity by role", ["role", "points"], [[k, str(v)] for k, v in r.velocity_by_role.items()]
    )
    done = Section(
        "Completed",
        ["id", "type", "role", "team", "points", "workflow end", "completed"],
        [
            [
                c.work_id,
                c.type,
                c.role.value,
                c.team,
                str(c.points),
                "yes" if c.workflow_end else "no",
                _when(c.completed_at),
            ]
            for c in r.completed
        ],
    )
    facts, objectives = _objectives(r.objectives)
    return View(
        "", [("completed", f"{len(r.completed)} item(s)"), *facts], [velocity, roles, done, objectives]
    )


def _inspect_adapt(r: InspectAdaptReport) -> View:
    facts = [
        (
            "predictability",
            f"{_ratio(r.overall_predictability)} ({r.actual_business_value} of "
            f"{r.planned_business_value} business value){' ' + r.note if r.note else ''}",
        ),
        (
            "success rate",
            f"{_ratio(r.success_rate)} ({r.completed} completed, {r.failed} failed, {r.dead} dead)",
        ),
        ("throughput", f"{r.throughput} item(s) completed"),
    ]
    teams = Section(
        "Predictability by team",
        ["team", "planned BV", "actual BV", "predictability"],
        [
            [t.team, str(t.planned_business_value), str(t.actual_business_value), _ratio(t.predictability)]
            for t in r.predictability
        ],
    )
    throughput = Section(
        "Throughput by iteration",
        ["iteration", "completed"],
        [[k, str(v)] for k, v in r.throughput_by_iteration.items()],
    )
    times = Section(
        "Cycle and lead time by role",
        ["role", "completed", "cycle p50", "cycle p90", "lead p50", "lead p90"],
        [
            [
                t.role.value,
                str(t.completed),
                _secs(t.cycle_p50),
                _secs(t.cycle_p90),
                _secs(t.lead_p50),
                _secs(t.lead_p90),
            ]
            for t in r.times_by_role
        ],
    )
    causes = Section(
        "Top failure causes",
        ["type", "cause", "count", "items", "role", "team"],
        [[c.type, c.cause, str(c.count), str(c.items), c.role.value, c.team] for c in r.failure_causes],
    )
    return View("", facts, [teams, throughput, times, causes])


def _view_of(report: CeremonyReport) -> View:
    if isinstance(report, PIPlanningReport):
        return _pi_planning(report)
    if isinstance(report, ARTSyncReport):
        return _art_sync(report)
    if isinstance(report, SystemDemoReport):
        return _system_demo(report)
    if isinstance(report, InspectAdaptReport):
        return _inspect_adapt(report)
    return View("", [])  # a report type without a view of its own: the shared facts only


def view(report: CeremonyReport) -> View:
    """The report's view, with the title, period and filed items every report shares."""
    made = _view_of(report)
    known = ceremonies().get(report.ceremony)
    made.title = f"{known.title if known else report.ceremony}: {report.period.key}"
    made.facts = [
        ("period", f"{report.period.key} ({_when(report.period.start)} to {_when(report.period.end)})"),
        ("generated", _when(report.generated_at)),
        *made.facts,
    ]
    if report.filed:
        made.sections.append(
            Section(
                "Filed",
                ["id", "type", "role", "team", "priority", "description"],
                [
                    [f.work_id, f.type, f.role.value, f.team, f.priority.value, f.description]
                    for f in report.filed
                ],
            )
        )
    return made


def rich(report: CeremonyReport) -> RenderableType:
    """Headings, key facts and one table per section (an empty one says "none")."""
    v = view(report)
    parts: list[RenderableType] = [Text(v.title, style="bold underline")]
    facts = Table(show_header=False, box=None, pad_edge=False)
    facts.add_column(style="bold")
    facts.add_column()
    for name, value in v.facts:
        facts.add_row(Text(name), Text(terminal_safe(value)))
    parts.append(facts)
    for section in v.sections:
        if not section.rows:
            parts.append(Text.assemble((section.title, "bold"), ": none"))
            continue
        table = Table(title=section.title, title_justify="left", title_style="bold")
        for header in section.headers:
            table.add_column(header, overflow="fold")
        for row in section.rows:
            table.add_row(*(Text(terminal_safe(cell)) for cell in row))
        parts.append(table)
    return Group(*parts)


def _cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def markdown(report: CeremonyReport) -> str:
    """The same view as Markdown: a heading, a fact list, and a pipe table per section."""
    v = view(report)
    lines = [f"# {v.title}", ""]
    lines += [f"- **{name}**: {_cell(value)}" for name, value in v.facts]
    for section in v.sections:
        lines += ["", f"## {section.title}", ""]
        if not section.rows:
            lines.append("None.")
            continue
        lines.append("| " + " | ".join(section.headers) + " |")
        lines.append("|" + "---|" * len(section.headers))
        lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in section.rows]
    return "\n".join(lines) + "\n"

"""The ceremonies, by name: what each one's period is and how it computes its report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from ceremonies.report import CeremonyReport
from swarm.calendar import Calendar, Period
from swarm.errors import BadInput
from swarm.ledger import Ledger

Due = Callable[[Calendar, datetime], Period | None]
Compute = Callable[[Ledger, Calendar, Period, datetime], CeremonyReport]


@dataclass(frozen=True)
class Ceremony:
    """One ceremony: ``due`` names the period it should report on now (None: nothing yet), and
    ``compute`` builds that period's report from the ledger alone."""

    name: str
    title: str
    report_type: type[CeremonyReport]
    due: Due
    compute: Compute


def ceremonies() -> dict[str, Ceremony]:
    """Every ceremony by its command-line name, in calendar order."""
    from ceremonies import art_sync, inspect_adapt, pi_planning, system_demo  # noqa: PLC0415

    found = (pi_planning.CEREMONY, art_sync.CEREMONY, system_demo.CEREMONY, inspect_adapt.CEREMONY)
    return {c.name: c for c in found}


def ceremony(name: str) -> Ceremony:
    known = ceremonies()
    if name not in known:
        raise BadInput(f"unknown ceremony {name!r}; choose one of: {', '.join(known)}")
    return known[name]

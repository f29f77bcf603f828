"""Workflows (the value stream): which role each stage hands on to, and bounded send-backs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.resources.abc import Traversable
from pathlib import Path

from swarm import validation
from swarm.config_files import PackagedFile, read_toml
from swarm.errors import BadInput
from swarm.ledger import Handoff
from swarm.models import Role, WorkItem
from swarm.settings import Settings

DEFAULT_MAX_LOOPS = 2  # send-backs allowed before the work fails instead of looping forever
# The packaged workflows (swarm/workflows.toml); ./config/workflows.toml or the workflows_file
# setting replaces them.
WORKFLOWS_FILE = PackagedFile("swarm", "workflows.toml", "workflows_file")


@dataclass(frozen=True)
class Workflow:
    name: str
    stages: tuple[Role, ...]
    send_back: Mapping[Role, Role] = field(default_factory=dict)
    max_loops: int = DEFAULT_MAX_LOOPS

    @property
    def first(self) -> Role:
        return self.stages[0]


def load_workflows(path: str | Path | None) -> dict[str, Workflow]:
    """The workflows of the file ``path`` names (it must exist), or, when it is None, of
    ``./config/workflows.toml`` if present, else the packaged ones."""
    return read_workflows(path)[1]


def read_workflows(path: str | Path | None) -> tuple[Traversable, dict[str, Workflow]]:
    """``load_workflows``, and the file they came from."""
    file, raw = read_toml(path, WORKFLOWS_FILE)
    return file, {name: _workflow(file, name, spec) for name, spec in raw.items()}


def _workflow(file: Traversable, name: str, spec: object) -> Workflow:
    if not isinstance(spec, dict):
        raise BadInput(f"{file}: [{name}] must be a table")
    try:
        stages = tuple(Role(s) for s in spec["stages"])
        send_back = {Role(k): Role(v) for k, v in spec.get("send_back", {}).items()}
        max_loops = int(spec.get("max_loops", DEFAULT_MAX_LOOPS))
    except (KeyError, ValueError, TypeError) as exc:
        raise BadInput(f"{file}: [{name}] is not a valid workflow ({exc})") from None
    if not stages:
        raise BadInput(f"{file}: [{name}] has no stages")
    for from_role, to_role in send_back.items():
        if from_role not in stages or to_role not in stages:
            raise BadInput(f"{file}: [{name}] sends back between roles that are not its stages")
    return Workflow(name, stages, send_back, max_loops)


class SendBackLimit(Exception):
    """The work was sent back ``max_loops`` times already."""


def next_handoff(workflow: Workflow, item: WorkItem, *, send_back: bool = False) -> Handoff | None:
    """The handoff after ``item``'s stage completes: the next stage, a send-back, or None at the end."""
    role = item.role
    if send_back:
        target = workflow.send_back.get(role)
        if target is None:
            raise BadInput(f"workflow {workflow.name} does not let {role.value} send work back")
        if item.loops >= workflow.max_loops:
            raise SendBackLimit(f"sent back {item.loops} times already (max_loops {workflow.max_loops})")
        return Handoff(target, target.value, item.loops + 1)
    position = workflow.stages.index(role) if role in workflow.stages else len(workflow.stages)
    if position + 1 >= len(workflow.stages):
        return None
    following = workflow.stages[position + 1]
    return Handoff(following, following.value, item.loops)


def workflow_start(settings: Settings, name: str, role: Role | str | None) -> tuple[Role, str]:
    """The role and stage a new item of workflow ``name`` starts at."""
    file, workflows = read_workflows(settings.workflows_file)
    workflow = workflows.get(name)
    if workflow is None:
        known = ", ".join(sorted(workflows)) or "none"
        raise BadInput(f"unknown workflow {name!r} ({file} defines: {known})")
    start = workflow.first if role is None else validation.enum_value(Role, role, "role")
    if start not in workflow.stages:
        raise BadInput(f"workflow {name} has no stage for role {start.value}")
    return start, start.value

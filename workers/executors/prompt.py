"""Prompt templates for the claude executor: ``str.format`` over a fixed set of safe fields.

    "Review {type} {id} for the {role}: {description}\\n\\nEarlier stages: {artifacts}"

Only the template is ever formatted; the item's text is a value substituted into it, so a
description full of ``{braces}`` is passed through as it is. Fields are plain names from
``FIELDS`` (no attribute or index lookups, no format spec or conversion); ``payload`` and
``artifacts`` are JSON text. A bad template is refused with ``BadInput`` when the handler is
made. Write ``{{`` and ``}}`` for literal braces.
"""

from __future__ import annotations

import json
import string
from typing import Any

from swarm.errors import BadInput
from swarm.models import WorkItem

FIELDS = ("id", "type", "role", "description", "payload", "artifacts")  # what a template may use


def check_template(prompt: object) -> str:
    """The template, once every field in it is known to be safe to fill."""
    if not isinstance(prompt, str):
        raise BadInput(f"the prompt must be a template string, got {type(prompt).__name__}")
    if not prompt.strip():
        raise BadInput("the prompt must not be empty")
    try:
        parts = list(string.Formatter().parse(prompt))
    except ValueError as exc:  # e.g. a lone "{" or "}"
        raise BadInput(
            f"the prompt is not a valid template ({exc}); write {{{{ and }}}} for braces"
        ) from None
    for _, field, spec, conversion in parts:
        if field is None:
            continue
        if field not in FIELDS:
            raise BadInput(f"unknown prompt field {{{field}}}: use one of {', '.join(FIELDS)}")
        if spec or conversion:
            raise BadInput(f"prompt field {{{field}}} takes no format spec or conversion")
    return prompt


def render(template: str, item: WorkItem) -> str:
    """The prompt for ``item``: the checked template with its fields filled."""
    fields: dict[str, Any] = {
        "id": item.id,
        "type": item.type,
        "role": item.role.value,
        "description": item.description,
        "payload": json.dumps(item.payload, ensure_ascii=False, sort_keys=True),
        "artifacts": json.dumps(item.artifacts, ensure_ascii=False, sort_keys=True),
    }
    return template.format_map(fields)

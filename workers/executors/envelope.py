"""The JSON result envelope that ``claude -p --output-format json`` prints on stdout.

    {"type": "result", "subtype": "success", "is_error": false, "result": "...",
     "total_cost_usd": 0.0123, "num_turns": 3, "session_id": "...", "duration_ms": 4567}

Error envelopes (``subtype`` ``error_max_turns`` or ``error_during_execution``) carry no
``result``; a run succeeded only when ``subtype`` is ``success`` and ``is_error`` is false.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

SUCCESS = "success"  # the subtype of a run that finished its task


class MalformedEnvelope(ValueError):
    """Stdout was not a result envelope (not JSON, or a required field missing or wrong)."""


class Envelope(BaseModel):
    """The fields of the envelope the executor uses; any others are ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    type: Literal["result"]
    subtype: str
    is_error: bool
    result: str | None = None
    # Older CLIs named the total ``cost_usd``.
    total_cost_usd: float = Field(
        ge=0, allow_inf_nan=False, validation_alias=AliasChoices("total_cost_usd", "cost_usd")
    )
    num_turns: int = Field(ge=0)
    session_id: str
    duration_ms: int | None = Field(default=None, ge=0)

    @property
    def succeeded(self) -> bool:
        return self.subtype == SUCCESS and not self.is_error


def parse_envelope(stdout: str) -> Envelope:
    """The envelope in ``stdout``: the whole text, or else its last non-empty line."""
    text = stdout.strip()
    if not text:
        raise MalformedEnvelope("empty output")
    candidates = [text]
    last_line = text.splitlines()[-1].strip()
    if last_line != text:
        candidates.append(last_line)
    problem = ""
    for candidate in candidates:
        try:
            return Envelope.model_validate_json(candidate)
        except ValidationError as exc:
            problem = problem or "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'output'}: {e['msg']}" for e in exc.errors()[:3]
            )
    raise MalformedEnvelope(problem)

"""Durations as people write them: ``500ms``, ``20s``, ``5m``, ``4h``, ``2d``, ``2w`` or plain seconds."""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import BeforeValidator

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0, "w": 604_800.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")


def parse_duration(value: object) -> float:
    """Seconds in ``value``: a number of seconds, or a number with one unit (ms, s, m, h, d, w)."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _PATTERN.match(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    else:
        raise ValueError(f"not a duration: {value!r} (use e.g. 500ms, 20s, 5m, 4h, 2d, 2w)")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"a duration must be positive: {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """The largest whole unit that fits, e.g. ``2w``, ``20s``, ``1.5h``."""
    for unit, size in (("w", 604_800.0), ("d", 86_400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        if seconds >= size:
            count = seconds / size
            return f"{count:g}{unit}" if count == round(count, 2) else f"{round(count, 2):g}{unit}"
    return f"{seconds * 1000:g}ms"


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""A settings field in seconds that also accepts ``20s``, ``2w`` and the like."""

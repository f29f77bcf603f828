"""Finding the files of ``config/`` (workflows, the beat schedule) from any working directory."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from swarm.errors import BadInput

PROJECT_ROOT = Path(__file__).resolve().parent.parent  # a source checkout (or editable install)


def locate(path: str | Path) -> Path:
    """A relative path is looked up in the current directory, then in the project's checkout,
    so that ``config/workflows.toml`` is found wherever a worker or beat is started from."""
    file = Path(path)
    if file.is_file() or file.is_absolute():
        return file
    return PROJECT_ROOT / file


def read_toml(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """The located file and its tables; a missing file reads as empty."""
    file = locate(path)
    if not file.is_file():
        return file, {}
    try:
        return file, tomllib.loads(file.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"{file}: {exc}") from None

"""The TOML files the swarm ships defaults for (workflows, the beat schedule), and a user's own.

Each default lives in the package that reads it (package data, read with ``importlib.resources``),
so an installed wheel finds it from any working directory. A user overrides it with a file of
the same name in ``./config/``, or names a file explicitly in a setting; a file named explicitly
must exist.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from swarm.errors import BadInput

OVERRIDE_DIR = "config"  # ./config/<name> in the working directory overrides the packaged default


@dataclass(frozen=True)
class PackagedFile:
    """A file whose default ships in ``package``, overridable by ``./config/<name>`` or ``setting``."""

    package: str
    name: str
    setting: str  # the Settings field that names an explicit file instead

    @property
    def default(self) -> Traversable:
        return resources.files(self.package).joinpath(self.name)

    @property
    def env_var(self) -> str:
        return f"SWARM_{self.setting.upper()}"


def locate(path: str | Path | None, packaged: PackagedFile) -> Traversable:
    """The file to read: ``path`` when given (it must exist), else ``./config/<name>`` when the
    working directory has one, else the packaged default. Relative paths are from the cwd."""
    if path:
        file = Path(path).expanduser()
        if not file.is_file():
            raise BadInput(
                f"{packaged.setting} ({packaged.env_var}) names {file}, which is not a file "
                f"(unset it to use ./{OVERRIDE_DIR}/{packaged.name} or the packaged default)"
            )
        return file
    own = Path(OVERRIDE_DIR, packaged.name)
    if own.is_file():
        return own
    return packaged.default


def read_toml(path: str | Path | None, packaged: PackagedFile) -> tuple[Traversable, dict[str, Any]]:
    """The located file (``locate``) and its tables."""
    file = locate(path, packaged)
    try:
        return file, tomllib.loads(file.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"{file}: {exc}") from None
    except OSError as exc:
        raise BadInput(f"{file}: {exc.strerror or exc}") from None

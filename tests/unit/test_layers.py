"""The packages layer (ceremonies > workers > swarm core, the CLI on top) with no import cycle.

pyproject.toml's import-linter contracts (``make lint``) keep the layers; these tests check what
the layers are for: any module imports on its own, and ``import swarm`` loads only the core.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def _python(*args: str) -> str:
    """Runs ``python ARGS`` in a fresh interpreter; its standard output (it must exit 0)."""
    done = subprocess.run([sys.executable, *args], check=False, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_every_module_imports_on_its_own_in_a_fresh_interpreter() -> None:
    report = json.loads(_python(str(HERE / "import_each_module.py")))
    assert report["failures"] == {}
    assert report["checked"] > 90  # every module was found: swarm, workers and ceremonies


def test_the_handler_decorator_imports_first() -> None:
    """It once failed: workers.handlers -> swarm -> workers.handlers, partially initialised."""
    assert _python("-c", "from workers.handlers import handler; print(handler.__name__)").strip() == "handler"


def test_import_swarm_loads_only_the_core_and_resolves_every_public_name_on_use() -> None:
    out = _python(
        "-c",
        "import sys, swarm\n"
        "print(sorted(m for m in sys.modules if m.partition('.')[0] in ('workers', 'ceremonies')))\n"
        "print(all(getattr(swarm, name) is not None for name in swarm.__all__))\n"
        "print(swarm.handler.__module__, swarm.HandlerContext.__module__, swarm.Swarm.__module__)\n",
    )
    assert out.splitlines() == ["[]", "True", "workers.handlers workers.context swarm.facade"]


def test_an_unknown_public_name_is_an_attribute_error() -> None:
    import swarm

    with pytest.raises(AttributeError, match="no_such_name"):
        getattr(swarm, "no_such_name")  # noqa: B009


def test_the_worker_app_registers_the_leader_tasks_when_celery_imports_its_modules() -> None:
    """workers.app names ceremonies.worker_tasks in ``imports``: a worker or beat that starts
    imports it (as ``loader.import_default_modules``), and the ceremony tasks are registered."""
    out = _python(
        "-c",
        "import sys\n"
        "from workers.app import app\n"
        "print('ceremonies' in sys.modules)\n"
        "app.loader.import_default_modules()\n"
        "print(sorted(name for name in app.tasks if name.startswith('swarm.')))\n",
    )
    assert out.splitlines() == [
        "False",
        "['swarm.ceremony', 'swarm.execute', 'swarm.improve', 'swarm.reap']",
    ]

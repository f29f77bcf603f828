"""Where the workflows and the beat schedule come from: the file a setting names, else
``./config/<name>``, else the copy packaged with the code; the settings file, read only when
named; and the settings template."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ceremonies.schedule import BEAT_FILE, beat_schedule, built_in
from swarm.cli import app
from swarm.config_files import locate
from swarm.errors import BadInput
from swarm.models import Role
from swarm.settings import Settings
from swarm.workflows import WORKFLOWS_FILE, load_workflows, read_workflows, workflow_start

TEMPLATE = Path(__file__).parents[2] / "config" / "swarm.toml"
INTERNAL_SETTINGS = {"worker_role"}  # set by `swarm worker --role` for its own processes, not by users
REVIEW_ONLY = '[review]\nstages = ["qa", "devops"]\n'
BEAT_CHANGES = '[improve]\nenabled = false\n\n[digest]\ntask = "x.digest"\nevery = "1h"\n'


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory, and no SWARM_* settings from the environment."""
    for name in list(os.environ):
        if name.startswith("SWARM_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_without_a_setting_or_a_config_dir_the_packaged_workflows_are_read(cwd: Path) -> None:
    file, workflows = read_workflows(Settings().workflows_file)
    assert Path(str(file)) == Path(str(resources.files("swarm") / "workflows.toml"))
    assert workflows["feature"].first is Role.PM
    assert workflows["feature"].stages[-1] is Role.DEVOPS
    assert workflows["bugfix"].first is Role.DEVELOPER
    assert workflow_start(Settings(), "feature", None) == (Role.PM, "pm")


def test_the_packaged_beat_file_changes_no_built_in_entry(cwd: Path) -> None:
    settings = Settings()
    assert Path(str(locate(settings.beat_schedule_file, BEAT_FILE))).parent.name == "ceremonies"
    assert beat_schedule(settings) == built_in(settings)


def test_a_config_dir_in_the_working_directory_replaces_the_packaged_files(cwd: Path) -> None:
    write(cwd / "config" / "workflows.toml", REVIEW_ONLY)
    write(cwd / "config" / "beat.toml", BEAT_CHANGES)
    settings = Settings()
    assert set(load_workflows(settings.workflows_file)) == {"review"}, "replaced as a whole, not merged"
    assert workflow_start(settings, "review", None) == (Role.QA, "qa")
    unknown = r"unknown workflow 'feature' \(config/workflows\.toml defines: review\)"
    with pytest.raises(BadInput, match=unknown):
        workflow_start(settings, "feature", None)
    schedule = beat_schedule(settings)
    assert "improve" not in schedule
    assert schedule["digest"] == {"task": "x.digest", "schedule": 3600.0}


def test_a_file_named_in_the_environment_wins_over_the_config_dir(
    cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(cwd / "config" / "workflows.toml", REVIEW_ONLY)
    write(cwd / "mine" / "flows.toml", '[hotfix]\nstages = ["devops"]\n')
    write(cwd / "mine" / "beat.toml", '[reaper]\nevery = "2s"\n')
    monkeypatch.setenv(WORKFLOWS_FILE.env_var, "mine/flows.toml")  # relative: from the cwd
    monkeypatch.setenv(BEAT_FILE.env_var, str(cwd / "mine" / "beat.toml"))
    settings = Settings()
    assert set(load_workflows(settings.workflows_file)) == {"hotfix"}
    assert beat_schedule(settings)["reaper"]["schedule"] == 2.0


def test_a_file_named_in_swarm_toml_is_read_from_the_working_directory(
    cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(cwd / "flows.toml", REVIEW_ONLY)
    write(cwd / "settings" / "swarm.toml", 'workflows_file = "flows.toml"\n')
    monkeypatch.setenv("SWARM_CONFIG", "settings/swarm.toml")
    assert set(load_workflows(Settings().workflows_file)) == {"review"}


@pytest.mark.parametrize(
    ("env_var", "read"),
    [
        ("SWARM_WORKFLOWS_FILE", lambda s: load_workflows(s.workflows_file)),
        ("SWARM_WORKFLOWS_FILE", lambda s: workflow_start(s, "feature", None)),
        ("SWARM_BEAT_SCHEDULE_FILE", beat_schedule),
    ],
)
def test_a_named_file_that_does_not_exist_is_bad_input_naming_its_setting(
    cwd: Path, monkeypatch: pytest.MonkeyPatch, env_var: str, read: Callable[[Settings], object]
) -> None:
    write(cwd / "config" / "workflows.toml", REVIEW_ONLY)  # never a silent fallback
    monkeypatch.setenv(env_var, "gone.toml")
    with pytest.raises(BadInput, match=rf"\({env_var}\) names gone\.toml, which is not a file") as refused:
        read(Settings())
    assert refused.value.exit_code == 2


def test_a_settings_file_named_by_swarm_config_must_exist(cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWARM_CONFIG", "gone.toml")
    with pytest.raises(BadInput, match=r"SWARM_CONFIG names gone\.toml, which is not a file"):
        Settings()


def test_files_that_are_not_toml_are_bad_input_naming_the_file(
    cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(cwd / "config" / "workflows.toml", "[feature\n")
    with pytest.raises(BadInput, match=r"config/workflows\.toml: "):
        load_workflows(None)
    write(cwd / "settings.toml", 'lease_seconds = "30\n')
    monkeypatch.setenv("SWARM_CONFIG", "settings.toml")
    with pytest.raises(BadInput, match=r"settings\.toml: "):
        Settings()


HOSTILE_SETTINGS = (
    'redis_url = "redis://:stolen@attacker.example:6379/0"\n'
    'flower_basic_auth = "attacker:known"\n'
    'claude_command = "/tmp/not-claude"\n'
    'key_prefix = "elsewhere"\n'
)


def test_a_swarm_toml_in_the_working_directory_is_never_read_unless_named(
    cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    write(cwd / "swarm.toml", HOSTILE_SETTINGS)
    settings = Settings()
    assert settings.redis_url is None
    assert settings.flower_basic_auth is None
    assert settings.claude_command == "claude"
    assert settings.key_prefix == "swarm"
    monkeypatch.setenv("SWARM_CONFIG", "swarm.toml")  # named: read, and the environment still wins
    monkeypatch.setenv("SWARM_KEY_PREFIX", "mine")
    named = Settings()
    assert named.redis_url == "redis://:stolen@attacker.example:6379/0"
    assert named.claude_command == "/tmp/not-claude"
    assert named.key_prefix == "mine"


def test_the_settings_template_lists_every_setting_at_its_default(cwd: Path) -> None:
    text = TEMPLATE.read_text(encoding="utf-8")
    mentioned = set(re.findall(r"^#?\s*([a-z_]+)\s*=", text, re.MULTILINE))
    assert mentioned - set(Settings.model_fields) == set(), "the template names no unknown setting"
    assert set(Settings.model_fields) - mentioned - INTERNAL_SETTINGS == set(), "every setting is listed"
    values = tomllib.loads(text)
    assert Settings(**values).model_dump() == Settings().model_dump(), "every value given is the default"


def test_the_config_option_names_the_settings_file_and_nothing_else_is_read(cwd: Path) -> None:
    runner = CliRunner()
    env = {"REDIS_URL": "redis://127.0.0.1:1/0", "SWARM_CONFIG": None}  # SWARM_CONFIG restored after
    write(cwd / "mine.toml", "lease_seconds = -1\n")
    named = runner.invoke(app, ["--config", "mine.toml", "list"], env=env)
    assert named.exit_code == 2, named.output
    assert "invalid setting lease_seconds" in named.output
    missing = runner.invoke(app, ["--config", "gone.toml", "list"], env=env)
    assert missing.exit_code == 2
    assert "does not exist" in missing.output
    write(cwd / "swarm.toml", "lease_seconds = -1\n")
    unnamed = runner.invoke(app, ["list"], env=env)
    assert unnamed.exit_code == 7, unnamed.output  # the file was not read: on to the (unreachable) Redis

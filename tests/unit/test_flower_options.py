"""``swarm flower`` decides on the options Flower itself will run with (issue 12, item 11): every
spelling of an address beyond loopback is refused without auth, and no config file is read from
the working directory unless named."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import flower.command  # noqa: F401 - defines Flower's options on tornado's
import pytest
from tornado.options import options as tornado_options

from swarm.cli.flower import flower_argv, flower_options, is_loopback
from swarm.errors import BadInput
from swarm.settings import Settings

OPEN = "0.0.0.0"  # noqa: S104 - what is refused


@pytest.fixture(autouse=True)
def fresh_flower(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty working directory, no FLOWER_* or SWARM_* variables, and Flower's options (global
    tornado state) and the root logger's level as they were, after each test."""
    for name in list(os.environ):
        if name.startswith(("FLOWER_", "SWARM_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    saved = {name: option._value for name, option in tornado_options._options.items()}
    level = logging.getLogger().level
    yield tmp_path
    for name, value in saved.items():
        tornado_options._options[name]._value = value
    logging.getLogger().setLevel(level)


def _argv(
    extra: list[str], *, address: str | None = None, auth: str | None = None
) -> tuple[list[str], dict[str, str]]:
    return flower_argv(Settings(redis_url=None, flower_basic_auth=auth), None, address, extra)


@pytest.mark.parametrize(
    "extra",
    [
        [f"--address={OPEN}"],
        [f"-address={OPEN}"],
        [f"---address={OPEN}"],
        ["--address="],  # tornado binds every interface
        ["--address=::"],
        ["--address=192.0.2.10"],
        ["--address=127.0.0.1", f"-address={OPEN}"],  # the last one wins, as in Flower
    ],
)
def test_every_command_line_spelling_of_an_open_address_is_refused_without_auth(extra: list[str]) -> None:
    with pytest.raises(BadInput, match="with no auth") as refused:
        _argv(extra)
    assert refused.value.exit_code == 2


def test_an_address_option_without_its_value_is_refused_as_flower_would() -> None:
    with pytest.raises(BadInput, match="requires a value"):
        _argv(["--address", OPEN])


@pytest.mark.parametrize("variable", ["FLOWER_ADDRESS", "FLOWER_address"])
def test_flowers_own_environment_variable_counts_when_nothing_overrides_it(
    variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, OPEN)
    argv, _ = _argv([])
    assert f"--address={OPEN}" not in argv
    assert flower_options(argv[1:]).address == "127.0.0.1"  # the command line wins over the environment
    with pytest.raises(BadInput, match="every interface"):
        _argv(["--address="])


def test_the_swarm_address_option_is_checked_like_any_other() -> None:
    with pytest.raises(BadInput, match=f"listen on {OPEN} with no auth"):
        _argv([], address=OPEN)


@pytest.mark.parametrize(
    "extra", [[], ["-address=127.0.0.1"], ["--address=localhost"], ["--address=::1"], ["--address=127.0.0.2"]]
)
def test_loopback_addresses_run_without_auth_and_open_the_api_there(extra: list[str]) -> None:
    argv, env = _argv(extra)
    assert env == {"FLOWER_UNAUTHENTICATED_API": "true"}
    assert is_loopback(flower_options(argv[1:]).address)


def test_a_unix_socket_is_local_whatever_the_address() -> None:
    argv, env = _argv([f"--address={OPEN}", "--unix_socket=flower.sock"])
    assert env == {"FLOWER_UNAUTHENTICATED_API": "true"}
    assert flower_options(argv[1:]).unix_socket == "flower.sock"


@pytest.mark.parametrize("extra", [[f"-address={OPEN}"], [f"--address={OPEN}"], []])
def test_with_swarm_basic_auth_any_address_is_served_and_the_api_asks_for_it(extra: list[str]) -> None:
    argv, env = _argv(extra, auth="ops:s3cret")
    assert env == {}
    parsed = flower_options(argv[1:])
    assert parsed.basic_auth == ["ops:s3cret"]
    assert parsed.address == OPEN


def test_flowers_own_basic_auth_or_oauth_counts_as_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWER_BASIC_AUTH", "ops:s3cret")
    assert _argv([f"-address={OPEN}"])[1] == {}
    monkeypatch.delenv("FLOWER_BASIC_AUTH")
    assert _argv([f"--address={OPEN}", "--auth=.*@example\\.com"])[1] == {}


def test_a_flowerconfig_py_in_the_working_directory_is_never_run(fresh_flower: Path) -> None:
    (fresh_flower / "flowerconfig.py").write_text(
        f"open('ran', 'w').close()\naddress = '{OPEN}'\n", encoding="utf-8"
    )
    argv, env = _argv([])
    assert not (fresh_flower / "ran").exists()
    assert flower_options(argv[1:]).address == "127.0.0.1"
    assert env == {"FLOWER_UNAUTHENTICATED_API": "true"}


def test_a_named_config_file_is_read_and_its_settings_count(fresh_flower: Path) -> None:
    (fresh_flower / "mine.py").write_text("basic_auth = ['ops:s3cret']\n", encoding="utf-8")
    argv, env = _argv([f"--address={OPEN}", "--conf=mine.py"])
    assert env == {}
    assert flower_options(argv[1:]).basic_auth == ["ops:s3cret"]


def test_a_config_file_named_in_flowers_environment_is_read(
    fresh_flower: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (fresh_flower / "mine.py").write_text("basic_auth = ['ops:s3cret']\n", encoding="utf-8")
    monkeypatch.setenv("FLOWER_CONF", "mine.py")
    argv, env = _argv([f"--address={OPEN}"])
    assert not any(arg.startswith("--conf=") for arg in argv)
    assert env == {}


def test_a_config_file_that_fails_is_bad_input(fresh_flower: Path) -> None:
    (fresh_flower / "broken.py").write_text("address = \n", encoding="utf-8")
    with pytest.raises(BadInput, match="Flower refuses its options: SyntaxError"):
        _argv(["--conf=broken.py"])
    with pytest.raises(BadInput, match="Flower refuses its options"):
        _argv(["--conf=missing.py"])


@pytest.mark.parametrize("address", ["", "0.0.0.0", "::", "192.0.2.10", "no-such-host.invalid"])  # noqa: S104
def test_not_loopback(address: str) -> None:
    assert not is_loopback(address)


@pytest.mark.parametrize("address", ["127.0.0.1", "127.1", "::1", "localhost"])
def test_loopback(address: str) -> None:
    assert is_loopback(address)


def test_checking_the_options_leaves_this_processes_logging_as_it_was() -> None:
    root = logging.getLogger()
    root.setLevel(logging.WARNING)
    handlers = list(root.handlers)
    _argv([])  # tornado's parse callback would set the root logger to INFO (swarm up --flower)
    assert root.level == logging.WARNING
    assert root.handlers == handlers

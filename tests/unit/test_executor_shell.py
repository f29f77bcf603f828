"""The shell executor, driven directly with a real HandlerContext on a fakeredis ledger."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from swarm import BadInput, HandlerContext, PermanentError, TransientError, WorkItem
from swarm.ledger import Ledger
from tests.integration.polling import wait_until
from workers.executors import python, shell
from workers.executors.process import Tail
from workers.handlers import HandlerRegistry

AGENT = "agent-shell"
PY = sys.executable

# A tiny command that reads the item from stdin and prints some of its fields as JSON.
ECHO_FIELDS = (
    "import json, sys; item = json.load(sys.stdin); "
    "print(json.dumps({'id': item['id'], 'description': item['description'], 'n': item['payload']['n']}))"
)


def claimed(ledger: Ledger, **submit: Any) -> tuple[WorkItem, HandlerContext]:
    item = ledger.submit(submit.pop("type", "build"), submit.pop("description", "do it"), **submit)
    item = ledger.claim(item.id, AGENT)
    return item, HandlerContext(ledger, item, AGENT)


def run(fn: Any, ledger: Ledger, **submit: Any) -> tuple[Any, HandlerContext]:
    item, ctx = claimed(ledger, **submit)
    return fn(item, ctx), ctx


def test_the_item_arrives_as_json_on_stdin_and_json_stdout_is_the_result(fake_ledger: Ledger) -> None:
    nasty = "quotes ' \" $(rm -rf /) `x` {braces} ; | & \n newline, emoji 🐝"
    result, ctx = run(shell([PY, "-c", ECHO_FIELDS]), fake_ledger, description=nasty, payload={"n": 7})
    assert result == {"id": ctx.item.id, "description": nasty, "n": 7}
    record = ctx.artifacts["shell"]
    assert record["exit_code"] == 0
    assert record["argv"] == [PY, "-c", ECHO_FIELDS]
    assert json.loads(record["stdout"]) == result


def test_text_stdout_is_wrapped_and_stderr_is_kept(fake_ledger: Ledger) -> None:
    code = "import sys; print('built 3 targets'); print('a warning', file=sys.stderr)"
    result, ctx = run(shell([PY, "-c", code]), fake_ledger)
    assert result == {"stdout": "built 3 targets\n"}
    assert ctx.artifacts["shell"]["stderr"] == "a warning\n"


def test_nan_on_stdout_is_text_not_a_result_the_ledger_would_refuse(fake_ledger: Ledger) -> None:
    result, _ = run(shell([PY, "-c", "print('NaN')"]), fake_ledger)
    assert result == {"stdout": "NaN\n"}


def test_outputs_are_bounded(fake_ledger: Ledger) -> None:
    code = "import sys; sys.stdout.write('x' * 2_000_000); sys.stderr.write('e' * 100_000)"
    result, ctx = run(shell([PY, "-c", code]), fake_ledger)
    assert len(result["stdout"]) == 512 * 1024, "stdout over the limit keeps its tail, unparsed"
    assert len(ctx.artifacts["shell"]["stdout"]) == len(ctx.artifacts["shell"]["stderr"]) == 16 * 1024


@pytest.mark.parametrize("code", [1, 3, 75, 137])
def test_a_generic_or_temporary_failure_is_transient(fake_ledger: Ledger, code: int) -> None:
    script = f"import sys; print('boom on stderr', file=sys.stderr); sys.exit({code})"
    with pytest.raises(TransientError, match=rf"exit code {code}; stderr: boom on stderr"):
        run(shell([PY, "-c", script]), fake_ledger)


@pytest.mark.parametrize("code", [2, 64, 65, 78, 126, 127])
def test_usage_and_sysexits_failures_are_permanent(fake_ledger: Ledger, code: int) -> None:
    with pytest.raises(PermanentError, match=rf"exit code {code}"):
        run(shell([PY, "-c", f"raise SystemExit({code})"]), fake_ledger)


def test_killed_by_a_signal_is_transient(fake_ledger: Ledger) -> None:
    with pytest.raises(TransientError, match="killed by signal 9"):
        run(shell([PY, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"]), fake_ledger)


def test_a_missing_command_is_permanent(fake_ledger: Ledger, tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match="cannot start"):
        run(shell([str(tmp_path / "no-such-command")]), fake_ledger)


def test_env_is_added_and_cwd_is_used(fake_ledger: Ledger, tmp_path: Path) -> None:
    code = "import json, os; print(json.dumps([os.getcwd(), os.environ['EXTRA'], 'PATH' in os.environ]))"
    result, _ = run(shell([PY, "-c", code], env={"EXTRA": "yes"}, cwd=tmp_path), fake_ledger)
    assert result == [str(tmp_path), "yes", True]


def test_a_timeout_kills_the_whole_process_group(fake_ledger: Ledger, tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    # The command starts a grandchild in its group, records its pid, then both sleep.
    code = (
        "import subprocess, sys, time; "
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        f"open({str(pid_file)!r}, 'w').write(str(p.pid)); time.sleep(60)"
    )
    started = time.monotonic()
    with pytest.raises(TransientError, match=r"timed out after 1s"):
        run(shell([PY, "-c", code], timeout=1), fake_ledger)
    assert time.monotonic() - started < 10
    grandchild = int(pid_file.read_text())
    wait_until(lambda: not _alive(grandchild), "the grandchild to go with its group", 5)


def test_a_cancel_stops_the_command(fake_ledger: Ledger) -> None:
    item, ctx = claimed(fake_ledger)
    cancel = threading.Timer(0.3, ctx.mark_cancelled)  # what the LeaseKeeper does on a heartbeat
    cancel.start()
    started = time.monotonic()
    with pytest.raises(TransientError, match="stopped: the item was cancelled"):
        shell(["sleep", "30"])(item, ctx)
    assert time.monotonic() - started < 10
    cancel.join()


def test_a_lost_lease_stops_the_command_and_nothing_starts_after_it(fake_ledger: Ledger) -> None:
    item, ctx = claimed(fake_ledger)
    ctx.mark_lease_lost()
    with pytest.raises(TransientError, match="not started: the item's lease was lost"):
        shell(["sleep", "30"])(item, ctx)


def test_leftover_background_processes_are_killed_when_the_command_exits(
    fake_ledger: Ledger, tmp_path: Path
) -> None:
    pid_file = tmp_path / "bg.pid"
    code = (
        "import subprocess, sys; "
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], "
        "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
        f"open({str(pid_file)!r}, 'w').write(str(p.pid)); print('{{}}')"
    )
    result, _ = run(shell([PY, "-c", code]), fake_ledger)
    assert result == {}
    leftover = int(pid_file.read_text())
    wait_until(lambda: not _alive(leftover), "the leftover to be killed", 5)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ("make build", "not a string"),
        (b"make", "not a string"),
        ([], "non-empty list"),
        (["make", 3], "must be a string"),
        (["make", "a\0b"], "NUL"),
        ([""], "must not be empty"),
        (None, "non-empty list"),
    ],
)
def test_bad_argv_is_refused_when_the_handler_is_made(argv: Any, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        shell(argv)


@pytest.mark.parametrize(
    "options",
    [
        {"timeout": 0},
        {"timeout": -1},
        {"timeout": "5"},
        {"timeout": True},
        {"env": {"A": 1}},
        {"artifact": ""},
    ],
)
def test_bad_options_are_refused_when_the_handler_is_made(options: dict[str, Any]) -> None:
    with pytest.raises(BadInput):
        shell(["true"], **options)


def test_executors_plug_into_the_registry(fake_ledger: Ledger) -> None:
    registry = HandlerRegistry()

    def plain(item: WorkItem, ctx: HandlerContext) -> str:
        return item.id

    registry.handler("build", role="developer")(shell(["true"]))
    registry.register("lint", "qa", python(plain))
    assert python(plain) is plain
    found = registry.find("build", fake_ledger.submit("build").role)
    assert found is not None
    assert found.fn.__name__ == "shell[true]"


def test_tail_keeps_the_end_and_counts_everything() -> None:
    tail = Tail(4)
    for chunk in (b"ab", b"cdef", b"g"):
        tail.feed(chunk)
    assert (tail.text(), tail.total, tail.truncated) == ("defg", 7, True)
    assert tail.text(2) == "fg"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is dead for our purposes.
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text()

"""Factory-time checks of executor options: a bad option is refused with ``BadInput`` when the
handler is made (at import), never when an item runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from swarm.errors import BadInput


def check_argv(argv: object) -> list[str]:
    if isinstance(argv, str | bytes):
        raise BadInput("argv must be a list of arguments, not a string (no shell is ever used)")
    if not isinstance(argv, Sequence) or not argv:
        raise BadInput("argv must be a non-empty list of strings")
    if not all(isinstance(arg, str) for arg in argv):
        raise BadInput("every argv element must be a string")
    if any("\0" in arg for arg in argv) or not argv[0]:
        raise BadInput("argv elements must not contain NUL, and the command must not be empty")
    return list(argv)


def check_timeout(timeout: object) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout < float("inf"):
        raise BadInput(f"timeout must be a positive number of seconds, got {timeout!r}")
    return float(timeout)


def check_env(env: object) -> dict[str, str]:
    if env is None:
        return {}
    if not isinstance(env, Mapping) or not all(
        isinstance(k, str) and k and isinstance(v, str) for k, v in env.items()
    ):
        raise BadInput("env must map variable names to string values")
    return dict(env)


def check_artifact(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise BadInput("artifact must be a non-empty name")
    return name


def check_args(args: object) -> list[str]:
    if isinstance(args, str | bytes) or not isinstance(args, Sequence):
        raise BadInput("extra_args must be a list of arguments, not a string")
    if not all(isinstance(arg, str) and "\0" not in arg for arg in args):
        raise BadInput("every extra argument must be a string without NUL")
    return list(args)


def check_budget(usd: object) -> float | None:
    if usd is None:
        return None
    if isinstance(usd, bool) or not isinstance(usd, int | float) or not 0 <= usd < float("inf"):
        raise BadInput(f"budget_usd must be a non-negative number of dollars, got {usd!r}")
    return float(usd)


def check_max_attempts(attempts: object) -> int | None:
    if attempts is None:
        return None
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise BadInput(f"max_attempts must be a whole number of at least 1, got {attempts!r}")
    return attempts

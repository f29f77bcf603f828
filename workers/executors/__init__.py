"""Built-in executors: factories that make a handler out of a command.

    import swarm
    from workers.executors import claude, shell

    swarm.handler("build", role="developer")(shell(["make", "build"]))
    swarm.handler("review", role="qa")(claude("Review {type} {id}: {description}"))

- ``python``: a plain callable ``fn(item, ctx)`` is already a handler; ``python(fn)`` returns it
  unchanged, for symmetry.
- ``shell(argv, ...)``: a command as an argv list, the item as JSON on stdin, never a shell
  (``workers.executors.shell``).
- ``claude(prompt, ...)``: the Claude Code CLI on a prompt template, with a timeout, a per-item
  budget, a cap on runs and an optional git worktree per item (``workers.executors.claude``).

Each factory checks its options at once (``BadInput``), and the handler it returns raises
``TransientError`` or ``PermanentError`` as the handler contract says.
"""

from __future__ import annotations

from workers.executors.claude import claude
from workers.executors.shell import shell
from workers.handlers import HandlerFn


def python(fn: HandlerFn) -> HandlerFn:
    """The ``python`` executor: a callable ``fn(item, ctx)`` is a handler as it is."""
    return fn


__all__ = ["claude", "python", "shell"]

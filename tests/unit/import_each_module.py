"""Imports every module of swarm, workers and ceremonies as if it were the first one imported.

Before each import, every module of the three packages is dropped from ``sys.modules``, so the
module starts a fresh import chain; third-party modules stay loaded, which keeps this quick.
Prints ``{"checked": N, "failures": {module: error}}`` as JSON. Run by tests/unit/test_layers.py.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
import traceback

PACKAGES = ("swarm", "workers", "ceremonies")


def module_names() -> list[str]:
    """Every module and package of ours, except ``__main__`` (importing it runs the CLI)."""
    names: list[str] = []
    for package in PACKAGES:
        names.append(package)
        path = importlib.import_module(package).__path__
        found = pkgutil.walk_packages(path, package + ".")
        names += [m.name for m in found if m.name.rpartition(".")[2] != "__main__"]
    return names


def forget_ours() -> None:
    for name in [m for m in sys.modules if m.partition(".")[0] in PACKAGES]:
        del sys.modules[name]


def main() -> None:
    names = module_names()
    failures: dict[str, str] = {}
    for name in names:
        forget_ours()
        try:
            importlib.import_module(name)
        except Exception as exc:
            failures[name] = "".join(traceback.format_exception_only(exc)).strip()
    print(json.dumps({"checked": len(names), "failures": failures}))


if __name__ == "__main__":
    main()

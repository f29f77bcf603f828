"""Celery's thread pool, made resizable, so that ``pool_grow`` and ``pool_shrink`` work on it.

Celery's own ``threads`` pool refuses them (``BasePool.grow`` is not implemented), which would
leave the improvement cycle's ``scale_role`` to prefork workers only. Growing raises the
executor's thread cap; shrinking lowers it. A shrunk pool's surplus threads stay idle: the
worker's prefetch count (``worker_prefetch_multiplier`` x ``limit``, which Celery updates on
both commands) is what keeps fewer tasks in hand.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

from celery import concurrency
from celery.concurrency.thread import TaskPool as ThreadTaskPool

POOL_PATH = "workers.pool:TaskPool"
CUSTOM_POOL_ENV = "CELERY_CUSTOM_WORKER_POOL"  # celery's `--pool custom` loads the class named here


def celery_pool_option(pool: str) -> str:
    """The ``--pool`` value for celery: ``threads`` (or this pool's path) selects this pool
    through Celery's ``custom`` alias; any other pool is passed on as it is."""
    if pool not in ("threads", POOL_PATH):
        return pool
    os.environ[CUSTOM_POOL_ENV] = POOL_PATH
    concurrency.ALIASES["custom"] = POOL_PATH  # type: ignore[attr-defined]  # not in celery-types
    return "custom"


class TaskPool(ThreadTaskPool):
    """A thread pool whose size changes at run time."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self._resize = threading.Lock()

    @property
    def _executor(self) -> ThreadPoolExecutor:
        executor: ThreadPoolExecutor = self.executor  # type: ignore[attr-defined]  # not in celery-types
        return executor

    def grow(self, n: int = 1) -> None:
        with self._resize:
            self.limit += n
            self._executor._max_workers = self.limit

    def shrink(self, n: int = 1) -> None:
        with self._resize:
            if n >= self.limit:
                raise ValueError(f"cannot shrink a pool of {self.limit} by {n}: at least one slot stays")
            self.limit -= n
            self._executor._max_workers = self.limit

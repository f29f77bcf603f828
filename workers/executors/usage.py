"""What the claude executor has spent on one item, across its attempts and workers, in Redis.

One hash per item (``Keys.claude_usage``): ``runs`` counts the ``claude`` runs started
(HINCRBY, so two workers racing on one item cannot both take the last run) and ``cost_usd``
sums their ``total_cost_usd`` (HINCRBYFLOAT). The hash expires ``USAGE_TTL_S`` after its last
write, so finished items do not keep it forever.
"""

from __future__ import annotations

from typing import Any

import redis

from workers.context import HandlerContext
from workers.handlers import TransientError

USAGE_TTL_S = 30 * 24 * 3600  # an item's spend is remembered for 30 days after its last run


class Usage:
    """The spend of ``ctx.item``; a Redis failure is a ``TransientError`` (the run is retried)."""

    def __init__(self, ctx: HandlerContext) -> None:
        self._client: Any = ctx.ledger.client  # redis-py types replies as ``Awaitable | Any``
        self.key = ctx.ledger.keys.claude_usage(ctx.item.id)

    def spent_usd(self) -> float:
        return float(self._redis(lambda: self._client.hget(self.key, "cost_usd")) or 0.0)

    def runs(self) -> int:
        return int(self._redis(lambda: self._client.hget(self.key, "runs")) or 0)

    def start_run(self) -> int:
        """Counts one more run; returns how many runs the item has had, this one included."""
        return int(self._write(lambda pipe: pipe.hincrby(self.key, "runs", 1)))

    def add_cost(self, usd: float) -> float:
        """Adds a run's cost; returns the item's total."""
        return float(self._write(lambda pipe: pipe.hincrbyfloat(self.key, "cost_usd", usd)))

    def _write(self, command: Any) -> Any:
        def write() -> Any:
            pipe = self._client.pipeline(transaction=True)
            command(pipe)
            pipe.expire(self.key, USAGE_TTL_S)
            return pipe.execute()[0]

        return self._redis(write)

    @staticmethod
    def _redis(call: Any) -> Any:
        try:
            return call()
        except redis.RedisError as exc:
            raise TransientError(f"claude usage unavailable in Redis: {exc}") from None

"""The throttle's failure counters in Redis (`security.throttle_redis_url`).

Optional: the database keeps them by default. Redis takes their writes off the database
when an attack sends thousands of wrong passwords a minute. Every node must use the same
Redis. Each counter is a hash `idp:throttle:<key digest>` with `failures` and `last` (the
IdP clock's time of the last failure, epoch seconds); an increment is one Lua script, so
concurrent failures on several nodes are all counted. Redis forgets a counter by itself
after the quiet period (EXPIRE), as the database version ignores a stale one.

When configured, Redis is needed for every credential check: if it does not answer, those
requests fail (and /readyz says so) rather than go unthrottled.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache

PREFIX = "idp:throttle:"

# KEYS[1]: the counter; ARGV: now (epoch s), forget-after (s), lock-at (failures that
# lock the key until a success clears it; 0: never). Returns the new count.
_RECORD_FAILURE = """
local last = tonumber(redis.call('HGET', KEYS[1], 'last') or '0')
local before = tonumber(redis.call('HGET', KEYS[1], 'failures') or '0')
local lock_at = tonumber(ARGV[3])
local locked = lock_at > 0 and before >= lock_at
if not locked and tonumber(ARGV[1]) - last >= tonumber(ARGV[2]) then
    redis.call('HSET', KEYS[1], 'failures', 0)
end
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
redis.call('HSET', KEYS[1], 'last', ARGV[1])
if lock_at > 0 and failures >= lock_at then
    redis.call('PERSIST', KEYS[1])
else
    redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return failures
"""


class RedisCounters:
    """Read, count and clear failure counters by key digest."""

    def __init__(self, url: str) -> None:
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._record = self._redis.register_script(_RECORD_FAILURE)

    def read(self, digests: list[str]) -> dict[str, tuple[int, datetime]]:
        """{digest: (failures, time of the last failure)} of the counters that exist."""
        pipe = self._redis.pipeline(transaction=False)
        for digest in digests:
            pipe.hmget(PREFIX + digest, "failures", "last")
        found = {}
        for digest, (failures, last) in zip(digests, pipe.execute(), strict=True):
            if failures is not None and last is not None:
                moment = datetime.fromtimestamp(float(last), UTC).replace(tzinfo=None)
                found[digest] = (int(failures), moment)
        return found

    def record_failure(self, digests: list[str], now: datetime, forget: timedelta,
                       lock_at: list[int] | None = None) -> None:
        """Count a failure per digest; `lock_at[i]` failures keep digest i (no forgetting)."""
        epoch = now.replace(tzinfo=UTC).timestamp()
        for digest, lock in zip(digests, lock_at or [0] * len(digests), strict=True):
            self._record(keys=[PREFIX + digest],
                         args=[epoch, int(forget.total_seconds()), lock])

    def clear(self, digests: list[str]) -> None:
        if digests:
            self._redis.delete(*(PREFIX + d for d in digests))


    def ping(self) -> None:
        """Raise redis.RedisError unless the server answers (the readiness probe)."""
        self._redis.ping()


@lru_cache(maxsize=4)
def counters_for(url: str) -> RedisCounters:
    """One client (and connection pool) per URL and process."""
    return RedisCounters(url)

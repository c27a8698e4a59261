"""A token bucket per API key, in Redis, so every API process shares it."""

import logging
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from agentq.core.errors import RateLimited
from agentq.core.settings import settings

log = logging.getLogger("agentq.api.ratelimit")

# KEYS[1] bucket; ARGV rate/s, burst, now (s). Returns {allowed, seconds to wait}.
TOKEN_BUCKET = """
local rate, burst, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = math.min(burst, (tonumber(state[1]) or burst) + math.max(0, now - (tonumber(state[2]) or now)) * rate)
local allowed, wait = 0, 0
if tokens >= 1 then tokens = tokens - 1; allowed = 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, tostring(wait)}
"""


class Limiter:
    def __init__(self) -> None:
        self._script: aioredis.client.AsyncScript | None = None  # type: ignore[name-defined]

    async def check(self, owner: str) -> None:
        if not settings.rate_limit_per_s or not settings.redis_url:
            return
        if self._script is None:
            self._script = aioredis.Redis.from_url(settings.redis_url).register_script(TOKEN_BUCKET)
        try:
            allowed, wait = await self._script(
                keys=[f"agentq:rate:{owner}"],
                args=[settings.rate_limit_per_s, settings.rate_limit_burst, time.time()],
            )
        except RedisError as exc:  # fail open: a Redis hiccup must not take the API down
            log.warning("rate limiter unavailable: %s", exc)
            return
        if not allowed:
            raise RateLimited(
                f"Rate limit of {settings.rate_limit_per_s:g} requests/s per key exceeded; retry later.",
                retry_after_s=float(wait),
            )


limiter = Limiter()

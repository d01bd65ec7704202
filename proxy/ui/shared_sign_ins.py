"""Sign-in attempts counted in Redis, so every worker and replica on one Redis enforces the same limits.

Keys (under the link's prefix), sorted sets of attempt ids scored by the time the app's clock gave them:
  ui-sign-in:<address digest>    one address's attempts (the address is hashed: bounded key length)
  ui-sign-in:all                 everyone's attempts
One script prunes the attempts that left the window, refuses when a set already holds its limit, else adds
the attempt to both: a sliding window, exact across processes (Redis runs one script at a time) up to the
processes' clock skew. Because windows are scored by the app clock, a test that moves its clock needs no
sleep; the TTLs (one window and a minute after the last write, in Redis's time) only reclaim memory. Each
set holds at most its limit, and no more than `total` attempts land in any window, so the number of address
sets alive is bounded too.
"""

from __future__ import annotations

import hashlib
from typing import Any

from ..redis_link import Script

TTL_MARGIN_SECONDS = 60  # a set outlives its newest attempt's window by this much, for clock skew

TAKE = Script("""
local limits = {tonumber(ARGV[3]), tonumber(ARGV[4])}
for i = 1, 2 do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', ARGV[2])
  local n = redis.call('ZCARD', KEYS[i])
  if n >= limits[i] then
    local nth = redis.call('ZRANGE', KEYS[i], n - limits[i], n - limits[i], 'WITHSCORES')
    return {i, nth[2]}
  end
end
for i = 1, 2 do
  redis.call('ZADD', KEYS[i], ARGV[1], ARGV[5])
  redis.call('PEXPIRE', KEYS[i], ARGV[6])
end
return {0, tostring(redis.call('ZCARD', KEYS[1]))}
""")

DROP = Script("""
if ARGV[2] == 'forget' then redis.call('DEL', KEYS[1]) else redis.call('ZREM', KEYS[1], ARGV[1]) end
redis.call('ZREM', KEYS[2], ARGV[1])
return 0
""")


class SharedSignIns:
    def __init__(self, prefix: str, window: float, per_address: int, total: int) -> None:
        self.prefix = f"{prefix}ui-sign-in:"
        self._window, self._per_address, self._total = window, per_address, total
        self._ttl_ms = int((window + TTL_MARGIN_SECONDS) * 1000)

    def address_key(self, address: str) -> str:
        return self.prefix + hashlib.blake2b(address.encode(), digest_size=16).hexdigest()

    async def take(self, client: Any, address: str, now: float, member: str) -> tuple[float, int]:
        """(0, attempts from `address` in the window with this one) when admitted and counted, else
        (seconds until the limit-th most recent attempt leaves the window, 0)."""
        keys = [self.address_key(address), self.prefix + "all"]
        index, value = await TAKE(client, keys, [repr(now), repr(now - self._window), self._per_address,
                                                 self._total, member, self._ttl_ms])
        if int(index):
            return float(value) + self._window - now, 0
        return 0.0, int(value)

    async def forget(self, client: Any, address: str, member: str) -> None:
        """A sign-in succeeded: the address's attempts go, and this one leaves the total."""
        await DROP(client, [self.address_key(address), self.prefix + "all"], [member, "forget"])

    async def release(self, client: Any, address: str, member: str) -> None:
        """An attempt that could not be checked: it leaves both counts."""
        await DROP(client, [self.address_key(address), self.prefix + "all"], [member, "release"])

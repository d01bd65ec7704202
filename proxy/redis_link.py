"""`RedisLink`: the one Redis connection of a process, shared by routing, limits, the result cache and the UI's
sign-in limits.

Why one: one set of connection settings, one client (connection pool) per event loop — the SDK's blocking
calls run on a loop of their own beside the caller's — and one outage policy, so routing, limits and the
cache agree on whether Redis is there and an outage is logged once.

Outage policy: a failed call (no answer within `timeout`, refused, reset) marks the link down for
`RETRY_SECONDS`; while down, `client()` returns None and every user carries on without Redis (routing with
in-process numbers, limits and UI sign-ins counting per process, the cache bypassed), so no call waits on a dead Redis.
After that time the next caller gets the client for one trial call: its success brings the link back, its
failure keeps it down for another period. One WARNING when it goes down, one when it is back.

Keys: every key starts with `prefix` (`general_settings.redis_key_prefix`, default `rerank-proxy:`);
routing (`cool:`, `fail:`, `rpm:<deployment>:<minute>`, `tpm:<deployment>:<minute>`, `busy:`, `lat:`), limits
(`rpm:<counter>`, `parallel:`, `budget:`, `tpm:<counter>:<minute>`), the cache (`cache:`) and the UI's sign-in
limits (`ui-sign-in:`) add their own.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
import uuid
import weakref
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote, urlsplit

from .errors import ConfigurationError

try:
    from redis.exceptions import NoScriptError
except ImportError:  # the optional package is missing: RedisLink() says so
    class NoScriptError(Exception):  # type: ignore[no-redef]
        pass

log = logging.getLogger("proxy.redis")

RETRY_SECONDS = 2.0
"""How long the link stays down after a failed call before one call tries Redis again."""
TIMEOUT_SECONDS = 0.5
"""Deadline of every connect, send and read (the result cache sets a tighter one of its own)."""
DEFAULT_PREFIX = "rerank-proxy:"


def connection_url(url: str | None = None, host: str | None = None, port: int | None = None,
                   password: str | None = None) -> str | None:
    """A Redis URL from LiteLLM's settings: `url` as given, else `host`/`port`/`password` (None: none set)."""
    if url:
        return url
    if host:
        auth = f":{quote(password, safe='')}@" if password else ""
        return f"redis://{auth}{host}:{port or 6379}"
    return None


def redacted(url: str) -> str:
    """scheme://host:port/db of a Redis URL, never its password."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}{parts.path or ''}"


class Script:
    """A Lua script run by its SHA1 (one round trip), sent whole when this Redis has not seen it yet."""

    __slots__ = ("text", "sha")

    def __init__(self, text: str):
        self.text = text
        self.sha = hashlib.sha1(text.encode()).hexdigest()

    async def __call__(self, client: Any, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:  # first use on this Redis, or after its restart
            return await client.eval(self.text, len(keys), *keys, *args)


class RedisLink:
    """The Redis at `url`: one client per event loop, its up/down state, and the key `prefix`.

    `setting` names where `url` came from, for the error when the `redis` package is missing.
    """

    def __init__(self, url: str, *, prefix: str = DEFAULT_PREFIX, timeout: float = TIMEOUT_SECONDS,
                 retry_seconds: float = RETRY_SECONDS, setting: str = "router_settings.redis_url",
                 clock: Callable[[], float] = time.monotonic):
        try:
            import redis.asyncio as aioredis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff
            from redis.exceptions import RedisError
        except ImportError:
            raise ConfigurationError(f"{setting} needs the optional package 'redis': "
                                     "pip install 'rerank-proxy[redis]'") from None
        self.prefix = prefix
        self.where = redacted(url)
        self.name = f"rerank-proxy-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        """This link's CLIENT SETNAME on every connection it opens (see CLIENT LIST)."""
        self.timeout = timeout
        self.retry_seconds = retry_seconds
        self.errors: tuple[type[BaseException], ...] = (RedisError, OSError, asyncio.TimeoutError)
        """What a Redis call raises when Redis is away (or refuses the call)."""
        self.down = False
        self._clock = clock
        self._down_until = 0.0
        self._trying = False
        self._users: list[tuple[str, str]] = []
        self._on_back: list[Callable[[], None]] = []
        self._connect = lambda: aioredis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0),
            client_name=self.name)
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()
        self._last: tuple[asyncio.AbstractEventLoop | None, Any] = (None, None)

    def serve(self, name: str, meanwhile: str, on_back: Callable[[], None] | None = None) -> None:
        """A user of the link (`name`) and what it does while Redis is away (`meanwhile`), for the warnings;
        `on_back` runs when Redis answers again."""
        if (name, meanwhile) not in self._users:
            self._users.append((name, meanwhile))
        if on_back is not None:
            self._on_back.append(on_back)

    # -- per call ------------------------------------------------------------------------------------
    def client(self) -> Any:
        """This event loop's client, or None while the link is down (the caller goes on without Redis).
        After a call, report `ok()` or `failed(exc)`."""
        if self.down and not self._trial():
            return None
        loop = asyncio.get_running_loop()
        last_loop, last = self._last
        if loop is last_loop:
            return last
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = self._connect()
        self._last = (loop, client)
        return client

    def _trial(self) -> bool:
        """Whether this caller may try Redis while it is down: one caller once the period is over."""
        now = self._clock()
        if now < self._down_until:
            return False
        self._trying = True
        self._down_until = now + 2 * self.timeout  # the others wait for this trial (bounded if it never reports)
        return True

    def ok(self) -> None:
        """A call answered. Only a trial call brings the link back: a call sent before the outage that
        answers late does not."""
        if self.down and self._trying:
            self.down = self._trying = False
            log.warning("Redis at %s answers again; shared again: %s", self.where,
                        ", ".join(name for name, _ in self._users) or "nothing")
            for callback in self._on_back:
                callback()

    def failed(self, exc: BaseException) -> None:
        """A call failed with one of `errors`: down for `retry_seconds` (one warning per outage)."""
        self._down_until = self._clock() + self.retry_seconds
        self._trying = False
        if not self.down:
            self.down = True
            log.warning("Redis at %s is unreachable (%s); %s until it answers (tried again every %gs)",
                        self.where, type(exc).__name__, "; ".join(m for _, m in self._users) or "nothing uses it",
                        self.retry_seconds)

    async def aclose(self) -> None:
        """Close this event loop's client (other loops' clients end with their loop)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        client = self._clients.pop(loop, None)
        self._last = (None, None)
        if client is not None:
            try:
                await client.aclose()
            except self.errors:
                pass


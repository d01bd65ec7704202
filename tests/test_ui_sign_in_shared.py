"""The UI's sign-in limits shared by two servers on one Redis: failures on one count on the other, per address
and in total, exactly even when guesses race; with Redis unreachable or killed each server counts on its own
(sign-in neither opens nor closes), and sharing resumes when Redis is back."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import redis

from proxy.app import create_app
from proxy.redis_link import RedisLink
from proxy.settings import parse_config
from proxy.ui.shared_sign_ins import TTL_MARGIN_SECONDS
from proxy.ui.sign_in_limits import MEANWHILE, PER_ADDRESS, TOTAL, WINDOW_SECONDS
from tests.fakes.server import LiveServer, free_port
from tests.redis_scratch import REDIS_ENV, needs_redis, new_prefix, sync_redis
from tests.serving import MASTER_KEY, config_for, wait_until
from tests.test_router_redis import own_redis as own_redis  # a fixture: a redis-server to stop and start

START = datetime(2026, 12, 1, 12, tzinfo=UTC)


class Server:
    """A running server and its Redis link (each server is one process's worth of state: a link, counts)."""

    def __init__(self, config: dict, now: list[datetime]) -> None:
        self.app = create_app(parse_config(config, {}), clock=lambda: now[0])
        self.live = LiveServer(self.app, lifespan="on")

    @property
    def url(self) -> str:
        return self.live.url

    @property
    def link(self) -> RedisLink:
        return self.app.state.runtime.governance.link


@contextmanager
def two_servers(tmp_path: Path, redis_url: str, prefix: str, now: list[datetime]) -> Iterator[tuple[Server, Server]]:
    """Two servers on one Redis and key prefix, on one pinned clock."""
    with ExitStack() as stack:
        servers = [Server(config_for(None, f"sqlite:///{tmp_path / f'{name}.db'}",
                                     general_settings={"redis_key_prefix": prefix},
                                     router_settings={"redis_url": redis_url}), now) for name in "ab"]
        for server in servers:
            stack.enter_context(server.live)
        yield servers[0], servers[1]


def sign_in(server: Server, address: str, key: str = "sk-guess") -> httpx.Response:
    """A sign-in from `address` (loopback is a trusted proxy by default: X-Forwarded-For is the client)."""
    return httpx.post(server.url + "/ui/login", data={"master_key": key}, headers={"x-forwarded-for": address},
                      timeout=30)


def sign_in_keys(probe: redis.Redis, prefix: str) -> dict[str, int]:
    return {k.decode(): probe.zcard(k) for k in probe.scan_iter(match=prefix + "ui-sign-in:*")}


@pytest.mark.redis
@needs_redis
def test_failures_on_one_server_count_on_the_other_per_address_and_in_total(tmp_path) -> None:
    prefix, now = new_prefix(), [START]
    with sync_redis(prefix) as probe, two_servers(tmp_path, _redis_url(), prefix, now) as (a, b):
        for n in range(PER_ADDRESS):  # five on each server: neither alone would refuse
            assert sign_in((a, b)[n % 2], "203.0.113.1", f"sk-guess-{n}").status_code == 401
        refused = sign_in(b, "203.0.113.1", MASTER_KEY)  # the 11th, with the right key
        assert refused.status_code == 429 and "set-cookie" not in refused.headers
        assert int(refused.headers["retry-after"]) == WINDOW_SECONDS
        assert sign_in(a, "203.0.113.1", MASTER_KEY).status_code == 429
        assert sign_in(a, "203.0.113.2", MASTER_KEY).status_code == 303  # another address is not limited

        stored = sign_in_keys(probe, prefix)
        assert sorted(stored.values()) == [PER_ADDRESS, PER_ADDRESS]  # the address's set and the total
        assert prefix + "ui-sign-in:all" in stored
        for key in stored:
            assert 0 < probe.pttl(key) <= (WINDOW_SECONDS + TTL_MARGIN_SECONDS) * 1000
            dumped = b" ".join([key.encode(), *probe.zrange(key, 0, -1)])
            assert b"sk-" not in dumped and b"203.0.113" not in dumped  # neither a key nor the address

        now[0] += timedelta(seconds=WINDOW_SECONDS - 1)
        assert sign_in(b, "203.0.113.1", MASTER_KEY).status_code == 429
        now[0] += timedelta(seconds=1)  # the window passed on the app's clock: no sleeping for Redis TTLs
        assert sign_in(b, "203.0.113.1", MASTER_KEY).status_code == 303
        assert sign_in_keys(probe, prefix) == {}  # its failures are forgotten, the others left the window

        for n in range(TOTAL):  # a hundred guesses from ten addresses, half on each server
            assert sign_in((a, b)[n % 2], f"198.51.100.{n // PER_ADDRESS}").status_code == 401
        total_refused = sign_in(a, "192.0.2.1", MASTER_KEY)  # an address that never failed
        assert total_refused.status_code == 429 and int(total_refused.headers["retry-after"]) == WINDOW_SECONDS


@pytest.mark.redis
@needs_redis
def test_racing_guesses_from_one_address_on_two_servers_get_exactly_the_limit(tmp_path) -> None:
    prefix, now = new_prefix(), [START]
    with sync_redis(prefix), two_servers(tmp_path, _redis_url(), prefix, now) as (a, b), \
            ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(lambda n: sign_in((a, b)[n % 2], "203.0.113.9", f"sk-{n}").status_code,
                                 range(40)))
    # Each attempt counts before its key is compared, so exactly the limit get to guess. (A 503 is a look-up
    # the busy database did not answer in time: admitted, then released uncounted.)
    assert statuses.count(401) == PER_ADDRESS and set(statuses) - {401, 503} == {429}, statuses


def test_an_unreachable_redis_leaves_each_server_its_own_limit(tmp_path, caplog) -> None:
    now = [START]
    with caplog.at_level(logging.WARNING, logger="proxy.redis"), \
            two_servers(tmp_path, f"redis://127.0.0.1:{free_port()}/0", "p:", now) as (a, b):
        assert [sign_in(a, "203.0.113.1").status_code for _ in range(PER_ADDRESS + 1)] == [401] * 10 + [429]
        assert sign_in(a, "203.0.113.2", MASTER_KEY).status_code == 303  # not closed to everyone
        assert [sign_in(b, "203.0.113.1").status_code for _ in range(PER_ADDRESS + 1)] == [401] * 10 + [429]
    assert any(MEANWHILE in r.getMessage() for r in caplog.records if "is unreachable" in r.getMessage())


def test_a_killed_redis_falls_back_to_each_servers_counts_and_sharing_resumes(own_redis, tmp_path, caplog) -> None:
    url, stop, start = own_redis
    now, prefix = [START], "p:"
    probe = redis.Redis.from_url(url)
    with caplog.at_level(logging.WARNING, logger="proxy.redis"), two_servers(tmp_path, url, prefix, now) as (a, b):
        for server in (a, b, a, b, a, b, a, b):  # eight shared failures; each server admitted four itself
            assert sign_in(server, "203.0.113.1").status_code == 401
        stop()
        for server in (b, a):  # each goes on from the four it admitted: six more, not two, not none
            assert [sign_in(server, "203.0.113.1").status_code for _ in range(7)] == [401] * 6 + [429]
        assert sign_in(a, "203.0.113.2", MASTER_KEY).status_code == 303
        start()  # empty
        for server in (a, b):  # each link tries Redis again 2 s after its last failure
            tries = iter(range(1000))
            wait_until(lambda: sign_in(server, f"192.0.2.{next(tries)}").status_code == 401  # noqa: B023
                       and not server.link.down, timeout=20)  # noqa: B023
        for n in range(PER_ADDRESS):  # shared again
            assert sign_in((a, b)[n % 2], "203.0.113.3").status_code == 401
        assert sign_in(b, "203.0.113.3").status_code == 429
        assert PER_ADDRESS in sign_in_keys(probe, prefix).values()
    probe.close()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("is unreachable" in m and MEANWHILE in m for m in messages) == 2  # one per server
    assert sum("answers again" in m and "ui sign-in" in m for m in messages) == 2


def _redis_url() -> str:
    return os.environ[REDIS_ENV]

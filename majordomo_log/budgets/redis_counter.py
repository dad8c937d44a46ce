"""``RedisCounter``: the fleet counter (``budgets/fleet.py``) on a Redis server, so that
every process enforcing a budget sees the others' spend within one round trip.

Everything runs on the library's writer thread (``delivery/writer_thread.py``), with
redis-py's asyncio client:

* ``add`` is on the call's path and must not wait: the addition is queued and sent in
  the background, many to a round trip (``budgets/redis_adds.py``), and kept while
  Redis does not answer.
* ``read`` and ``claim`` wait for one round trip from the caller's thread; ``read``
  first waits for the adds this process queued before it (read your writes: a fleet
  whose processes read before each call then misses at most one call per process, the
  one in flight or the one just completed whose add is still on its way). Called on
  the writer thread itself they would deadlock: they answer "unknown" instead. For
  ``DOWN_FOR`` seconds after a failure they answer "unknown" at once, so that a call's
  path never waits on a server known to be down.

Nothing here raises into a caller once the counter is built: failures are counted
(``stats()``) and logged once per server and process. The URL's password is never
shown: the counter is described as ``scheme://host:port/db``.

After ``os.fork()`` the child starts empty (the parent sends what it had queued) and
opens connections of its own on its own writer thread; the parent's are left alone
(closing them could end a TLS session the parent still uses).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import threading
import time
import weakref
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from .._exceptions import ConfigError
from .._log import logger, warn_once
from ..delivery.writer_thread import host, writer_thread
from ..stores.urls import url_secrets
from .fleet import FleetCounter
from .redis_adds import BUFFER_LIMIT, AddQueue
from .redis_url import check_redis_url, describe_redis_url

if TYPE_CHECKING:
    from redis.asyncio import Redis

T = TypeVar("T")

# A period's key outlives it by a day: a call that started just before the turn still
# finds it, and `budgets status` can show the period that just ended.
EXPIRY_MARGIN = dt.timedelta(days=1)
DOWN_FOR = 0.5  # after a failure, reads and claims answer "unknown" without trying
CONNECT_TIMEOUT, SOCKET_TIMEOUT = 2.0, 5.0
PROBE_TIMEOUT, CLAIM_TIMEOUT, CLOSE_TIMEOUT = 2.0, 1.0, 2.0


class RedisCounter:
    """The fleet counter on the Redis server at ``url`` (``redis://``, ``rediss://`` or
    ``unix://``). A malformed URL is a ``ConfigError``; a server that does not answer
    is not (budgets then count locally): it is logged once and retried."""

    def __init__(self, url: str, *, buffer_limit: int = BUFFER_LIMIT) -> None:
        check_redis_url(url)
        _require_redis()
        self._url = url
        self._secrets = url_secrets(url)
        self.shown_url = describe_redis_url(url)
        self.buffer_limit = buffer_limit
        self.closed = False
        self._reset()
        _live.add(self)
        host(self)  # queued adds are sent at interpreter exit
        writer_thread().start(self._probe())

    def _reset(self) -> None:
        """This process's state: at construction and in a forked child."""
        self._lock = threading.Lock()
        self._adds = AddQueue(
            self.shown_url, self._connection, self._failed, self._answered, self._scrub,
            self.buffer_limit,
        )  # fmt: skip
        self._client: Redis | None = None
        self._client_pid = os.getpid()
        self._down_until = 0.0  # time.monotonic() until which reads do not try
        self._shut = False  # the shutdown has begun on the loop
        self._stats = dict.fromkeys(("reads", "read_failures", "claims", "claim_failures"), 0)

    def _after_fork(self) -> None:
        if self._client is not None:
            _inherited.append(self._client)  # never collected: never closed here
        self._reset()

    def __repr__(self) -> str:
        return f"<RedisCounter {self.shown_url}{' closed' if self.closed else ''}>"

    # -- the FleetCounter protocol ------------------------------------------------------

    def add(
        self,
        key: str,
        units: int,
        seed: int,
        expire_at: dt.datetime | None,
        on_total: Callable[[int], None],
    ) -> None:
        """Queue the addition and return at once (see ``FleetCounter.add``)."""
        if self.closed:
            self._adds.lose(1)
            warn_once(
                "fleet_counter_closed", self.shown_url,
                "majordomo-log: the budget counter at %s was closed: additions to it are "
                "dropped", self.shown_url,
            )  # fmt: skip
            return
        expire_ms = 0 if expire_at is None else int((expire_at + EXPIRY_MARGIN).timestamp() * 1000)
        if self._adds.put(key, units, seed, expire_ms, on_total):
            writer_thread().call_soon(self._start_sending)

    def read(self, key: str, timeout: float) -> int | None:
        """The key's total (0 when missing), with every add this process queued before
        it; None when Redis cannot tell in time."""
        self._count("reads")
        value = self._wait(self._get(key, self._adds.seq), timeout, "read")
        if value is None:
            self._count("read_failures")
        return value

    def claim(self, dedup_key: str, ttl: float) -> bool:
        """``SET NX PX``: True for the first claimant, and when Redis cannot tell."""
        self._count("claims")
        claimed = self._wait(self._set_if_missing(dedup_key, ttl), CLAIM_TIMEOUT, "claim")
        if claimed is None:
            self._count("claim_failures")
            return True
        return claimed

    def close(self) -> None:
        """Send what is queued (waiting at most ``CLOSE_TIMEOUT`` seconds, not at all while
        Redis is down), then close the connections. Idempotent."""
        self.close_at_exit(CLOSE_TIMEOUT)

    # -- beyond the protocol ------------------------------------------------------------

    def close_at_exit(self, timeout: float) -> None:
        """``close`` within ``timeout`` seconds: the writer thread's exit hook calls it."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
        _forget_shared(self)
        thread = writer_thread()
        if thread.in_thread:
            thread.start(self._shutdown(0.0))
            return
        try:
            thread.run(self._shutdown(timeout), timeout + CLOSE_TIMEOUT)
        except Exception as exc:
            logger.debug("majordomo-log: closing %r: %s", self, self._scrub(exc))

    def flush(self, timeout: float) -> bool:
        """Wait until every add queued so far is sent; False if some are still queued
        after ``timeout`` seconds (or when called on the writer thread)."""
        if writer_thread().in_thread:
            return False
        deadline = time.monotonic() + timeout
        while self._adds.draining:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.002)
        return True

    def stats(self) -> dict[str, int]:
        """Counts since the counter was built (or since the fork), and adds queued now:
        ``adds``; ``add_failures``, adds in a round trip that failed (kept and retried);
        ``adds_lost``, dropped (the buffer was full, the server refused one, or left
        unsent at close); ``reads``, ``read_failures``, ``claims``, ``claim_failures``;
        ``pending``."""
        with self._lock:
            return {**self._adds.stats(), **self._stats}

    # -- on the writer thread -------------------------------------------------------

    def _connection(self) -> Redis:
        """This process's client, made on first use (a forked child makes its own)."""
        if self._client is None or self._client_pid != os.getpid():
            import redis.asyncio
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            # one immediate retry: a pooled connection Redis closed (a restart) is replaced
            # at once; failures beyond that are this module's to retry, with a backoff
            self._client = redis.asyncio.from_url(
                self._url,
                socket_connect_timeout=CONNECT_TIMEOUT,
                socket_timeout=SOCKET_TIMEOUT,
                retry=Retry(NoBackoff(), 1),
            )
            self._client_pid = os.getpid()
        return self._client

    def _start_sending(self) -> None:
        if self._shut:  # an add that raced with close(): not sent on a new client
            self._adds.discard()
        else:
            self._adds.start()

    async def _probe(self) -> None:
        try:
            await asyncio.wait_for(self._connection().ping(), PROBE_TIMEOUT)
        except Exception as exc:
            self._failed(exc)

    async def _get(self, key: str, after: int) -> int:
        """The key's value once this process's adds up to ``after`` are answered."""
        await self._adds.sent(after)
        value = await self._connection().get(key)
        return 0 if value is None else int(value)

    async def _set_if_missing(self, key: str, ttl: float) -> bool:
        return bool(await self._connection().set(key, b"1", nx=True, px=max(1, int(ttl * 1000))))

    async def _shutdown(self, timeout: float) -> None:
        self._shut = True
        await self._adds.stop(timeout)
        if self._client is not None:
            client, self._client = self._client, None
            try:
                await client.aclose()
            except Exception as exc:
                logger.debug("majordomo-log: closing %r: %s", self, self._scrub(exc))

    # -- helpers ------------------------------------------------------------------------

    def _wait(self, coro: Coroutine[Any, Any, T], timeout: float, what: str) -> T | None:
        """Run ``coro`` on the writer thread and wait at most ``timeout`` seconds; None
        when it fails, times out, Redis was found down just now, or the caller is the
        writer thread itself."""
        thread = writer_thread()
        if thread.in_thread:
            coro.close()
            warn_once(
                "fleet_counter_in_writer", what,
                "majordomo-log: a budget counter %s was asked for on the writer thread, "
                "where waiting would deadlock: answered as if Redis were down", what,
            )  # fmt: skip
            return None
        if self.closed or time.monotonic() < self._down_until:
            coro.close()
            return None
        try:
            return thread.run(coro, timeout)
        except Exception as exc:
            self._failed(exc)
            return None

    def _answered(self) -> None:
        self._down_until = 0.0

    def _failed(self, exc: BaseException) -> None:
        self._down_until = time.monotonic() + DOWN_FOR
        warn_once(
            "fleet_counter_down", self.shown_url,
            "majordomo-log: the budget counter at %s does not answer (%s); budgets count "
            "this process's calls and the store's until it does", self.shown_url,
            self._scrub(exc),
        )  # fmt: skip

    def _count(self, name: str) -> None:
        with self._lock:
            self._stats[name] += 1

    def _scrub(self, exc: BaseException) -> str:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


def _require_redis() -> None:
    try:
        import redis.asyncio  # noqa: F401
    except ImportError:
        raise ConfigError(
            "budget_store= with a Redis URL needs redis-py: pip install 'majordomo-log[redis]'"
        ) from None


# Every counter of the process, reset in a forked child; the parent's clients they held.
_live: weakref.WeakSet[RedisCounter] = weakref.WeakSet()
_inherited: list[Any] = []
_shared: dict[str, RedisCounter] = {}
_shared_lock = threading.Lock()


def fleet_counter(url: str | None) -> FleetCounter | None:
    """The process's counter for ``budget_store=url`` (None: no fleet counter), one per
    URL, shared by every wrapper; a closed one is replaced."""
    if url is None:
        return None
    with _shared_lock:
        counter = _shared.get(url)
        if counter is None or counter.closed:
            counter = _shared[url] = RedisCounter(url)
        return counter


def _forget_shared(counter: RedisCounter) -> None:
    with _shared_lock:
        for url in [u for u, c in _shared.items() if c is counter]:
            del _shared[url]


def _after_fork_in_child() -> None:
    global _shared_lock
    _shared_lock = threading.Lock()  # another thread may have held it at the fork
    for counter in list(_live):
        counter._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

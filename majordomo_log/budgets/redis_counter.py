"""``RedisCounter``: the fleet counter (``budgets/fleet.py``) on a Redis server, so that
every process enforcing a budget sees the others' spend within one round trip.

Everything runs on the library's writer thread (``delivery/writer_thread.py``), with
redis-py's asyncio client:

* ``add`` is on the call's path and must not wait: it appends to a deque and wakes the
  loop once per batch (not per add). The loop sends everything queued in one pipeline,
  one Lua script per add (seed the key if it is missing, add, return the total), and
  hands each total to its ``on_total``.
* While Redis does not answer, the adds stay queued (at most ``buffer_limit``, the
  oldest dropped and counted) and are retried with a backoff of up to a second: a blip
  does not lose the fleet's spend, and a long outage costs bounded memory.
* ``read`` and ``claim`` wait for one round trip from the caller's thread. Called on
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
import hashlib
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from .._exceptions import ConfigError
from .._log import logger, warn_once
from ..delivery.writer_thread import host, writer_thread
from ..stores.urls import url_secrets
from .fleet import FleetCounter
from .redis_url import check_redis_url, describe_redis_url

if TYPE_CHECKING:
    from redis.asyncio import Redis

T = TypeVar("T")

# KEYS[1] the counter; ARGV: units to add, the seed, when the key expires (Unix ms, 0
# for never). INCRBY keeps the key's expiry.
ADD_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  if tonumber(ARGV[3]) > 0 then
    redis.call('SET', KEYS[1], ARGV[2], 'PXAT', ARGV[3])
  else
    redis.call('SET', KEYS[1], ARGV[2])
  end
end
return redis.call('INCRBY', KEYS[1], ARGV[1])
"""
ADD_SCRIPT_SHA = hashlib.sha1(ADD_SCRIPT.encode()).hexdigest()
BUFFER_LIMIT = 10_000  # adds kept while Redis does not answer
BATCH_SIZE = 500  # adds per pipeline
# A period's key outlives it by a day: a call that started just before the turn still
# finds it, and `budgets status` can show the period that just ended.
EXPIRY_MARGIN = dt.timedelta(days=1)
FIRST_BACKOFF, MAX_BACKOFF = 0.05, 1.0
DOWN_FOR = 0.5  # after a failure, reads and claims answer "unknown" without trying
CONNECT_TIMEOUT, SOCKET_TIMEOUT = 2.0, 5.0
PROBE_TIMEOUT, CLAIM_TIMEOUT, CLOSE_TIMEOUT = 2.0, 1.0, 2.0
STAT_NAMES = (
    "adds",  # adds accepted
    "add_failures",  # adds in a round trip that failed (kept and retried)
    "adds_lost",  # adds dropped: the buffer was full, the server refused, or left at close
    "reads",
    "read_failures",
    "claims",
    "claim_failures",
)


class PendingAdd(NamedTuple):
    key: str
    units: int
    seed: int
    expire_ms: int  # Unix time in ms; 0: the key never expires
    on_total: Callable[[int], None]


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
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._pending: deque[PendingAdd] = deque()
        self._draining = False  # a drain is scheduled or running: adds need not wake it
        self._drain_task: asyncio.Task[None] | None = None
        self._client: Redis | None = None
        self._client_pid = self._pid
        self._down_until = 0.0  # time.monotonic() until which reads do not try
        self._failing = False  # the last round trip for adds failed
        self._stats = dict.fromkeys(STAT_NAMES, 0)

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
        expire_ms = 0 if expire_at is None else int((expire_at + EXPIRY_MARGIN).timestamp() * 1000)
        item = PendingAdd(key, units, seed, expire_ms, on_total)
        with self._lock:
            if self.closed:
                self._stats["adds_lost"] += 1
                warn_once(
                    "fleet_counter_closed", self.shown_url,
                    "majordomo-log: the budget counter at %s was closed: additions to it "
                    "are dropped", self.shown_url,
                )  # fmt: skip
                return
            self._stats["adds"] += 1
            if len(self._pending) >= self.buffer_limit:
                self._pending.popleft()
                self._stats["adds_lost"] += 1
                self._warn_full()
            self._pending.append(item)
            if self._draining:
                return
            self._draining = True
        writer_thread().call_soon(self._start_drain)

    def read(self, key: str, timeout: float) -> int | None:
        """The key's total (0 when missing), or None when Redis cannot tell in time."""
        self._count("reads")
        value = self._wait(self._get(key), timeout, "read")
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
        while self._draining:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.002)
        return True

    def stats(self) -> dict[str, int]:
        """Counts since the counter was built (or since the fork), and adds queued now."""
        with self._lock:
            return {**self._stats, "pending": len(self._pending)}

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

    async def _probe(self) -> None:
        try:
            await asyncio.wait_for(self._connection().ping(), PROBE_TIMEOUT)
        except Exception as exc:
            self._failed(exc)

    def _start_drain(self) -> None:
        self._drain_task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        """Send queued adds, a batch per round trip, until none is left; while Redis does
        not answer, keep them and retry with a growing pause."""
        backoff = FIRST_BACKOFF
        while True:
            with self._lock:
                size = min(BATCH_SIZE, len(self._pending))
                batch = [self._pending.popleft() for _ in range(size)]
                if not batch:
                    self._draining = False
                    return
            try:
                results = await self._send(batch)
            except asyncio.CancelledError:
                self._requeue(batch)
                raise
            except Exception as exc:
                self._requeue(batch)
                with self._lock:
                    self._stats["add_failures"] += len(batch)
                self._failing = True
                self._failed(exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            backoff = FIRST_BACKOFF
            self._failing = False
            self._down_until = 0.0
            self._deliver(batch, results)

    async def _send(self, batch: list[PendingAdd]) -> list[Any]:
        """One pipeline of EVALSHA; the script is loaded (a second round trip) only when
        the server does not know it (a new or restarted server)."""
        client = self._connection()
        results = await self._evalsha(client, batch)
        missing = [i for i, result in enumerate(results) if _is_no_script(result)]
        if missing:
            await client.script_load(ADD_SCRIPT)
            again = await self._evalsha(client, [batch[i] for i in missing])
            for i, result in zip(missing, again, strict=True):
                results[i] = result
        return results

    async def _evalsha(self, client: Redis, batch: list[PendingAdd]) -> list[Any]:
        pipe = client.pipeline(transaction=False)
        for item in batch:
            pipe.evalsha(ADD_SCRIPT_SHA, 1, item.key, item.units, item.seed, item.expire_ms)
        return list(await pipe.execute(raise_on_error=False))

    def _deliver(self, batch: list[PendingAdd], results: list[Any]) -> None:
        for item, result in zip(batch, results, strict=True):
            if isinstance(result, Exception):  # e.g. the key holds something else
                self._count("adds_lost")
                warn_once(
                    "fleet_counter_refused", self.shown_url,
                    "majordomo-log: the budget counter at %s refused an addition: %s",
                    self.shown_url, self._scrub(result),
                )  # fmt: skip
                continue
            try:
                item.on_total(int(result))
            except Exception as exc:
                warn_once(
                    "fleet_counter_callback", self.shown_url,
                    "majordomo-log: handling a budget counter's total failed: %s", exc,
                )  # fmt: skip

    def _requeue(self, batch: list[PendingAdd]) -> None:
        """Put a batch that was not sent back in front (it is older than what is queued),
        dropping its oldest adds if the buffer has no room."""
        with self._lock:
            room = max(0, self.buffer_limit - len(self._pending))
            kept = batch[len(batch) - room :] if room < len(batch) else batch
            lost = len(batch) - len(kept)
            if lost:
                self._stats["adds_lost"] += lost
                self._warn_full()
            self._pending.extendleft(reversed(kept))

    async def _get(self, key: str) -> int:
        value = await self._connection().get(key)
        return 0 if value is None else int(value)

    async def _set_if_missing(self, key: str, ttl: float) -> bool:
        return bool(await self._connection().set(key, b"1", nx=True, px=max(1, int(ttl * 1000))))

    async def _shutdown(self, timeout: float) -> None:
        task = self._drain_task
        if task is not None and not task.done():
            # wait for the queue to empty, unless (or until) Redis is found down
            deadline = time.monotonic() + timeout
            while not task.done() and not self._failing and time.monotonic() < deadline:
                await asyncio.wait({task}, timeout=0.01)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        with self._lock:
            self._stats["adds_lost"] += len(self._pending)
            self._pending.clear()
            self._draining = False
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

    def _failed(self, exc: BaseException) -> None:
        self._down_until = time.monotonic() + DOWN_FOR
        warn_once(
            "fleet_counter_down", self.shown_url,
            "majordomo-log: the budget counter at %s does not answer (%s); budgets count "
            "this process's calls and the store's until it does", self.shown_url,
            self._scrub(exc),
        )  # fmt: skip

    def _warn_full(self) -> None:
        warn_once(
            "fleet_counter_full", self.shown_url,
            "majordomo-log: more than %d additions wait for the budget counter at %s: "
            "the oldest are dropped (the store still counts them)", self.buffer_limit,
            self.shown_url,
        )  # fmt: skip

    def _count(self, name: str) -> None:
        with self._lock:
            self._stats[name] += 1

    def _scrub(self, exc: BaseException) -> str:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


def _is_no_script(result: Any) -> bool:
    from redis.exceptions import NoScriptError

    return isinstance(result, NoScriptError)


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

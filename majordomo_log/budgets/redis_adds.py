"""The fleet counter's additions on their way to Redis (``budgets/redis_counter.py``).

``put`` is called on the call's path, from any thread: it appends to a deque, and asks
for the writer thread's loop to be woken only when no drain is under way, so a burst
of adds costs one wake-up. The drain, on that loop, sends everything queued in one
pipeline per ``BATCH_SIZE`` adds, one Lua script each (seed the key if it is missing,
add, return the total: atomic on the server, so concurrent processes never lose an
addition), and hands each total to its ``on_total``.

While Redis does not answer, the adds stay queued (at most ``buffer_limit``, the oldest
dropped and counted) and are retried with a pause growing to a second: a blip does not
lose the fleet's spend, and a long outage costs bounded memory. A batch whose answer
was lost with its connection is sent again, and may then be counted twice: the fleet
then stops early, never late.

Each add has a sequence number, so that a read can wait for the adds its own process
queued before it (``sent``): read your writes.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from .._log import warn_once

if TYPE_CHECKING:
    from redis.asyncio import Redis

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
FIRST_BACKOFF, MAX_BACKOFF = 0.05, 1.0


class PendingAdd(NamedTuple):
    key: str
    units: int
    seed: int
    expire_ms: int  # Unix time in ms; 0: the key never expires
    on_total: Callable[[int], None]
    seq: int  # the how-manieth add of this queue


class AddQueue:
    """Adds waiting for Redis, and the drain that sends them. ``name`` is what log lines
    show of the server; ``connection`` gives the client (on the loop); ``failed`` and
    ``answered`` tell the counter how the last round trip went."""

    def __init__(
        self,
        name: str,
        connection: Callable[[], Redis],
        failed: Callable[[BaseException], None],
        answered: Callable[[], None],
        scrub: Callable[[BaseException], str],
        buffer_limit: int = BUFFER_LIMIT,
    ) -> None:
        self.name = name
        self.connection = connection
        self.failed = failed
        self.answered = answered
        self.scrub = scrub
        self.buffer_limit = buffer_limit
        self.lock = threading.Lock()
        self.pending: deque[PendingAdd] = deque()
        self.draining = False  # a drain is scheduled or running: adds need not wake it
        self.task: asyncio.Task[None] | None = None
        self.seq = 0  # adds queued so far (under the lock)
        self.acked = 0  # the last of them Redis answered (on the loop)
        self.waiters: list[tuple[int, asyncio.Future[None]]] = []  # reads waiting for acked
        self.failing = False  # the last round trip failed
        self.counts = {"adds": 0, "add_failures": 0, "adds_lost": 0}

    def put(
        self, key: str, units: int, seed: int, expire_ms: int, on_total: Callable[[int], None]
    ) -> bool:
        """Queue an add; True when the loop must be woken (``start`` called there)."""
        with self.lock:
            self.seq += 1
            self.counts["adds"] += 1
            if len(self.pending) >= self.buffer_limit:
                self.pending.popleft()
                self.counts["adds_lost"] += 1
                self._warn_full()
            self.pending.append(PendingAdd(key, units, seed, expire_ms, on_total, self.seq))
            if self.draining:
                return False
            self.draining = True
            return True

    def lose(self, how_many: int) -> None:
        with self.lock:
            self.counts["adds_lost"] += how_many

    def stats(self) -> dict[str, int]:
        with self.lock:
            return {**self.counts, "pending": len(self.pending)}

    # -- on the loop ------------------------------------------------------------------

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._drain())

    async def sent(self, after: int) -> None:
        """Return once the adds up to ``after`` are answered (at once if none waits)."""
        if self.acked >= after or not self.draining:
            return
        waiter = asyncio.get_running_loop().create_future()
        self.waiters = [w for w in self.waiters if not w[1].done()]
        self.waiters.append((after, waiter))
        await waiter

    async def stop(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the queue to empty (not while Redis is
        down), then stop the drain; what is left is counted lost."""
        task = self.task
        if task is not None and not task.done():
            deadline = time.monotonic() + timeout
            while not task.done() and not self.failing and time.monotonic() < deadline:
                await asyncio.wait({task}, timeout=0.01)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self.discard()

    def discard(self) -> None:
        """Drop what is queued, counted lost (the counter is closed)."""
        with self.lock:
            self.counts["adds_lost"] += len(self.pending)
            self.pending.clear()
            self.draining = False

    async def _drain(self) -> None:
        """Send queued adds, a batch per round trip, until none is left; while Redis does
        not answer, keep them and retry with a growing pause."""
        backoff = FIRST_BACKOFF
        while True:
            with self.lock:
                size = min(BATCH_SIZE, len(self.pending))
                batch = [self.pending.popleft() for _ in range(size)]
                if not batch:
                    self.draining = False
                    return
            try:
                results = await self._send(batch)
            except asyncio.CancelledError:
                self._requeue(batch)
                raise
            except Exception as exc:
                self._requeue(batch)
                with self.lock:
                    self.counts["add_failures"] += len(batch)
                self.failing = True
                self.failed(exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            backoff = FIRST_BACKOFF
            self.failing = False
            self.answered()
            self._acknowledge(batch[-1].seq)
            self._deliver(batch, results)

    async def _send(self, batch: list[PendingAdd]) -> list[Any]:
        """One pipeline of EVALSHA; the script is loaded (a second round trip) only when
        the server does not know it (a new, restarted or flushed server)."""
        from redis.exceptions import NoScriptError

        client = self.connection()
        results = await _evalsha(client, batch)
        missing = [i for i, result in enumerate(results) if isinstance(result, NoScriptError)]
        if missing:
            await client.script_load(ADD_SCRIPT)
            again = await _evalsha(client, [batch[i] for i in missing])
            for i, result in zip(missing, again, strict=True):
                results[i] = result
        return results

    def _deliver(self, batch: list[PendingAdd], results: list[Any]) -> None:
        for item, result in zip(batch, results, strict=True):
            if isinstance(result, Exception):  # e.g. the key holds something else
                self.lose(1)
                warn_once(
                    "fleet_counter_refused", self.name,
                    "majordomo-log: the budget counter at %s refused an addition: %s",
                    self.name, self.scrub(result),
                )  # fmt: skip
                continue
            try:
                item.on_total(int(result))
            except Exception as exc:
                warn_once(
                    "fleet_counter_callback", self.name,
                    "majordomo-log: handling a budget counter's total failed: %s", exc,
                )  # fmt: skip

    def _requeue(self, batch: list[PendingAdd]) -> None:
        """Put a batch that was not sent back in front (it is older than what is queued),
        dropping its oldest adds if the buffer has no room."""
        with self.lock:
            room = max(0, self.buffer_limit - len(self.pending))
            kept = batch[len(batch) - room :] if room < len(batch) else batch
            lost = len(batch) - len(kept)
            if lost:
                self.counts["adds_lost"] += lost
                self._warn_full()
            self.pending.extendleft(reversed(kept))

    def _acknowledge(self, seq: int) -> None:
        """Adds up to ``seq`` are answered: wake the reads that were waiting for them."""
        self.acked = max(self.acked, seq)
        waiting = []
        for target, waiter in self.waiters:
            if waiter.done():
                continue
            if target <= self.acked:
                waiter.set_result(None)
            else:
                waiting.append((target, waiter))
        self.waiters = waiting

    def _warn_full(self) -> None:
        warn_once(
            "fleet_counter_full", self.name,
            "majordomo-log: more than %d additions wait for the budget counter at %s: "
            "the oldest are dropped (the store still counts them)", self.buffer_limit,
            self.name,
        )  # fmt: skip


async def _evalsha(client: Redis, batch: list[PendingAdd]) -> list[Any]:
    pipe = client.pipeline(transaction=False)
    for item in batch:
        pipe.evalsha(ADD_SCRIPT_SHA, 1, item.key, item.units, item.seed, item.expire_ms)
    return list(await pipe.execute(raise_on_error=False))

"""A TCP proxy for fault-injection tests: put it between a store and its server, then
refuse, reset, stall or blackhole the traffic on demand.

The proxy runs its own event loop in its own thread, so a test (whose code under test
has its own loop) flips faults with plain synchronous calls that take effect before
they return::

    with FaultProxy("127.0.0.1", 5432) as proxy:
        url = f"postgresql://postgres@127.0.0.1:{proxy.port}/test"
        ...
        proxy.down()      # refuse new connections and reset the open ones
        proxy.restore()   # accept and forward again

Faults:

- ``refuse()``: the listening socket is closed, so a new connection gets ECONNREFUSED
  (the port is bound again, same number, by ``accept()`` / ``restore()``).
- ``reset()``: every open connection is closed with an RST (SO_LINGER 0) on both sides.
- ``stall(seconds=None, new=True)``: bytes stop flowing in both directions; connections stay open
  and new ones are accepted but see nothing. ``resume()`` (or the timer) delivers what
  was held back, in order.
- ``drop()``: a blackhole: bytes are read and thrown away, new connections are accepted
  and never answered. Their streams are corrupt, so ``resume()`` resets them.
- ``reset_every(seconds)`` / ``stop_resets()``: reset all connections periodically.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, TypeVar

T = TypeVar("T")
Mode = Literal["forward", "stall", "drop"]
_CHUNK = 65536
_CALL_TIMEOUT = 10.0


@dataclass(eq=False)
class _Conn:
    client: socket.socket
    upstream: socket.socket | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    dropped: bool = False  # bytes were thrown away: the stream cannot be resumed
    closed: bool = False
    ended: int = 0  # directions that reached end of stream
    flowing: asyncio.Event = field(default_factory=asyncio.Event)  # cleared: stalled


@dataclass
class ProxyCounters:
    accepted: int = 0  # connections accepted from clients
    resets: int = 0  # connections closed with an RST by reset()/reset_every()/resume()
    refused_windows: int = 0  # times refuse() closed the listener
    bytes_forwarded: int = 0
    bytes_dropped: int = 0


class FaultProxy:
    """A loopback TCP proxy to ``target_host:target_port`` with faults on demand."""

    def __init__(self, target_host: str, target_port: int, *, host: str = "127.0.0.1") -> None:
        self.host = host
        self.target = (target_host, target_port)
        self.port = 0
        self.counters = ProxyCounters()
        self._mode: Mode = "forward"
        self._refusing = False
        self._conns: set[_Conn] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="faultproxy", daemon=True
        )
        self._listener: socket.socket | None = None
        self._accept_task: asyncio.Task[None] | None = None
        self._resume_timer: asyncio.TimerHandle | None = None
        self._reset_task: asyncio.Task[None] | None = None
        self._started = False

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> FaultProxy:
        if not self._started:
            self._started = True
            self._thread.start()
            self._call(self._astart())
        return self

    def close(self) -> None:
        if not self._started or self._loop.is_closed():
            return
        with contextlib.suppress(Exception):
            self._call(self._aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=_CALL_TIMEOUT)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def mode(self) -> str:
        return "refuse" if self._refusing else self._mode

    @property
    def open_connections(self) -> int:
        return len(self._conns)

    # -- faults (synchronous, from any thread but the proxy's) -------------------------

    def refuse(self) -> None:
        """New connections get ECONNREFUSED; open ones are left alone (see ``down``)."""
        self._call(self._arefuse())

    def accept(self) -> None:
        """Listen again (same port) after ``refuse()``."""
        self._call(self._aaccept())

    def reset(self) -> int:
        """RST every open connection; the number reset."""
        return self._call(self._areset())

    def stall(self, seconds: float | None = None, *, new: bool = True) -> None:
        """Hold every byte, both ways, until ``resume()`` or for ``seconds``. With
        ``new=False`` only the connections open now hang (a stuck backend, a dead NAT
        entry); new connections are forwarded."""
        self._call(self._aset_mode("stall" if new else "forward", seconds, stall_open=True))

    def drop(self) -> None:
        """Blackhole: read and discard everything, answer nothing."""
        self._call(self._aset_mode("drop", None))

    def resume(self) -> None:
        """Forward again: held bytes are delivered; blackholed connections are reset."""
        self._call(self._aset_mode("forward", None))

    def down(self) -> None:
        """The server is unreachable: refuse new connections and reset the open ones."""
        self.refuse()
        self.reset()

    def restore(self) -> None:
        """Undo every fault: stop periodic resets, forward, accept."""
        self.stop_resets()
        self.resume()
        self.accept()

    def reset_every(self, seconds: float) -> None:
        """Reset all open connections every ``seconds`` until ``stop_resets()``."""
        self._call(self._astart_resets(seconds))

    def stop_resets(self) -> None:
        self._call(self._astop_resets())

    def retarget(self, host: str, port: int) -> None:
        """Forward new connections to another address (e.g. a restarted server)."""
        self.target = (host, port)

    # -- the loop side ---------------------------------------------------------------

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        if threading.current_thread() is self._thread:
            raise RuntimeError("FaultProxy methods are for other threads than its own")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(_CALL_TIMEOUT)

    async def _astart(self) -> None:
        self._listen()

    def _listen(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(128)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        self._listener = sock
        self._accept_task = self._loop.create_task(self._accept_loop(sock))

    async def _accept_loop(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = await self._loop.sock_accept(listener)
            except OSError:
                return  # listener closed by refuse()
            client.setblocking(False)
            self.counters.accepted += 1
            conn = _Conn(client)
            if self._mode != "stall":
                conn.flowing.set()
            self._conns.add(conn)
            conn.tasks.append(self._loop.create_task(self._serve(conn)))

    async def _serve(self, conn: _Conn) -> None:
        if self._mode == "drop":
            conn.dropped = True
        else:
            upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            upstream.setblocking(False)
            conn.upstream = upstream
            try:
                await self._loop.sock_connect(upstream, self.target)
            except OSError:
                self._close(conn, rst=True)  # the server refused: so does the proxy
                return
        if conn.closed:
            return
        up = self._loop.create_task(self._pump(conn, conn.client, conn.upstream))
        conn.tasks.append(up)
        if conn.upstream is not None:
            down = self._loop.create_task(self._pump(conn, conn.upstream, conn.client))
            conn.tasks.append(down)

    async def _pump(self, conn: _Conn, src: socket.socket, dst: socket.socket | None) -> None:
        try:
            while True:
                data = await self._loop.sock_recv(src, _CHUNK)
                if not data:
                    if dst is not None:
                        with contextlib.suppress(OSError):
                            dst.shutdown(socket.SHUT_WR)
                    conn.ended += 1
                    if conn.ended >= (2 if conn.upstream is not None else 1):
                        self._close(conn, rst=False)
                    return
                await conn.flowing.wait()
                if self._mode == "drop" or conn.dropped or dst is None:
                    conn.dropped = True
                    self.counters.bytes_dropped += len(data)
                    continue
                await self._loop.sock_sendall(dst, data)
                self.counters.bytes_forwarded += len(data)
        except asyncio.CancelledError:
            raise
        except OSError:
            self._close(conn, rst=True)  # one side reset: the other side sees a reset too

    def _close(self, conn: _Conn, *, rst: bool) -> None:
        if conn.closed:
            return
        conn.closed = True
        self._conns.discard(conn)
        current = asyncio.current_task()
        for task in conn.tasks:
            if task is not current:
                task.cancel()
        for sock in (conn.client, conn.upstream):
            if sock is None:
                continue
            if rst:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            with contextlib.suppress(OSError):
                sock.close()

    async def _arefuse(self) -> None:
        if self._refusing:
            return
        self._refusing = True
        self.counters.refused_windows += 1
        if self._accept_task is not None:
            self._accept_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._accept_task
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    async def _aaccept(self) -> None:
        if not self._refusing:
            return
        # The port was ours a moment ago; something may briefly hold it: try a few times.
        for attempt in range(50):
            try:
                self._listen()
                break
            except OSError:
                if attempt == 49:
                    raise
                await asyncio.sleep(0.1)
        self._refusing = False

    async def _areset(self) -> int:
        conns = list(self._conns)
        for conn in conns:
            self._close(conn, rst=True)
        self.counters.resets += len(conns)
        return len(conns)

    async def _aset_mode(self, mode: Mode, seconds: float | None, stall_open: bool = False) -> None:
        if self._resume_timer is not None:
            self._resume_timer.cancel()
            self._resume_timer = None
        self._mode = mode
        if stall_open:
            for conn in self._conns:
                conn.flowing.clear()
            if seconds is not None:
                self._resume_timer = self._loop.call_later(
                    seconds, lambda: self._loop.create_task(self._aset_mode("forward", None))
                )
            return
        for conn in self._conns:
            conn.flowing.set()
        if mode == "forward":
            dropped = [c for c in self._conns if c.dropped]
            for conn in dropped:
                self._close(conn, rst=True)
            self.counters.resets += len(dropped)

    async def _astart_resets(self, seconds: float) -> None:
        await self._astop_resets()

        async def every() -> None:
            while True:
                await asyncio.sleep(seconds)
                await self._areset()

        self._reset_task = self._loop.create_task(every())

    async def _astop_resets(self) -> None:
        task, self._reset_task = self._reset_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _aclose(self) -> None:
        await self._astop_resets()
        await self._arefuse()
        await self._areset()
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

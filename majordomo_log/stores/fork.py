"""What a forked child does with the connections it inherited from its parent.

After ``os.fork()`` the child holds copies of the parent's sockets: the same TCP
connections, which the parent goes on using. Anything the child says on them (a
PostgreSQL Terminate, a MySQL COM_QUIT, a TLS close_notify, ``shutdown()``) ends
or corrupts the parent's session. The parent's event loop is copied too, and its
epoll instance is *shared* with the parent's: unregistering a socket from it in
the child (what ``transport.close()``/``abort()`` and every library's ``close()``
end up doing) removes the parent's registration, and the parent's loop stops
hearing from that connection.

So the child never closes an inherited pool, client or transport. It:

* keeps the inherited objects referenced for the rest of its life (``keep_forever``),
  so no finalizer (``__del__`` warning and closing) ever runs against the copied
  loop, and
* closes its own copy of each socket's file descriptor with ``close(2)``, found
  through the transports: that frees the descriptor in the child and sends
  nothing (the connection stays open while the parent holds its descriptor; no
  FIN, no goodbye), so when the parent later drops a connection the server sees
  it go instead of waiting for every child to exit.

Finding the transports relies on library internals; if they move, the
descriptors are leaked instead (a few per store per child), never used.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable
from typing import Any

from .._log import logger

_ABANDONED: list[object] = []


class ForkGuard:
    """Remembers the process that opened a store's connections."""

    __slots__ = ("pid",)

    def __init__(self) -> None:
        self.pid = os.getpid()

    def inherited(self) -> bool:
        """True in a forked child: the connections are the parent's."""
        return os.getpid() != self.pid

    def reset(self) -> None:
        self.pid = os.getpid()


def keep_forever(owner: object) -> None:
    """Keep an inherited object referenced until the process exits: its finalizer would
    run against the parent's copied event loop."""
    _ABANDONED.append(owner)


def abandon(owner: object, transports: Callable[[], Iterable[Any]]) -> int:
    """Keep ``owner`` (pool, client, stack) alive forever, unused, and close the
    child's descriptors of its sockets without a word on the wire; return how many."""
    keep_forever(owner)
    try:
        found = [t for t in transports() if t is not None]
    except Exception as exc:  # library internals changed: leak the descriptors
        logger.debug("inherited connections left open in the child: %r", exc)
        return 0
    closed = 0
    for transport in found:
        try:
            sock = transport.get_extra_info("socket")
        except Exception:
            continue
        sock = getattr(sock, "_sock", sock)  # asyncio hands out a TransportSocket wrapper
        if isinstance(sock, socket.socket) and sock.fileno() >= 0:
            sock.close()  # close(2) only: no shutdown(), nothing sent, the parent's fd lives
            closed += 1
    return closed

"""Connection racing (Happy Eyeballs) on asyncio: the asyncio half of :mod:`.net`.

Apart from :mod:`.net` so that blocking programs never import asyncio; the
sockets, the error mapping and the timing constant are :mod:`.net`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Sequence
from typing import TypeVar

from .._core.events import HttpsFailureKind
from .net import ATTEMPT_DELAY, ConnectFailed, _summary, interleave, tcp_socket

__all__ = ["async_connect_tcp", "settle"]

_T = TypeVar("_T")


def settle(future: asyncio.Future[_T], result: _T) -> None:
    """Give ``future`` its result unless it has one: for loop callbacks (a reader that
    fires again, a timer after the answer) that may come more than once or too late."""
    if not future.done():
        future.set_result(result)


async def async_connect_tcp(addresses: Sequence[str], port: int, deadline: float) -> socket.socket:
    """The asyncio form of :func:`connect_tcp`: staggered attempts, first one wins."""
    loop = asyncio.get_running_loop()
    ordered = interleave(addresses)
    errors: list[tuple[str, BaseException]] = []
    winner: socket.socket | None = None

    async def attempt(address: str) -> socket.socket:
        sock = tcp_socket(address)
        try:
            await loop.sock_connect(sock, (address, port))
        except BaseException:
            sock.close()
            raise
        return sock

    tasks: dict[asyncio.Task[socket.socket], str] = {}
    try:
        index = 0
        while winner is None:
            now = time.monotonic()
            if now >= deadline:
                raise ConnectFailed(
                    HttpsFailureKind.CONNECT_TIMEOUT, f"no connection to port {port} in time"
                )
            if index < len(ordered):
                task = asyncio.ensure_future(attempt(ordered[index]))
                tasks[task] = ordered[index]
                index += 1
            elif not tasks:
                raise _summary(errors)
            wait = deadline - now if index >= len(ordered) else min(ATTEMPT_DELAY, deadline - now)
            done, _ = await asyncio.wait(
                tasks, timeout=max(wait, 0), return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                address = tasks.pop(task)
                exc = task.exception()
                if exc is None and winner is None:
                    winner = task.result()
                elif exc is None:
                    task.result().close()
                else:
                    errors.append((address, exc))
        return winner
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                sock = await task
                sock.close()

"""A delaying proxy for UDP and TCP on loopback: a network with a round-trip time, without netem.

    python benchmarks/_delay_proxy.py CONFIG.json     # stdin: kept open by the parent

CONFIG: ``{"delay": 0.025, "udp": [[listen_ip, port, upstream_ip, port], ...],
"tcp": [[listen_ip, port, upstream_ip, port], ...], "max_seconds": 3600}``. Prints ``ready``
once every socket listens; exits when its stdin closes (the parent is gone) or after
``max_seconds``. Standard library only.

What it models, with ``delay`` = d one way (RTT = 2d):

* a UDP datagram reaches the other side d after it was sent, in both directions;
* a TCP segment likewise. The kernel completes the client's TCP handshake at once, so the
  connect's round trip is modelled by holding the client's data until 2d after the accept
  (when a real connect would have returned) and then d more: the first flight reaches the
  server exactly when it would on a real link. When the upstream refuses, the client gets a
  reset 2d after its connect, as a real RST would arrive;
* Nagle is off on both legs, so the proxy adds no wait of its own.

Every connection lives at most ``CONNECTION_SECONDS``; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import struct
import sys
import time
from typing import Any

CONNECTION_SECONDS = 60.0
CONNECT_TIMEOUT = 5.0
UDP_IDLE_SECONDS = 30.0
MAX_UDP_CLIENTS = 4096
CHUNK = 65536


class _Pipe:
    """One direction of a TCP connection: chunks delivered in order, each at its own time."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.queue: asyncio.Queue[tuple[float, bytes | None]] = asyncio.Queue()

    async def deliver(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            at, data = await self.queue.get()
            wait = at - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if data is None:
                with contextlib.suppress(OSError, RuntimeError):
                    if self.writer.can_write_eof():
                        self.writer.write_eof()
                return
            self.writer.write(data)
            with contextlib.suppress(OSError, ConnectionError):
                await self.writer.drain()


async def _pump(reader: asyncio.StreamReader, pipe: _Pipe, delay: float, hold: float) -> None:
    """Read from one side; queue each chunk for delivery ``delay`` later, not before ``hold``."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            data = await reader.read(CHUNK)
        except (OSError, ConnectionError):
            data = b""
        at = max(loop.time(), hold) + delay
        pipe.queue.put_nowait((at, data or None))
        if not data:
            return


def _nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _tcp_connection(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    upstream: tuple[str, int],
    delay: float,
) -> None:
    loop = asyncio.get_running_loop()
    accepted = loop.time()
    connected_at = accepted + 2 * delay  # when a real connect() would have returned
    _nodelay(writer)
    try:
        up_reader, up_writer = await asyncio.wait_for(
            asyncio.open_connection(*upstream), CONNECT_TIMEOUT
        )
    except (OSError, asyncio.TimeoutError):
        await asyncio.sleep(max(0.0, connected_at - loop.time()))
        _reset(writer)
        return
    _nodelay(up_writer)
    to_server, to_client = _Pipe(up_writer), _Pipe(writer)
    tasks = [
        asyncio.ensure_future(_pump(reader, to_server, delay, connected_at)),
        asyncio.ensure_future(_pump(up_reader, to_client, delay, 0.0)),
        asyncio.ensure_future(to_server.deliver()),
        asyncio.ensure_future(to_client.deliver()),
    ]
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), CONNECTION_SECONDS)
    except (asyncio.TimeoutError, OSError, ConnectionError):
        pass
    finally:
        for task in tasks:
            task.cancel()
        for w in (writer, up_writer):
            w.transport.abort()


class _UdpRelay(asyncio.DatagramProtocol):
    """Datagrams from each client go out through a socket of their own, so replies map back."""

    def __init__(self, upstream: tuple[str, int], delay: float) -> None:
        self.upstream = upstream
        self.delay = delay
        self.transport: asyncio.DatagramTransport | None = None
        self.clients: dict[Any, tuple[asyncio.DatagramTransport, float]] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a datagram transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(self.delay, lambda: asyncio.ensure_future(self._forward(data, addr)))

    async def _forward(self, data: bytes, addr: Any) -> None:
        loop = asyncio.get_running_loop()
        entry = self.clients.get(addr)
        if entry is None or entry[0].is_closing():
            if len(self.clients) >= MAX_UDP_CLIENTS:
                oldest = min(self.clients, key=lambda k: self.clients[k][1])
                self.clients.pop(oldest)[0].close()
            relay = self

            class Back(asyncio.DatagramProtocol):
                def datagram_received(self, reply: bytes, _from: Any) -> None:
                    loop.call_later(relay.delay, relay._reply, reply, addr)

            transport, _ = await loop.create_datagram_endpoint(Back, remote_addr=self.upstream)
            entry = (transport, loop.time())
            self.clients[addr] = entry
            loop.call_later(UDP_IDLE_SECONDS, self._expire, addr, transport)
        entry[0].sendto(data)

    def _reply(self, data: bytes, addr: Any) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(data, addr)

    def _expire(self, addr: Any, transport: asyncio.DatagramTransport) -> None:
        if self.clients.get(addr, (None,))[0] is transport:
            del self.clients[addr]
        transport.close()


async def _main(config: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    delay = float(config["delay"])
    if not 0 <= delay <= 1:
        raise SystemExit("delay must be 0-1 s")
    servers: list[Any] = []
    for lip, lport, uip, uport in config.get("tcp", []):

        async def handle(
            r: asyncio.StreamReader, w: asyncio.StreamWriter, up: tuple[str, int] = (uip, uport)
        ) -> None:
            await _tcp_connection(r, w, up, delay)

        servers.append(await asyncio.start_server(handle, lip, lport, backlog=256))
    for lip, lport, uip, uport in config.get("udp", []):
        transport, _ = await loop.create_datagram_endpoint(
            lambda up=(uip, uport): _UdpRelay(up, delay), local_addr=(lip, lport)
        )
        servers.append(transport)
    print("ready", flush=True)
    # Until the parent closes our stdin (or dies), bounded by max_seconds.
    stdin_closed = loop.run_in_executor(None, sys.stdin.buffer.read)
    deadline = time.monotonic() + float(config.get("max_seconds", 3600))
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(stdin_closed, max(0.0, deadline - time.monotonic()))
    for s in servers:
        s.close()
    sys.stdout.flush()
    os._exit(0)  # the stdin reader thread may still be blocked: no executor shutdown wait


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as fh:
        asyncio.run(_main(json.load(fh)))

"""The transports against misbehaving peers on loopback.

Each peer here is a small real server on 127.0.0.1 that breaks the protocol
in one way (garbage instead of HTTP, a head that never ends, a body cut short,
junk instead of a DNS reply). Whatever they do, the transports must return one
of our typed outcomes, in bounded time, and never raise.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator

import dns.message
import dns.resolver
import dns.rrset
import pytest
import trustme

from mxresolve import (
    AsyncDnspythonTransport,
    AsyncH11HttpsTransport,
    DnspythonTransport,
    DnsQuery,
    DnsStatus,
    H11HttpsTransport,
    HttpsFailure,
    HttpsFailureKind,
    HttpsGet,
    HttpsResponse,
    InvalidSettings,
    IpPolicy,
    RecordType,
    SrvRecord,
)
from mxresolve._io.dns_transport import parse_nameserver

LOOPBACK = IpPolicy.from_cidrs(["127.0.0.0/8"])


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _serve_tls(
    ca: trustme.CA, respond: Callable[[ssl.SSLSocket], None], name: str = "127.0.0.1"
) -> Iterator[int]:
    """A one-connection-at-a-time TLS server on 127.0.0.1 (certificate for ``name``)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(name).configure_cert(context)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            conn.settimeout(2)
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(65536)  # the request
                    respond(tls)
            except (OSError, ssl.SSLError):
                pass

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        listener.close()


def _fetch(
    ca: trustme.CA, port: int, *, max_body: int = 51200, path: str = "sync"
) -> HttpsResponse | HttpsFailure:
    """One well-known fetch from 127.0.0.1:``port`` by one of the transports' paths: ``sync``,
    ``async`` (TLS on the bare socket) or ``async-streams`` (the fallback for loops that
    cannot watch a file descriptor, e.g. Windows' proactor loop)."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    request = HttpsGet(
        url=f"https://127.0.0.1:{port}/.well-known/matrix/server",
        host="127.0.0.1",
        port=port,
        target="/.well-known/matrix/server",
        host_header=f"127.0.0.1:{port}",
        max_body_bytes=max_body,
    )
    if path == "sync":
        transport = H11HttpsTransport(
            DnspythonTransport(["127.0.0.1:9"]),
            ssl_context=context,
            ip_policy=LOOPBACK,
            max_header_bytes=4096,
        )
        return transport.fetch(request, timeout=3.0)
    from mxresolve._io import aio_https_transport

    async_transport = AsyncH11HttpsTransport(
        AsyncDnspythonTransport(["127.0.0.1:9"]),
        ssl_context=context,
        ip_policy=LOOPBACK,
        max_header_bytes=4096,
    )
    watchable = aio_https_transport._watchable
    if path == "async-streams":
        aio_https_transport._watchable = lambda loop: False  # type: ignore[assignment]
    try:
        return asyncio.run(async_transport.fetch(request, timeout=3.0))
    finally:
        aio_https_transport._watchable = watchable


PATHS = ("sync", "async", "async-streams")


CASES: dict[str, tuple[bytes, HttpsFailureKind | int]] = {
    "garbage instead of HTTP": (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", HttpsFailureKind.PROTOCOL_ERROR),
    "a head that never ends": (
        b"HTTP/1.1 200 OK\r\n" + b"X-Filler: " + b"a" * 8000,
        HttpsFailureKind.HEADERS_TOO_LARGE,
    ),
    "a body cut short": (
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{}",
        HttpsFailureKind.CONNECTION_RESET,
    ),
    "a Content-Length over the limit": (
        b"HTTP/1.1 200 OK\r\nContent-Length: 999999\r\n\r\n{}",
        HttpsFailureKind.BODY_TOO_LARGE,
    ),
    "a chunked body over the limit": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + (b"400\r\n" + b"x" * 1024 + b"\r\n") * 60
        + b"0\r\n\r\n",
        HttpsFailureKind.BODY_TOO_LARGE,
    ),
    "a bad chunk size": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        HttpsFailureKind.PROTOCOL_ERROR,
    ),
    "a well-formed 200": (
        b'HTTP/1.1 200 OK\r\nContent-Length: 24\r\n\r\n{"m.server": "a.org:1"}\n',
        200,
    ),
    "an interim 100 before the answer": (
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
        404,
    ),
}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_https_transport_maps_every_misbehaviour(ca: trustme.CA, case: str, path: str) -> None:
    payload, expected = CASES[case]

    def respond(tls: ssl.SSLSocket) -> None:
        tls.sendall(payload)

    with contextlib.contextmanager(_serve_tls)(ca, respond) as port:
        outcome = _fetch(ca, port, path=path)
    if isinstance(expected, int):
        assert isinstance(outcome, HttpsResponse), outcome
        assert outcome.status == expected
    else:
        assert isinstance(outcome, HttpsFailure), outcome
        assert outcome.kind is expected, outcome


@pytest.mark.parametrize("path", PATHS)
def test_https_transport_reports_an_untrusted_certificate(ca: trustme.CA, path: str) -> None:
    other = trustme.CA()

    def respond(tls: ssl.SSLSocket) -> None:
        tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")

    with contextlib.contextmanager(_serve_tls)(other, respond) as port:
        outcome = _fetch(ca, port, path=path)
    assert isinstance(outcome, HttpsFailure)
    assert outcome.kind is HttpsFailureKind.CERTIFICATE_INVALID


@pytest.mark.parametrize("path", PATHS)
def test_https_transport_reports_a_refused_connection(ca: trustme.CA, path: str) -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    outcome = _fetch(ca, port, path=path)  # nothing listens there any more
    assert isinstance(outcome, HttpsFailure)
    assert outcome.kind is HttpsFailureKind.CONNECTION_REFUSED


def test_https_transport_refuses_addresses_the_policy_refuses(ca: trustme.CA) -> None:
    context = ssl.create_default_context()
    transport = H11HttpsTransport(
        DnspythonTransport(["127.0.0.1:9"]), ssl_context=context, ip_policy=IpPolicy()
    )
    request = HttpsGet(
        url="https://127.0.0.1/.well-known/matrix/server",
        host="127.0.0.1",
        port=443,
        target="/.well-known/matrix/server",
        host_header="127.0.0.1",
        max_body_bytes=100,
    )
    outcome = transport.fetch(request, timeout=1.0)
    assert isinstance(outcome, HttpsFailure)
    assert outcome.kind is HttpsFailureKind.ADDRESS_REFUSED
    assert "loopback" in outcome.message


def test_async_https_transport_maps_garbage_too(ca: trustme.CA) -> None:
    def respond(tls: ssl.SSLSocket) -> None:
        tls.sendall(b"\x00\x01\x02 not http at all\r\n\r\n")

    context = ssl.create_default_context()
    ca.configure_trust(context)

    async def run(port: int) -> HttpsResponse | HttpsFailure:
        transport = AsyncH11HttpsTransport(
            AsyncDnspythonTransport(["127.0.0.1:9"]), ssl_context=context, ip_policy=LOOPBACK
        )
        request = HttpsGet(
            url=f"https://127.0.0.1:{port}/",
            host="127.0.0.1",
            port=port,
            target="/",
            host_header="127.0.0.1",
            max_body_bytes=100,
        )
        return await transport.fetch(request, timeout=3.0)

    with contextlib.contextmanager(_serve_tls)(ca, respond) as port:
        outcome = asyncio.run(run(port))
    assert isinstance(outcome, HttpsFailure)
    assert outcome.kind is HttpsFailureKind.PROTOCOL_ERROR


# --- DNS ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _udp_server(reply: Callable[[bytes], bytes | list[bytes] | None]) -> Iterator[int]:
    """A UDP 'nameserver' on 127.0.0.1 that answers each query with reply(query)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(4096)
            except (TimeoutError, OSError):
                continue
            answer = reply(data)
            for datagram in [answer] if isinstance(answer, bytes) else answer or []:
                sock.sendto(datagram, peer)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        sock.close()


QUERY = DnsQuery(qname="example.org.", rdtype=RecordType.A)


@pytest.mark.parametrize(
    ("name", "reply"),
    [
        ("random bytes", lambda q: b"\xde\xad\xbe\xef" * 8),
        ("a truncated header", lambda q: q[:5]),
        ("the query echoed back", lambda q: q),
        ("nothing at all", lambda q: None),
    ],
)
def test_dns_transport_never_raises_on_junk(
    name: str, reply: Callable[[bytes], bytes | None]
) -> None:
    with _udp_server(reply) as port:
        result = DnspythonTransport([f"127.0.0.1:{port}"]).query(QUERY, timeout=0.5)

        async def run() -> DnsStatus:
            transport = AsyncDnspythonTransport([f"127.0.0.1:{port}"])
            return (await transport.query(QUERY, timeout=0.5)).status

        async_status = asyncio.run(run())
    assert result.status.is_failure, (name, result)
    assert async_status.is_failure, (name, async_status)
    assert not result.records


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1", ("127.0.0.1", 53)),
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("::1", ("::1", 53)),
        ("[::1]:5353", ("::1", 5353)),
    ],
)
def test_nameserver_parsing(text: str, expected: tuple[str, int]) -> None:
    assert parse_nameserver(text) == expected


@pytest.mark.parametrize("text", ["", "localhost", "127.0.0.1:0", "127.0.0.1:x", "[::1", "1.2.3"])
def test_bad_nameservers_are_typed_errors(text: str) -> None:
    with pytest.raises(InvalidSettings, match="nameserver"):
        parse_nameserver(text)


def _answer_a(query_wire: bytes, address: str = "192.0.2.7") -> bytes:
    request = dns.message.from_wire(query_wire)
    response = dns.message.make_response(request)
    response.answer.append(dns.rrset.from_text(request.question[0].name, 60, "IN", "A", address))
    return response.to_wire()


@pytest.mark.parametrize("driver", ["sync", "asyncio"])
def test_a_silent_first_nameserver_is_asked_once_then_the_next(driver: str) -> None:
    # The fast path asks only the first nameserver; after its silence, dnspython must
    # start with the others, so a dead first server costs one timeout, not two.
    silent_heard: list[bytes] = []

    def silent(query_wire: bytes) -> None:
        silent_heard.append(query_wire)

    with _udp_server(silent) as dead, _udp_server(_answer_a) as alive:
        servers = [f"127.0.0.1:{dead}", f"127.0.0.1:{alive}"]
        if driver == "sync":
            result = DnspythonTransport(servers).query(QUERY, timeout=4.0)
        else:
            result = asyncio.run(AsyncDnspythonTransport(servers).query(QUERY, timeout=4.0))
    assert result.status is DnsStatus.NOERROR, result
    assert result.records == ("192.0.2.7",)
    assert len(silent_heard) == 1


@pytest.mark.parametrize("how", ["poll_query", "finish_query"])
def test_a_reply_that_came_while_the_caller_was_busy_still_counts(how: str) -> None:
    # The blocking driver may be busy with an HTTPS fetch past a started query's wait;
    # the reply sitting in the socket is the answer, not a reason to ask again.
    heard: list[bytes] = []

    def answer(query_wire: bytes) -> bytes:
        heard.append(query_wire)
        return _answer_a(query_wire)

    with _udp_server(answer) as port:
        transport = DnspythonTransport([f"127.0.0.1:{port}"])
        pending = transport.start_query(QUERY, timeout=0.2)
        assert pending.sock is not None
        time.sleep(0.5)  # busy elsewhere: the fast path's wait is over
        assert pending.wait_until < time.monotonic()
        result = getattr(transport, how)(pending)
    assert result.records == ("192.0.2.7",)
    assert len(heard) == 1  # dnspython did not ask again
    assert pending.sock is None  # and the socket is closed


def test_a_started_query_is_not_done_until_its_reply_is_in() -> None:
    heard: list[bytes] = []
    with _udp_server(heard.append) as port:  # never answers
        transport = DnspythonTransport([f"127.0.0.1:{port}"])
        pending = transport.start_query(QUERY, timeout=5.0)
        assert transport.poll_query(pending) is None
        assert pending.sock is not None
        pending.close()
    assert len(heard) == 1


@pytest.mark.parametrize("driver", ["sync", "asyncio"])
def test_with_nameservers_given_the_fast_path_builds_no_dnspython_resolver(driver: str) -> None:
    # Building dnspython's resolver (and importing it) is paid only by a query that falls
    # back to it: with nameservers given, the fast path knows where to ask and how long.
    with _udp_server(_answer_a) as port:
        servers = [f"127.0.0.1:{port}"]
        if driver == "sync":
            transport: DnspythonTransport | AsyncDnspythonTransport = DnspythonTransport(servers)
            result = transport.query(QUERY, timeout=2.0)
        else:
            transport = AsyncDnspythonTransport(servers)
            result = asyncio.run(transport.query(QUERY, timeout=2.0))
    assert result.records == ("192.0.2.7",)
    assert transport._state is None


def test_the_fast_path_waits_as_long_as_dnspython_would() -> None:
    from mxresolve._io.dns_transport import DNSPYTHON_TIMEOUT

    assert dns.resolver.Resolver(configure=False).timeout == DNSPYTHON_TIMEOUT


@pytest.mark.parametrize("driver", ["sync", "asyncio"])
def test_a_reply_with_another_id_is_ignored(driver: str) -> None:
    # An off-path forger must guess the ID: a reply with another one is not the answer.
    def forged_then_real(query_wire: bytes) -> list[bytes]:
        forged = bytearray(_answer_a(query_wire, "192.0.2.66"))
        forged[0] ^= 0xFF
        return [bytes(forged), _answer_a(query_wire)]

    with _udp_server(forged_then_real) as port:
        servers = [f"127.0.0.1:{port}"]
        if driver == "sync":
            result = DnspythonTransport(servers).query(QUERY, timeout=2.0)
        else:
            result = asyncio.run(AsyncDnspythonTransport(servers).query(QUERY, timeout=2.0))
    assert result.records == ("192.0.2.7",)


def test_a_loop_without_add_reader_falls_back_to_dnspython() -> None:
    # Windows' proactor loop has no add_reader(); the fast path must step aside, not fail.
    def no_add_reader(*args: object) -> None:
        raise NotImplementedError

    async def run(port: int) -> tuple[str | SrvRecord, ...]:
        asyncio.get_running_loop().add_reader = no_add_reader  # type: ignore[method-assign,assignment]
        transport = AsyncDnspythonTransport([f"127.0.0.1:{port}"])
        return (await transport.query(QUERY, timeout=2.0)).records

    with _udp_server(_answer_a) as port:
        assert asyncio.run(run(port)) == ("192.0.2.7",)


class _NodelaySpy(socket.socket):
    """A socket that records, at each connect, whether Nagle's algorithm was off."""

    seen: list[int] = []  # noqa: RUF012 (reset per test by the fixture)

    def _record(self) -> None:
        if self.type == socket.SOCK_STREAM:
            _NodelaySpy.seen.append(self.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    def connect(self, address: object) -> None:  # type: ignore[override]
        self._record()
        super().connect(address)  # type: ignore[arg-type]

    def connect_ex(self, address: object) -> int:  # type: ignore[override]
        self._record()
        return super().connect_ex(address)  # type: ignore[arg-type]


@pytest.fixture
def nodelay_spy(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every TCP socket that connects while the test runs, as the spy saw it.

    net.py imports ``socket`` where it makes one (an IP literal makes none), so the spy
    replaces the class in the module itself. The tests' own servers only accept, which
    records nothing: what connects is mxresolve's.
    """
    _NodelaySpy.seen = []
    monkeypatch.setattr(socket, "socket", _NodelaySpy)
    return _NodelaySpy.seen


def test_the_sync_well_known_fetch_turns_nagle_off(ca: trustme.CA, nodelay_spy: list[int]) -> None:
    # Go TLS servers delay their ACK of our Finished; with Nagle on, the request then
    # waits 40 ms for it (issue 10). Every TCP socket must connect with TCP_NODELAY set.
    for port in _serve_tls(ca, lambda tls: tls.sendall(CASES["a well-formed 200"][0])):
        assert isinstance(_fetch(ca, port), HttpsResponse)
    assert nodelay_spy
    assert all(nodelay_spy), nodelay_spy


def test_the_async_well_known_fetch_turns_nagle_off(ca: trustme.CA, nodelay_spy: list[int]) -> None:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    for port in _serve_tls(ca, lambda tls: tls.sendall(CASES["a well-formed 200"][0])):
        transport = AsyncH11HttpsTransport(
            AsyncDnspythonTransport(["127.0.0.1:9"]), ssl_context=context, ip_policy=LOOPBACK
        )
        request = HttpsGet(
            url=f"https://127.0.0.1:{port}/.well-known/matrix/server",
            host="127.0.0.1",
            port=port,
            target="/.well-known/matrix/server",
            host_header=f"127.0.0.1:{port}",
            max_body_bytes=51200,
        )
        assert isinstance(asyncio.run(transport.fetch(request, timeout=3.0)), HttpsResponse)
    assert nodelay_spy
    assert all(nodelay_spy), nodelay_spy


def test_connect_turns_nagle_off_in_both_drivers(ca: trustme.CA, nodelay_spy: list[int]) -> None:
    from mxresolve import AsyncResolver, Resolver

    context = ssl.create_default_context()
    ca.configure_trust(context)
    for port in _serve_tls(ca, lambda tls: None):
        name = f"127.0.0.1:{port}"
        stream, _ = Resolver(ssl_context=context, allow_ips=["127.0.0.0/8"]).connect(name)
        assert stream.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        stream.close()

        async def connect_async(name: str) -> None:
            resolver = AsyncResolver(ssl_context=context, allow_ips=["127.0.0.0/8"])
            _, writer, _ = await resolver.connect(name)
            sock = writer.get_extra_info("socket")
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            writer.close()
            await writer.wait_closed()  # else the loop ends first and GC reports the transport

        asyncio.run(connect_async(name))
    assert len(nodelay_spy) >= 2
    assert all(nodelay_spy), nodelay_spy


class _NoDns:
    """A DNS transport that must not be asked: the request carries its addresses."""

    def query(self, query: object, timeout: float) -> object:
        raise AssertionError(f"the HTTPS transport asked DNS for {query}")

    async def aquery(self, query: object, timeout: float) -> object:
        raise AssertionError(f"the HTTPS transport asked DNS for {query}")


@pytest.mark.parametrize("driver", ["sync", "asyncio"])
def test_https_transport_connects_to_the_addresses_it_is_given(ca: trustme.CA, driver: str) -> None:
    # The machine resolved the host through its cache: the transport asks DNS nothing,
    # connects to the addresses, and still verifies the certificate for the host name.
    def respond(tls: ssl.SSLSocket) -> None:
        tls.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")

    context = ssl.create_default_context()
    ca.configure_trust(context)
    with contextlib.contextmanager(_serve_tls)(ca, respond, "wk.example.test") as port:
        request = HttpsGet(
            url=f"https://wk.example.test:{port}/.well-known/matrix/server",
            host="wk.example.test",
            port=port,
            target="/.well-known/matrix/server",
            host_header=f"wk.example.test:{port}",
            max_body_bytes=100,
            addresses=("127.0.0.1",),
        )
        if driver == "sync":
            sync = H11HttpsTransport(_NoDns(), ssl_context=context, ip_policy=LOOPBACK)  # type: ignore[arg-type]
            outcome = sync.fetch(request, timeout=3.0)
        else:
            no_dns = _NoDns()
            no_dns.query = no_dns.aquery  # type: ignore[method-assign]
            asy = AsyncH11HttpsTransport(no_dns, ssl_context=context, ip_policy=LOOPBACK)  # type: ignore[arg-type]
            outcome = asyncio.run(asy.fetch(request, timeout=3.0))
    assert isinstance(outcome, HttpsResponse), outcome
    assert outcome.status == 404

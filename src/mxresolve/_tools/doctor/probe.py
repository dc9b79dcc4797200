"""One connection to one address: TCP, TLS (verified, or not to read the certificate),
and optionally one HTTP GET over it. Every step is bounded by ``timeout``."""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import time
from dataclasses import dataclass

from ..._core.events import HttpsFailure, HttpsFailureKind, HttpsGet, HttpsResponse
from ..._io.aio_net import async_connect_tcp
from ..._io.http1 import Http1Exchange
from ..._io.net import ConnectFailed, classify_error

__all__ = ["Probe", "TlsFailure", "probe", "unverified_context"]

MAX_BODY = 256 * 1024
_EXPIRED = 10  # X509_V_ERR_CERT_HAS_EXPIRED
_NOT_YET_VALID = 9
_NAME_MISMATCH = (62, 64)  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH


class TlsFailure(str):
    """Why a TLS handshake failed: 'untrusted', 'name-mismatch', 'expired', 'handshake'
    (it failed otherwise) or 'timeout' (the peer accepted the connection, then went silent)."""


@dataclass(kw_only=True, slots=True)
class Probe:
    address: str
    port: int
    connected: bool = False
    connect_error: str = ""
    tls_failure: str | None = None  # None: the handshake (and verification) succeeded
    tls_error: str = ""
    der: bytes | None = None  # the leaf certificate
    not_after: float | None = None  # from a verified handshake
    response: HttpsResponse | HttpsFailure | None = None

    @property
    def fingerprint(self) -> str | None:
        return None if self.der is None else hashlib.sha256(self.der).hexdigest()


def unverified_context() -> ssl.SSLContext:
    """Reads any certificate: for details about one that failed verification."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["http/1.1"])
    return context


def _tls_failure(exc: BaseException) -> tuple[str, str]:
    if isinstance(exc, ssl.SSLCertVerificationError):
        code = exc.verify_code
        if code in _NAME_MISMATCH:
            return "name-mismatch", exc.verify_message or str(exc)
        if code in (_EXPIRED, _NOT_YET_VALID):
            return "expired", exc.verify_message or str(exc)
        return "untrusted", exc.verify_message or str(exc)
    return "handshake", str(exc)[:300] or type(exc).__name__


async def probe(
    address: str,
    port: int,
    *,
    server_hostname: str,
    context: ssl.SSLContext,
    timeout: float,
    path: str | None = None,
    host_header: str | None = None,
) -> Probe:
    """Connect, handshake with ``context`` for ``server_hostname``, GET ``path`` if given."""
    result = Probe(address=address, port=port)
    deadline = time.monotonic() + timeout
    try:
        raw = await async_connect_tcp([address], port, deadline)
    except ConnectFailed as exc:
        result.connect_error = f"{exc.kind.value}: {exc.message}"
        return result
    result.connected = True
    writer: asyncio.StreamWriter | None = None
    try:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    sock=raw,
                    ssl=context,
                    server_hostname=server_hostname,
                    ssl_handshake_timeout=max(deadline - time.monotonic(), 0.001),
                ),
                max(deadline - time.monotonic(), 0.001),
            )
        except (OSError, ssl.SSLError, asyncio.TimeoutError) as exc:
            if isinstance(exc, asyncio.TimeoutError):
                result.tls_failure, result.tls_error = "timeout", "no TLS handshake in time"
            else:
                result.tls_failure, result.tls_error = _tls_failure(exc)
            return result
        assert writer is not None
        tls = writer.get_extra_info("ssl_object")
        if isinstance(tls, ssl.SSLObject):
            result.der = tls.getpeercert(binary_form=True)
            if context.verify_mode != ssl.CERT_NONE:
                info = tls.getpeercert()
                not_after = info.get("notAfter") if info else None
                if isinstance(not_after, str):
                    result.not_after = ssl.cert_time_to_seconds(not_after)
        if path is not None:
            result.response = await _get(
                reader, writer, address, port, path, host_header or server_hostname, deadline
            )
        return result
    finally:
        if writer is not None:
            writer.close()
            # A peer that never answers our close_notify: drop the socket at once, or it
            # lingers until the loop closes.
            try:
                await asyncio.wait_for(writer.wait_closed(), 0.5)
            except asyncio.CancelledError:
                writer.transport.abort()
                raise
            except Exception:
                writer.transport.abort()
        else:
            raw.close()


async def _get(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    address: str,
    port: int,
    path: str,
    host_header: str,
    deadline: float,
) -> HttpsResponse | HttpsFailure:
    request = HttpsGet(
        url=f"https://{host_header}{path}",
        host=address,
        port=port,
        target=path,
        host_header=host_header,
        max_body_bytes=MAX_BODY,
    )
    exchange = Http1Exchange(request, max_header_bytes=16 * 1024)
    try:
        writer.write(exchange.request_bytes())
        await writer.drain()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return HttpsFailure(kind=HttpsFailureKind.READ_TIMEOUT, message="too slow")
            data = await asyncio.wait_for(reader.read(16 * 1024), remaining)
            outcome = exchange.receive(data)
            if outcome is not None:
                return outcome
    except asyncio.TimeoutError:
        return HttpsFailure(kind=HttpsFailureKind.READ_TIMEOUT, message="no response in time")
    except (OSError, ssl.SSLError, asyncio.IncompleteReadError) as exc:
        return HttpsFailure(kind=classify_error(exc, connecting=False), message=str(exc)[:300])

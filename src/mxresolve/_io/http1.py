"""One bounded HTTP/1.1 GET exchange over h11, shared by the sync and async transports.

It is sans-I/O too: feed it bytes from the socket, it says when the response
is complete or why it failed. Limits (header bytes, body bytes) are enforced
as the bytes arrive, so an oversized response is cut off, not buffered.
"""

from __future__ import annotations

import h11

from .._core.events import HttpsFailure, HttpsFailureKind, HttpsGet, HttpsResponse

__all__ = ["USER_AGENT", "Http1Exchange"]

USER_AGENT = "mxresolve/0.1 (+Matrix server discovery)"


class Http1Exchange:
    def __init__(self, request: HttpsGet, *, max_header_bytes: int) -> None:
        self._request = request
        self._conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=max_header_bytes)
        self._max_header_bytes = max_header_bytes
        self._status = 0
        self._headers: tuple[tuple[str, str], ...] = ()
        self._body = bytearray()

    def request_bytes(self) -> bytes:
        head = self._conn.send(
            h11.Request(
                method="GET",
                target=self._request.target.encode("ascii"),
                headers=[
                    ("Host", self._request.host_header),
                    ("User-Agent", USER_AGENT),
                    ("Accept", "application/json"),
                    ("Connection", "close"),
                ],
            )
        )
        end = self._conn.send(h11.EndOfMessage())
        return (head or b"") + (end or b"")

    def receive(self, data: bytes) -> HttpsResponse | HttpsFailure | None:
        """Feed bytes (``b""`` at end of stream); the result once there is one."""
        try:
            self._conn.receive_data(data)
            while True:
                event = self._conn.next_event()
                if event is h11.NEED_DATA:
                    if data == b"":
                        return HttpsFailure(
                            kind=HttpsFailureKind.CONNECTION_RESET,
                            message="the connection closed before the response ended",
                        )
                    return None
                if isinstance(event, h11.InformationalResponse):
                    continue
                if isinstance(event, h11.Response):
                    failure = self._start(event)
                    if failure is not None:
                        return failure
                elif isinstance(event, h11.Data):
                    self._body += event.data
                    if len(self._body) > self._request.max_body_bytes:
                        return _too_large(self._request.max_body_bytes)
                elif isinstance(event, h11.EndOfMessage):
                    return HttpsResponse(
                        status=self._status, headers=self._headers, body=bytes(self._body)
                    )
                elif isinstance(event, h11.ConnectionClosed):
                    return HttpsFailure(
                        kind=HttpsFailureKind.CONNECTION_RESET, message="connection closed"
                    )
        except h11.RemoteProtocolError as exc:
            if data == b"":  # the peer closed mid-response
                return HttpsFailure(kind=HttpsFailureKind.CONNECTION_RESET, message=str(exc))
            if "buffer" in str(exc).lower():
                return HttpsFailure(
                    kind=HttpsFailureKind.HEADERS_TOO_LARGE,
                    message=f"the response head is over {self._max_header_bytes} bytes",
                )
            return HttpsFailure(kind=HttpsFailureKind.PROTOCOL_ERROR, message=str(exc))

    def _start(self, event: h11.Response) -> HttpsFailure | None:
        self._status = event.status_code
        self._headers = tuple(
            (name.decode("latin-1"), value.decode("latin-1")) for name, value in event.headers
        )
        for name, value in self._headers:
            too_long = value.isdigit() and int(value) > self._request.max_body_bytes
            if name.lower() == "content-length" and too_long:
                return _too_large(self._request.max_body_bytes)
        return None


def _too_large(limit: int) -> HttpsFailure:
    return HttpsFailure(kind=HttpsFailureKind.BODY_TOO_LARGE, message=f"over {limit} bytes")

"""What every HTTP-client adapter decides the same way, without doing any I/O.

The adapters (httpx, aiohttp, Twisted) are thin shells around this module:

* :func:`server_name_from_url` turns the authority of a ``matrix-federation://``
  URL into a checked server name (the URL never supplies Host, SNI or the
  certificate name: those come from the resolved :class:`~mxresolve.Target`);
* :class:`PoolKey` is the one key a pooled connection may be reused under:
  (addresses, port, SNI, certificate name). A connection verified for one
  certificate name can never carry a request that needs another;
* :class:`Attempts` walks a resolution's targets in order, decides whether a
  failure may move on to the next one, and builds the error that lists every
  attempt;
* :class:`Deadline` turns a total timeout into what is left for each step.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from .._core.errors import InvalidServerName, MxresolveError
from .._core.events import Resolution, Target
from .._core.grammar import ServerName, parse_server_name

__all__ = [
    "IDEMPOTENT_METHODS",
    "SCHEME",
    "Attempt",
    "Attempts",
    "Deadline",
    "FederationConnectFailed",
    "InvalidFederationURL",
    "KeyedPools",
    "PoolKey",
    "server_name_from_url",
]

SCHEME = "matrix-federation"

P = TypeVar("P")

# RFC 9110 §9.2.2. A request that may already have reached the server is sent again
# only for these, and only when the caller asked for it.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})


class InvalidFederationURL(MxresolveError, ValueError):
    """A ``matrix-federation://`` URL that cannot name a server.

    Attributes:
        url: the URL as given.
        reason: what is wrong with it.
    """

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"invalid federation URL {url!r}: {reason}")


def server_name_from_url(url: str, authority: str) -> ServerName:
    """The server name a ``matrix-federation://`` URL is for, or :class:`InvalidFederationURL`.

    ``authority`` is the URL's host and port exactly as the client parsed them
    (``example.org``, ``example.org:8448``, ``[::1]:8448``). User info has no
    meaning here and is refused rather than dropped.
    """
    if not authority:
        raise InvalidFederationURL(
            url, "it has no server name (expected matrix-federation://NAME/)"
        )
    if "@" in authority:
        raise InvalidFederationURL(url, "user info ('...@') has no meaning in a federation URL")
    try:
        return parse_server_name(authority)
    except InvalidServerName as exc:
        raise InvalidFederationURL(
            url, f"{authority!r} is not a server name: {exc.reason}"
        ) from exc


@dataclass(frozen=True, slots=True)
class PoolKey:
    """Connections are pooled under this key and reused only for a request with the same one.

    Two server names that resolve to the same address but need different
    certificate names get different keys, so neither ever rides on a connection
    verified for the other.
    """

    addresses: tuple[str, ...]
    port: int
    sni: str | None
    tls_server_name: str

    @classmethod
    def for_target(cls, target: Target) -> PoolKey:
        return cls(tuple(sorted(target.addresses)), target.port, target.sni, target.tls_server_name)


@dataclass(frozen=True, slots=True)
class Attempt:
    """One target tried for one request, and how it ended."""

    target: Target
    outcome: str

    def __str__(self) -> str:
        return (
            f"{self.target.host}:{self.target.port} ({self.target.tls_server_name}): {self.outcome}"
        )


class FederationConnectFailed(MxresolveError):
    """No target accepted the request: every attempt, in order, in ``attempts``."""

    def __init__(self, server_name: str, attempts: tuple[Attempt, ...], reason: str) -> None:
        self.server_name = server_name
        self.attempts = attempts
        self.reason = reason
        tried = "; ".join(str(a) for a in attempts) or "no target was tried"
        super().__init__(f"{server_name}: {reason}: {tried}")


@dataclass
class Attempts:
    """The failover walk over one resolution's targets for one request.

    A shell asks :meth:`targets` for the next target, tries it, and reports the
    result with :meth:`failed`. A failure before any byte of the request was
    written (no connection, TLS refused) always moves on; one after may move on
    only for an idempotent method whose body can be sent again, and only when
    the caller allowed it (``retry_after_send``).
    """

    resolution: Resolution
    method: str
    retry_after_send: bool = False
    body_replayable: bool = True
    tried: list[Attempt] = field(default_factory=list)
    _stop: bool = field(default=False, init=False, repr=False)

    def targets(self) -> list[Target]:
        return list(self.resolution.targets)

    def may_continue(self) -> bool:
        return not self._stop

    def failed(self, target: Target, outcome: str, *, request_sent: bool) -> None:
        """Record a failed attempt; after it, :meth:`may_continue` says whether to go on."""
        self.tried.append(Attempt(target, outcome + (" (after sending)" if request_sent else "")))
        if request_sent and not self._may_resend():
            self._stop = True

    def _may_resend(self) -> bool:
        return (
            self.retry_after_send
            and self.body_replayable
            and self.method.upper() in IDEMPOTENT_METHODS
        )

    def error(self, reason: str | None = None) -> FederationConnectFailed:
        if reason is None:
            reason = (
                "the request failed after it was sent; not sent again"
                if self._stop
                else "no target could be reached"
            )
        return FederationConnectFailed(self.resolution.server_name, tuple(self.tried), reason)


class Deadline:
    """A total time budget on ``time.monotonic()``; ``None`` means no total limit."""

    __slots__ = ("at",)

    def __init__(self, total: float | None) -> None:
        self.at = None if total is None else time.monotonic() + total

    def left(self) -> float | None:
        return None if self.at is None else max(self.at - time.monotonic(), 0.0)

    def expired(self) -> bool:
        return self.at is not None and time.monotonic() >= self.at

    def clamp(self, timeout: float | None) -> float | None:
        """``timeout`` cut to what is left (at least 1 ms, so it still means 'time out')."""
        left = self.left()
        if left is None:
            return timeout
        left = max(left, 0.001)
        return left if timeout is None else min(timeout, left)


class KeyedPools(Generic[P]):
    """Per-:class:`PoolKey` connection pools, the least recently used dropped past ``limit``.

    The shells close what :meth:`get` hands back as evicted (sync or async, as they must).
    """

    def __init__(self, limit: int = 1000) -> None:
        self.limit = limit
        self._pools: OrderedDict[PoolKey, P] = OrderedDict()

    def get(self, key: PoolKey, make: Callable[[], P]) -> tuple[P, list[P]]:
        pool = self._pools.get(key)
        if pool is not None:
            self._pools.move_to_end(key)
            return pool, []
        pool = self._pools[key] = make()
        evicted: list[P] = []
        while len(self._pools) > self.limit:
            evicted.append(self._pools.popitem(last=False)[1])
        return pool, evicted

    def drain(self) -> list[P]:
        pools = list(self._pools.values())
        self._pools.clear()
        return pools

    def __len__(self) -> int:
        return len(self._pools)

    def keys(self) -> list[PoolKey]:
        return list(self._pools)

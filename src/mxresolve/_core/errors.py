"""The exception hierarchy.

Errors are split by whose fault they are (h11 does the same):

* :class:`InvalidServerName` and :class:`InvalidSettings` are the caller's: bad
  input handed to the library.
* :class:`LocalProtocolError` means the caller drove the sans-I/O machine wrongly
  (fed an outcome it never asked for, for example).
* :class:`ResolutionError` is raised by the drivers when the network said no.
  The core never raises it: a failed resolution is a value
  (:class:`~mxresolve.ResolutionFailure`), and the drivers turn it into this
  exception at their edge.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .events import Resolution, ResolutionFailure, Target

__all__ = [
    "ConnectError",
    "InvalidServerName",
    "InvalidSettings",
    "LocalProtocolError",
    "MxresolveError",
    "ResolutionError",
]


class MxresolveError(Exception):
    """Base class of every exception mxresolve raises on purpose."""


class InvalidServerName(MxresolveError, ValueError):
    """A server name (or an ``m.server`` value) does not follow the grammar.

    Attributes:
        text: the rejected input, as given (``repr`` of it if it was not a string).
        offset: index into ``text`` of the offending character, or ``None`` when
            the problem is not at one place (too long, empty, ...).
        reason: what is wrong, in words, without the input repeated.
    """

    def __init__(self, text: str, reason: str, offset: int | None = None) -> None:
        self.text = text
        self.reason = reason
        self.offset = offset
        where = f" (at offset {offset})" if offset is not None else ""
        super().__init__(f"invalid server name {text!r}: {reason}{where}")


class InvalidSettings(MxresolveError, ValueError):
    """A setting is out of range or inconsistent with another one."""


class LocalProtocolError(MxresolveError, RuntimeError):
    """The sans-I/O machine was used in a way its protocol does not allow."""


class ResolutionError(MxresolveError):
    """A resolution ended without a target to connect to.

    Raised by :class:`~mxresolve.Resolver` and :class:`~mxresolve.AsyncResolver`.
    ``failure`` carries the kind, the deciding step and the full trace.
    """

    def __init__(self, failure: ResolutionFailure) -> None:
        self.failure = failure
        super().__init__(f"{failure.server_name}: {failure.kind.value}: {failure.message}")


class ConnectError(MxresolveError):
    """``connect()`` could not open a verified TLS connection to any target.

    ``attempts`` pairs each target tried with why it failed, in order.
    """

    def __init__(self, resolution: Resolution, attempts: list[tuple[Target, str]]) -> None:
        self.resolution = resolution
        self.attempts = attempts
        tried = "; ".join(f"{t.host}:{t.port}: {why}" for t, why in attempts) or "no targets"
        super().__init__(f"{resolution.server_name}: could not connect: {tried}")

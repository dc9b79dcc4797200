"""Cache stores: the interface, and the pure parts of sharing a cache between processes.

A *store* holds what a resolver learns that is worth keeping across resolutions:
the well-known entries (delegations, and failures with their back-off counters)
and the DNS answers, each with its expiry. :class:`CacheStore` is the blocking
interface and :class:`AsyncCacheStore` the asyncio one. The in-process
:class:`~mxresolve.ResolverCache` is the default store; ``mxresolve.stores.redis``
shares one between workers.

The machine never talks to a store: reaching one is I/O. It reads and writes its
in-process cache, and the drivers keep that cache in step with the shared store
around each resolution (docs/shared-cache.md says why). What is pure about that
lives here, so the blocking and asyncio shells cannot drift apart:

* the wire format of an entry (:class:`StoreCodec`): a format version, an
  optional HMAC over key and payload, and a JSON payload;
* the checks an entry read back must pass: the same grammar, bounds and limits
  as a fresh answer, so that a store is never more trusted than the network;
* which of two entries wins (:func:`reconcile`), when to read the store again
  (:func:`needs_read`), and how long Redis keeps an entry (:func:`retain_until`);
* a circuit breaker (:class:`Breaker`), so that a store that is down costs a
  resolution nothing once it has been noticed.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from .cache import WellKnownEntry, dns_lifetime, failure_lifetime
from .errors import InvalidServerName, InvalidSettings
from .events import DnsResult, DnsStatus, RecordType, SrvRecord
from .grammar import HostKind, ServerName, parse_server_name
from .settings import Settings

__all__ = [
    "FORMAT_VERSION",
    "AsyncCacheStore",
    "Breaker",
    "CacheStore",
    "Decoded",
    "StoreCodec",
    "needs_read",
    "reconcile",
    "retain_until",
    "shared_dns_expiry",
    "well_known_host",
]

FORMAT_VERSION = 1
MAX_VALUE_BYTES = 8192  # a well-known entry is ~300 bytes; a DNS answer a few KiB at most
MAX_TEXT = 2000  # an error message kept with a failure
MAX_NAME = 255  # a DNS name
MAX_RECORDS = 256
MAX_ALIASES = 32
MAX_FAILURES = 1_000_000
MIN_SECRET_BYTES = 16

_DnsEntry = tuple[DnsResult, float]
_SHARED_STATUSES = frozenset({DnsStatus.NOERROR, DnsStatus.NXDOMAIN, DnsStatus.NODATA})


@runtime_checkable
class CacheStore(Protocol):
    """Where a blocking resolver keeps well-known entries and DNS answers.

    A shared store must never raise because it is unreachable: a read answers
    ``None`` (nothing known) and a write is dropped. ``add_failure`` counts one
    more failure atomically and answers the resulting entry, or ``None`` if the
    store could not be reached. ``local_max_age`` bounds how long a resolver
    uses an entry read from the store before it reads the store again.
    """

    local_max_age: float

    def get_well_known(
        self, hostname: str, now: float, settings: Settings
    ) -> WellKnownEntry | None: ...

    def put_well_known(
        self, hostname: str, entry: WellKnownEntry, now: float, settings: Settings
    ) -> None: ...

    def add_failure(
        self, hostname: str, error: str, *, unavailable: bool, now: float, settings: Settings
    ) -> WellKnownEntry | None: ...

    def get_dns(
        self, qname: str, rdtype: RecordType, now: float, settings: Settings
    ) -> _DnsEntry | None: ...

    def put_dns(
        self, qname: str, rdtype: RecordType, result: DnsResult, expires_at: float, now: float
    ) -> None: ...


@runtime_checkable
class AsyncCacheStore(Protocol):
    """:class:`CacheStore` for :class:`~mxresolve.AsyncResolver`: the same methods, awaited."""

    local_max_age: float

    async def get_well_known(
        self, hostname: str, now: float, settings: Settings
    ) -> WellKnownEntry | None: ...

    async def put_well_known(
        self, hostname: str, entry: WellKnownEntry, now: float, settings: Settings
    ) -> None: ...

    async def add_failure(
        self, hostname: str, error: str, *, unavailable: bool, now: float, settings: Settings
    ) -> WellKnownEntry | None: ...

    async def get_dns(
        self, qname: str, rdtype: RecordType, now: float, settings: Settings
    ) -> _DnsEntry | None: ...

    async def put_dns(
        self, qname: str, rdtype: RecordType, result: DnsResult, expires_at: float, now: float
    ) -> None: ...


# --- the sharing rules ---------------------------------------------------------------


def well_known_host(server_name: str) -> str | None:
    """The host whose well-known a resolution of ``server_name`` reads (step 3), if any."""
    try:
        name = parse_server_name(server_name)
    except (InvalidServerName, TypeError):
        return None
    if name.kind is not HostKind.DNS or name.port is not None:
        return None
    return name.host


def needs_read(
    local: WellKnownEntry | None, checked_at: float | None, now: float, local_max_age: float
) -> bool:
    """Whether to read the shared store before a resolution uses ``local``.

    Yes when there is no fresh local entry, and when the local one was last
    compared with the shared store ``local_max_age`` or more ago: that is the
    bound on how far a worker's view may lag the deployment's.
    """
    if local is None or local.expires_at <= now:
        return True
    return checked_at is None or now - checked_at >= local_max_age


def reconcile(
    local: WellKnownEntry | None, shared: WellKnownEntry | None
) -> tuple[WellKnownEntry | None, WellKnownEntry | None]:
    """(entry to install locally, entry to publish to the store): the newer one wins.

    A tie goes to the shared entry. A local entry newer than the shared one (or
    with none shared: Redis restarted empty, or it was down when we learned it)
    is published, so that sharing resumes with what this worker knows.
    """
    if shared is not None and (local is None or shared.stored_at >= local.stored_at):
        return (shared if shared is not local else None), None
    return None, local


def shared_dns_expiry(result: DnsResult, now: float, settings: Settings) -> float | None:
    """When a fresh answer should leave the shared store, or ``None`` to keep it local.

    Failures (SERVFAIL, REFUSED, timeouts) stay local: they may be one worker's
    own trouble reaching its resolver, not a fact about the name.
    """
    if result.status not in _SHARED_STATUSES:
        return None
    lifetime = dns_lifetime(result, settings)
    return now + lifetime if lifetime >= 1 else None


def retain_until(entry: WellKnownEntry, settings: Settings) -> float:
    """Until when a store keeps a well-known entry: past its freshness while it still counts.

    A failure keeps its count for one longest back-off after it expires (so that
    back-off grows across failures), and a delegation stays for ``stale_if_error``
    after it expires (so that any worker may fall back on it).
    """
    keep = entry.expires_at
    if entry.delegation is None:
        keep += settings.failure_max_ttl
    if entry.last_good is not None:
        keep = max(keep, entry.last_good_expired_at + settings.stale_if_error)
    return keep


# --- the wire format ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Decoded:
    """What reading one stored value gave: an entry, or why it was ignored (or neither)."""

    value: Any = None  # WellKnownEntry or (DnsResult, expires_at)
    problem: str | None = None


_ABSENT = Decoded()


class StoreCodec:
    """Keys and values of a shared store, format version :data:`FORMAT_VERSION`.

    A key is ``{prefix}:v{version}:wk:{hostname}`` or
    ``{prefix}:v{version}:dns:{type}:{qname}``; a value is
    ``mxr{version} {mac} {payload}``, where ``payload`` is compact JSON and ``mac``
    is the hex HMAC-SHA256 of ``key NUL payload`` under the first of ``secrets``
    (``-`` without secrets). With secrets, a value is accepted only if its MAC
    matches one of them: rotate by putting the new secret first, keeping the old
    one until every entry signed with it has expired (48 h at most with the
    default settings), then dropping it.

    Args:
        prefix: keeps deployments (or test runs) sharing one Redis apart.
        secrets: HMAC keys, at least 16 bytes each; the first signs.
        max_clock_skew: how far in the future a stored time may be (hosts' clocks differ).
    """

    def __init__(
        self,
        *,
        prefix: str = "mxresolve",
        secrets: Sequence[bytes | str] = (),
        max_clock_skew: float = 5.0,
    ) -> None:
        if not isinstance(prefix, str) or not prefix or len(prefix) > 100 or " " in prefix:
            raise InvalidSettings(f"prefix must be 1-100 characters without spaces: {prefix!r}")
        if isinstance(secrets, (str, bytes)):
            raise InvalidSettings("secrets is a list of secrets, not one secret")
        keys = tuple(s.encode() if isinstance(s, str) else s for s in secrets)
        for key in keys:
            if not isinstance(key, bytes) or len(key) < MIN_SECRET_BYTES:
                raise InvalidSettings(f"each secret needs at least {MIN_SECRET_BYTES} bytes")
        if not isinstance(max_clock_skew, (int, float)) or not 0 <= max_clock_skew < math.inf:
            raise InvalidSettings(f"max_clock_skew must be >= 0, not {max_clock_skew!r}")
        self.prefix = prefix
        self._secrets = keys
        self.max_clock_skew = float(max_clock_skew)
        self._magic = f"mxr{FORMAT_VERSION}".encode()

    @property
    def authenticated(self) -> bool:
        return bool(self._secrets)

    # --- keys --------------------------------------------------------------------

    def well_known_key(self, hostname: str) -> str:
        return f"{self.prefix}:v{FORMAT_VERSION}:wk:{hostname}"

    def dns_key(self, qname: str, rdtype: RecordType) -> str:
        return f"{self.prefix}:v{FORMAT_VERSION}:dns:{rdtype.value}:{qname}"

    # --- envelope ----------------------------------------------------------------

    def _seal(self, key: str, payload: dict[str, Any]) -> bytes:
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=True).encode()
        mac = self._mac(self._secrets[0], key, body) if self._secrets else b"-"
        return b" ".join((self._magic, mac, body))

    @staticmethod
    def _mac(secret: bytes, key: str, body: bytes) -> bytes:
        return hmac.new(secret, key.encode() + b"\0" + body, hashlib.sha256).hexdigest().encode()

    def _open(self, key: str, raw: object) -> tuple[dict[str, Any] | None, str | None]:
        if raw is None:
            return None, None
        if not isinstance(raw, bytes):
            return None, f"a {type(raw).__name__}, not bytes"
        if len(raw) > MAX_VALUE_BYTES:
            return None, f"{len(raw)} bytes, over the {MAX_VALUE_BYTES}-byte limit"
        parts = raw.split(b" ", 2)
        if len(parts) != 3:
            return None, "not a stored entry (no version, MAC and payload)"
        magic, mac, body = parts
        if magic != self._magic:
            shown = magic[:16].decode("ascii", "replace")
            return None, f"format {shown!r}, not {self._magic.decode()!r}"
        if self._secrets and not any(
            hmac.compare_digest(mac, self._mac(secret, key, body)) for secret in self._secrets
        ):
            return None, "the MAC does not match any configured secret"
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):
            return None, "the payload is not JSON"
        if not isinstance(payload, dict):
            return None, "the payload is not a JSON object"
        return payload, None

    # --- well-known entries ------------------------------------------------------------

    def encode_well_known(self, hostname: str, entry: WellKnownEntry) -> bytes:
        return self._seal(
            self.well_known_key(hostname),
            {
                "d": entry.delegation.text if entry.delegation is not None else None,
                "e": entry.error,
                "s": entry.stored_at,
                "x": entry.expires_at,
                "f": entry.failures,
                "g": entry.last_good.text if entry.last_good is not None else None,
                "gx": entry.last_good_expired_at,
                "u": entry.unavailable,
            },
        )

    def decode_well_known(
        self, hostname: str, raw: object, now: float, settings: Settings
    ) -> Decoded:
        """The entry stored for ``hostname``, checked as strictly as a fresh response."""
        payload, problem = self._open(self.well_known_key(hostname), raw)
        if payload is None:
            return Decoded(problem=problem) if problem else _ABSENT
        try:
            return Decoded(value=self._well_known_entry(payload, now, settings))
        except _Refused as exc:
            return Decoded(problem=str(exc))

    def _well_known_entry(
        self, p: dict[str, Any], now: float, settings: Settings
    ) -> WellKnownEntry:
        _keys(p, {"d", "e", "s", "x", "f", "g", "gx", "u"})
        delegation = _server_name(p["d"], "m.server")
        last_good = _server_name(p["g"], "last good m.server")
        error = p["e"]
        if error is not None and (not isinstance(error, str) or not 0 < len(error) <= MAX_TEXT):
            raise _Refused(f"error must be a string of 1-{MAX_TEXT} characters")
        if (delegation is None) == (error is None):
            raise _Refused("an entry has either a delegation or an error")
        stored_at, expires_at, last_good_expired_at = (
            _time(p["s"], "stored_at"),
            _time(p["x"], "expires_at"),
            _time(p["gx"], "last_good_expired_at"),
        )
        if stored_at > now + self.max_clock_skew:
            raise _Refused(f"stored {stored_at - now:.0f} s in the future")
        if expires_at < stored_at:
            raise _Refused("expires before it was stored")
        failures = p["f"]
        if not _is_int(failures) or not 0 <= failures <= MAX_FAILURES:
            raise _Refused(f"failures must be an integer in 0-{MAX_FAILURES}")
        if (delegation is None) != (failures > 0):
            raise _Refused("a delegation has no failures, and a failure at least one")
        if not isinstance(p["u"], bool):
            raise _Refused("unavailable must be a boolean")
        if delegation is not None and last_good != delegation:
            raise _Refused("a delegation is its own last good delegation")
        # The same caps as a fresh answer: no store can keep a name longer than we would.
        cap = settings.well_known_max_ttl if delegation else failure_lifetime(failures, settings)
        expires_at = min(expires_at, stored_at + cap)
        if last_good is None:
            last_good_expired_at = 0.0
        else:
            last_good_expired_at = min(
                last_good_expired_at, stored_at + settings.well_known_max_ttl
            )
        return WellKnownEntry(
            delegation=delegation,
            error=error,
            stored_at=stored_at,
            expires_at=expires_at,
            failures=failures,
            last_good=last_good,
            last_good_expired_at=last_good_expired_at,
            unavailable=p["u"],
        )

    # --- DNS answers ---------------------------------------------------------------------

    def encode_dns(
        self, qname: str, rdtype: RecordType, result: DnsResult, expires_at: float
    ) -> bytes:
        records: list[Any] = [
            [r.priority, r.weight, r.port, r.target] if isinstance(r, SrvRecord) else r
            for r in result.records
        ]
        return self._seal(
            self.dns_key(qname, rdtype),
            {"st": result.status.value, "r": records, "a": list(result.aliases), "x": expires_at},
        )

    def decode_dns(
        self, qname: str, rdtype: RecordType, raw: object, now: float, settings: Settings
    ) -> Decoded:
        """A fresh stored answer as ``(DnsResult, expires_at)``, checked like a fresh one.

        The result's TTL is what is left of the stored lifetime, so the resolver's
        own cache lets it go when the store does.
        """
        payload, problem = self._open(self.dns_key(qname, rdtype), raw)
        if payload is None:
            return Decoded(problem=problem) if problem else _ABSENT
        try:
            found = _dns_entry(payload, rdtype, now, settings)
        except _Refused as exc:
            return Decoded(problem=str(exc))
        return Decoded(value=found) if found is not None else _ABSENT


class _Refused(ValueError):
    """A stored value that breaks a rule; it is ignored and will be overwritten."""


def _keys(payload: dict[str, Any], wanted: set[str]) -> None:
    if set(payload) != wanted:
        raise _Refused(f"fields {sorted(payload)}, expected {sorted(wanted)}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _time(value: object, what: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not 0 <= value < 1e11  # POSIX seconds until the year 5138
    ):
        raise _Refused(f"{what} is not a time: {value!r}"[:200])
    return float(value)


def _server_name(value: object, what: str) -> ServerName | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_NAME + 8:
        raise _Refused(f"{what} is not a server name")
    try:
        return parse_server_name(value)
    except InvalidServerName as exc:
        raise _Refused(f"{what}: {exc.reason}") from None


def _hostname(value: object, what: str) -> str:
    """An absolute DNS name (or '.'), as the transports report them."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_NAME + 1:
        raise _Refused(f"{what} is not a DNS name")
    if value == ".":
        return value
    try:
        name = parse_server_name(value[:-1] if value.endswith(".") else value)
    except InvalidServerName as exc:
        raise _Refused(f"{what}: {exc.reason}") from None
    if name.kind is not HostKind.DNS or name.port is not None:
        raise _Refused(f"{what} must be a DNS name")
    return value


def _dns_entry(
    p: dict[str, Any], rdtype: RecordType, now: float, settings: Settings
) -> _DnsEntry | None:
    _keys(p, {"st", "r", "a", "x"})
    try:
        status = DnsStatus(p["st"])
    except ValueError:
        raise _Refused(f"unknown DNS status {p['st']!r}"[:200]) from None
    if status not in _SHARED_STATUSES:
        raise _Refused(f"{status.value} is not shared (it may be one worker's trouble)")
    expires_at = _time(p["x"], "expires_at")
    remaining = min(expires_at - now, settings.dns_max_ttl)
    records_raw, aliases_raw = p["r"], p["a"]
    if not isinstance(records_raw, list) or len(records_raw) > MAX_RECORDS:
        raise _Refused(f"records must be a list of at most {MAX_RECORDS}")
    if not isinstance(aliases_raw, list) or len(aliases_raw) > MAX_ALIASES:
        raise _Refused(f"aliases must be a list of at most {MAX_ALIASES}")
    records = tuple(_record(rdtype, r) for r in records_raw)
    aliases = tuple(_hostname(a, "an alias") for a in aliases_raw)
    if (status is DnsStatus.NOERROR) != bool(records):
        raise _Refused("NOERROR comes with records, and only NOERROR")
    if remaining < 1:  # gone, or about to be: ask DNS
        return None
    ttl = int(remaining)
    result = DnsResult(
        status=status,
        records=records,
        ttl=ttl,
        aliases=aliases,
        message=f"from the shared store, {ttl} s left",
    )
    return result, now + ttl


def _record(rdtype: RecordType, raw: object) -> str | SrvRecord:
    if rdtype is RecordType.SRV:
        if not isinstance(raw, list) or len(raw) != 4 or not all(_is_int(v) for v in raw[:3]):
            raise _Refused("an SRV record is [priority, weight, port, target]")
        try:
            return SrvRecord(
                priority=raw[0], weight=raw[1], port=raw[2], target=_hostname(raw[3], "a target")
            )
        except ValueError as exc:
            raise _Refused(str(exc)) from None
    if rdtype is RecordType.CNAME:
        return _hostname(raw, "a CNAME target")
    if not isinstance(raw, str) or len(raw) > 45:
        raise _Refused("an address record is a string")
    try:
        ip = ipaddress.ip_address(raw)
    except ValueError:
        raise _Refused(f"{raw!r} is not an IP address") from None
    if ip.version != (4 if rdtype is RecordType.A else 6):
        raise _Refused(f"{raw} is not an {rdtype.value} address")
    return str(ip)


# --- the circuit breaker --------------------------------------------------------------


class Breaker:
    """Stops calling a store that just failed, for a while that grows while it keeps failing.

    Closed, every call goes through. After a failure it opens for ``initial``
    seconds, doubling per consecutive failure up to ``maximum``; the first call
    after that is a probe, and one success closes it. Times are the caller's
    (monotonic) clock; nothing here reads one.
    """

    __slots__ = ("_open_until", "failures", "initial", "maximum")

    def __init__(self, *, initial: float = 0.5, maximum: float = 15.0) -> None:
        if not 0 < initial <= maximum < math.inf:
            raise InvalidSettings("need 0 < initial <= maximum for the store's back-off")
        self.initial = float(initial)
        self.maximum = float(maximum)
        self.failures = 0
        self._open_until = -math.inf

    def allows(self, now: float) -> bool:
        return now >= self._open_until

    def failed(self, now: float) -> None:
        self.failures += 1
        wait = self.initial * 2 ** min(self.failures - 1, 32)
        self._open_until = now + min(wait, self.maximum)

    def succeeded(self) -> None:
        self.failures = 0
        self._open_until = -math.inf

    @property
    def is_open(self) -> bool:
        return self.failures > 0

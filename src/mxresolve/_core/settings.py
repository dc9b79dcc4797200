"""Settings: cache periods, limits, and the interpretations users may disagree on.

Defaults are the spec's recommendations where it has one (24 h well-known
default, 48 h cap, errors cached at most 1 h) and documented choices elsewhere
(docs/interpretations.md names the vector that pins each one).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum

from .errors import InvalidSettings

__all__ = ["IpPolicy", "Settings", "SrvFailurePolicy", "SrvTargetAliasPolicy", "SrvDotPolicy"]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class SrvFailurePolicy(str, Enum):
    """What a SERVFAIL, REFUSED or timeout on an SRV lookup means."""

    AS_ABSENT = "as_absent"  # no record found: continue to the next step (Synapse does this)
    FAIL = "fail"  # end the resolution with dns_failure


class SrvDotPolicy(str, Enum):
    """What an SRV answer whose only target is "." means (RFC 2782: service not offered)."""

    UNAVAILABLE = "unavailable"  # end with service_unavailable
    AS_ABSENT = "as_absent"  # treat as no record: continue to the next step


class SrvTargetAliasPolicy(str, Enum):
    """What to do with an SRV target that is a CNAME (RFC 2782 forbids it)."""

    FOLLOW = "follow"  # use the addresses the alias leads to, with a trace warning
    REFUSE = "refuse"  # drop that target


def _network(text: str, what: str) -> _Network:
    try:
        return ipaddress.ip_network(text, strict=False)
    except (ValueError, TypeError):
        raise InvalidSettings(f"{what}: {text!r} is not a CIDR network") from None


@dataclass(frozen=True, slots=True)
class IpPolicy:
    """Which addresses may be connected to (targets and the well-known host alike).

    An address is allowed if it is in ``allow``; otherwise it is refused if it
    is in ``deny`` or, with ``refuse_special`` (the default), if it is loopback,
    private, link-local, multicast, reserved, unspecified or otherwise not
    globally routable. IPv4-mapped IPv6 addresses are judged as their IPv4 form.
    """

    allow: tuple[_Network, ...] = ()
    deny: tuple[_Network, ...] = ()
    refuse_special: bool = True

    @classmethod
    def from_cidrs(
        cls, allow: Iterable[str] = (), deny: Iterable[str] = (), *, refuse_special: bool = True
    ) -> IpPolicy:
        if isinstance(allow, str) or isinstance(deny, str):
            raise InvalidSettings("allow and deny take a list of CIDR strings, not one string")
        return cls(
            allow=tuple(_network(c, "allow_ips") for c in allow),
            deny=tuple(_network(c, "deny_ips") for c in deny),
            refuse_special=refuse_special,
        )

    @classmethod
    def allow_all(cls) -> IpPolicy:
        return cls(refuse_special=False)

    # ipaddress's is_private scans a list per call (5-15 us); policies are frozen
    # and hashable, and a busy server meets the same addresses again and again.
    @functools.lru_cache(maxsize=4096)  # noqa: B019 - policies live as long as resolvers
    def refusal(self, address: str) -> str | None:
        """Why ``address`` is refused, or ``None`` if it may be used."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return f"{address!r} is not an IP address"
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in net for net in self.allow):
            return None
        if any(ip in net for net in self.deny):
            return f"{ip} is in a denied range"
        # is_global alone lets multicast through (it is "global" to Python).
        if self.refuse_special and (not ip.is_global or ip.is_multicast):
            return f"{ip} is not a public address ({_special_kind(ip)})"
        return None


def _special_kind(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    for attr, name in (
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local"),
        ("is_multicast", "multicast"),
        ("is_unspecified", "unspecified"),
        ("is_private", "private"),
        ("is_reserved", "reserved"),
    ):
        if getattr(ip, attr):
            return name
    return "non-global"


@dataclass(frozen=True, kw_only=True, slots=True)
class Settings:
    """Everything tunable about a resolution. Periods are in seconds.

    Well-known cache (spec v1.19 step 3):
        well_known_default_ttl: a valid response without cache headers (24 h).
        well_known_max_ttl: the cap on any response's lifetime (48 h).
        well_known_min_ttl: the floor, so ``no-store``/``max-age=0`` cannot force a
            fetch per request (5 min; 0 makes no-store mean "not cached").
        failure_initial_ttl: how long the first failure is cached (1 min).
        failure_backoff_factor: growth per consecutive failure (2).
        failure_max_ttl: the cap on a failure's lifetime (1 h, the spec's ceiling).
        stale_if_error: after a network failure, keep using a delegation that
            expired less than this long ago (1 h; 0 disables).

    DNS cache:
        dns_min_ttl / dns_max_ttl: bounds on a positive answer's TTL.
        dns_negative_ttl: NXDOMAIN/NODATA lifetime when the answer gives none.
        dns_failure_ttl: how long SERVFAIL/timeouts are remembered (0 disables).

    Limits:
        max_redirects, max_body_bytes, max_srv_records, max_cname_chain,
        max_addresses_per_name, deadline (whole resolution, seconds).

    Round trips (asking early never changes which answer wins; docs/interpretations.md):
        resolve_well_known_host: resolve the well-known host's AAAA/A in the machine,
            through the one DNS cache, and hand the addresses to the HTTPS fetch
            (off: the HTTPS transport resolves the host itself, e.g. behind a proxy).
        srv_with_well_known: look up the server name's SRV records (and their targets'
            addresses) while its well-known is fetched; used only if step 4 is reached.
        legacy_srv_with_srv: look up ``_matrix._tcp`` alongside ``_matrix-fed._tcp``.
        addresses_with_srv: look up a name's AAAA/A alongside its SRV records (for
            steps 3.5 and 6).
        max_concurrent_requests: the most requests of one resolution a driver has out
            at once (1: one after the other). Neither driver starts threads (I-40).

    Interpretations:
        legacy_srv: look up the deprecated ``_matrix._tcp`` (steps 3.4 and 5).
        srv_failure, srv_dot, srv_target_alias: see their enums.
        ip_policy: which addresses may be used.
    """

    well_known_default_ttl: float = 86400.0
    well_known_max_ttl: float = 172800.0
    well_known_min_ttl: float = 300.0
    failure_initial_ttl: float = 60.0
    failure_backoff_factor: float = 2.0
    failure_max_ttl: float = 3600.0
    stale_if_error: float = 3600.0

    dns_min_ttl: float = 0.0
    dns_max_ttl: float = 86400.0
    dns_negative_ttl: float = 300.0
    dns_failure_ttl: float = 30.0

    max_redirects: int = 10
    max_body_bytes: int = 51200
    max_srv_records: int = 32
    max_cname_chain: int = 8
    max_addresses_per_name: int = 16
    deadline: float = 60.0

    resolve_well_known_host: bool = True
    srv_with_well_known: bool = True
    legacy_srv_with_srv: bool = True
    addresses_with_srv: bool = True
    max_concurrent_requests: int = 8

    legacy_srv: bool = True
    srv_failure: SrvFailurePolicy = SrvFailurePolicy.AS_ABSENT
    srv_dot: SrvDotPolicy = SrvDotPolicy.UNAVAILABLE
    srv_target_alias: SrvTargetAliasPolicy = SrvTargetAliasPolicy.FOLLOW
    ip_policy: IpPolicy = field(default_factory=IpPolicy)

    def __post_init__(self) -> None:
        for name in (
            "well_known_default_ttl",
            "well_known_max_ttl",
            "well_known_min_ttl",
            "failure_initial_ttl",
            "failure_max_ttl",
            "stale_if_error",
            "dns_min_ttl",
            "dns_max_ttl",
            "dns_negative_ttl",
            "dns_failure_ttl",
        ):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
                raise InvalidSettings(f"{name} must be a finite number >= 0, not {value!r}")
        if not self.well_known_min_ttl <= self.well_known_default_ttl <= self.well_known_max_ttl:
            raise InvalidSettings(
                "need well_known_min_ttl <= well_known_default_ttl <= well_known_max_ttl"
            )
        if not 0 < self.failure_initial_ttl <= self.failure_max_ttl:
            raise InvalidSettings("need 0 < failure_initial_ttl <= failure_max_ttl")
        factor = self.failure_backoff_factor
        if not isinstance(factor, (int, float)) or isinstance(factor, bool) or not factor >= 1:
            raise InvalidSettings("failure_backoff_factor must be >= 1 (back-off never shrinks)")
        if self.dns_min_ttl > self.dns_max_ttl:
            raise InvalidSettings("need dns_min_ttl <= dns_max_ttl")
        for name in (
            "max_redirects",
            "max_body_bytes",
            "max_srv_records",
            "max_cname_chain",
            "max_addresses_per_name",
            "max_concurrent_requests",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise InvalidSettings(f"{name} must be an integer >= 0, not {value!r}")
        if self.max_srv_records < 1 or self.max_addresses_per_name < 1:
            raise InvalidSettings("max_srv_records and max_addresses_per_name must be >= 1")
        if self.max_concurrent_requests < 1:
            raise InvalidSettings("max_concurrent_requests must be >= 1")
        if not isinstance(self.deadline, (int, float)) or not 0 < self.deadline < float("inf"):
            raise InvalidSettings(f"deadline must be a positive number, not {self.deadline!r}")
        if not isinstance(self.ip_policy, IpPolicy):
            raise InvalidSettings("ip_policy must be an IpPolicy")

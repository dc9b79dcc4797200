"""How long a valid well-known response stays fresh (spec v1.19 step 3, RFC 9111).

"Servers should respect the cache control headers present on the response, or
use a sensible default when headers are not present. The recommended sensible
default is 24 hours. Servers should additionally impose a maximum cache time
for responses: 48 hours is recommended."

We are a private cache, so ``s-maxage`` and ``public``/``private`` do not apply.
We can never revalidate (there is no conditional request in the algorithm), so
``no-cache`` means the same as ``no-store``: fresh for as short as we allow.
"""

from __future__ import annotations

from dataclasses import dataclass

from .events import HttpsResponse

__all__ = ["Freshness", "freshness_lifetime", "parse_cache_control"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Freshness:
    """A lifetime in seconds, and which header (if any) it came from."""

    seconds: float | None  # None: the response says nothing usable
    source: str


def parse_cache_control(value: str) -> dict[str, str | None]:
    """Split a ``Cache-Control`` value into lower-cased directives.

    Tolerant by design: a malformed directive is skipped, never raised on.
    """
    directives: dict[str, str | None] = {}
    for part in value.split(","):
        name, sep, arg = part.strip().partition("=")
        name = name.strip().lower()
        if not name or not all(c.isalnum() or c in "-_" for c in name):
            continue
        if sep:
            arg = arg.strip()
            if len(arg) >= 2 and arg[0] == arg[-1] == '"':
                arg = arg[1:-1]
            directives.setdefault(name, arg)
        else:
            directives.setdefault(name, None)
    return directives


def _delta_seconds(value: str | None) -> int | None:
    # RFC 9111 §1.2.2: 1*DIGIT; huge values saturate rather than overflow.
    if value is None or not value.isascii() or not value.isdigit():
        return None
    return min(int(value), 2**31)


def _http_date(value: str | None) -> float | None:
    if value is None:
        return None
    # Imported here: email.utils is costly to import (email, datetime, calendar...)
    # and only a response with an Expires header needs it.
    from email.utils import parsedate_to_datetime

    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:  # RFC 9110 dates are always GMT
        return None
    try:
        return parsed.timestamp()
    except (OverflowError, OSError, ValueError):
        return None


def freshness_lifetime(response: HttpsResponse, now: float) -> Freshness:
    """The response's own freshness lifetime, before our floor and cap.

    Order of precedence (RFC 9111 §4.2.1): ``no-store``/``no-cache``, then
    ``max-age``, then ``Expires`` (relative to ``Date`` if present, else to
    ``now``). An invalid ``Expires`` means "already expired" (§5.3). ``Age`` is
    subtracted from the lifetime.
    """
    cache_control: dict[str, str | None] = {}
    for value in response.header_values("cache-control"):
        for key, arg in parse_cache_control(value).items():
            cache_control.setdefault(key, arg)

    if "no-store" in cache_control:
        return Freshness(seconds=0.0, source="Cache-Control: no-store")
    if "no-cache" in cache_control:
        return Freshness(seconds=0.0, source="Cache-Control: no-cache")

    age = _delta_seconds(response.header("age")) or 0
    if "max-age" in cache_control:
        max_age = _delta_seconds(cache_control["max-age"])
        if max_age is not None:
            return Freshness(seconds=float(max(max_age - age, 0)), source="Cache-Control: max-age")

    expires_header = response.header("expires")
    if expires_header is not None:
        expires = _http_date(expires_header)
        if expires is None:
            return Freshness(seconds=0.0, source="Expires (invalid, so already expired)")
        date = _http_date(response.header("date"))
        base = date if date is not None else now
        return Freshness(seconds=max(expires - base - age, 0.0), source="Expires")

    return Freshness(seconds=None, source="no cache headers")

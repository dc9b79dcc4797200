"""The well-known document: its URL, its redirects, and what makes a body valid.

Spec v1.19 step 3: "a regular HTTPS request is made to
``https://<hostname>/.well-known/matrix/server`` ... 30x redirects should be
followed, however redirection loops should be avoided ... If the response is
invalid (bad JSON, missing properties, non-200 response, etc), skip to step 4."

The schema (``data/api/server-server/wellknown.yaml``): a JSON object whose
``m.server`` string uses the server-name grammar; "servers parsing the response
should assume that the body is JSON regardless of type", so Content-Type is
never checked.
"""

from __future__ import annotations

import json

from .errors import InvalidServerName
from .events import HttpsGet
from .grammar import ServerName, parse_server_name

__all__ = [
    "REDIRECT_STATUSES",
    "WELL_KNOWN_PATH",
    "InvalidWellKnown",
    "RedirectRefused",
    "parse_well_known_body",
    "redirect_request",
    "well_known_request",
]

WELL_KNOWN_PATH = "/.well-known/matrix/server"
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


class InvalidWellKnown(Exception):
    """A well-known body that is not a valid delegation (internal: becomes step 4)."""


class RedirectRefused(Exception):
    """A redirect we will not follow (internal: the fetch counts as an error)."""


def well_known_request(host: str, max_body_bytes: int) -> HttpsGet:
    """The first request of step 3, for a DNS hostname (already normalised)."""
    return HttpsGet(
        url=f"https://{host}{WELL_KNOWN_PATH}",
        host=host,
        port=443,
        target=WELL_KNOWN_PATH,
        host_header=host,
        max_body_bytes=max_body_bytes,
    )


def redirect_request(current: HttpsGet, location: str | None) -> HttpsGet:
    """The next hop for a 30x with ``Location``, or :class:`RedirectRefused`.

    Relative references resolve against the current URL (RFC 9110 §10.2.2).
    Only ``https:`` is followed: a redirect to ``http:`` would drop the
    certificate check the spec requires ("use normal X.509 certificate
    validation"), so it is refused rather than downgraded.
    """
    if location is None or not location.strip():
        raise RedirectRefused("the redirect has no Location header")
    location = location.strip()
    if not location.isascii() or any(ord(c) < 0x21 for c in location):
        raise RedirectRefused(f"the Location {location!r} has characters a URL cannot contain")
    from urllib.parse import urljoin, urlsplit  # here: only a redirect needs it

    try:
        url = urljoin(current.url, location)
        parts = urlsplit(url)
    except ValueError as exc:
        raise RedirectRefused(f"the Location {location!r} is not a valid URL: {exc}") from None
    if parts.scheme.lower() != "https":
        raise RedirectRefused(
            f"the redirect to {url!r} is not https: following it would downgrade security"
        )
    if "@" in parts.netloc:
        raise RedirectRefused(f"the redirect to {url!r} carries credentials")
    try:
        authority = parse_server_name(parts.netloc)
    except InvalidServerName as exc:
        raise RedirectRefused(
            f"the redirect to {url!r} has an invalid host: {exc.reason}"
        ) from None
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    port = authority.port or 443
    return HttpsGet(
        url=f"https://{parts.netloc}{target}",
        host=authority.host,
        port=port,
        target=target,
        host_header=authority.hostname if authority.port is None else authority.text,
        max_body_bytes=current.max_body_bytes,
    )


def parse_well_known_body(body: bytes) -> ServerName:
    """The delegated server name in a 200 response body, or :class:`InvalidWellKnown`."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
        # ValueError covers bad JSON and undecodable bytes.
        raise InvalidWellKnown(f"the body is not JSON ({type(exc).__name__})") from None
    if not isinstance(document, dict):
        raise InvalidWellKnown(f"the body is a JSON {_json_type(document)}, not an object")
    if "m.server" not in document:
        raise InvalidWellKnown("the JSON object has no m.server property")
    value = document["m.server"]
    if not isinstance(value, str):
        raise InvalidWellKnown(f"m.server is a JSON {_json_type(value)}, not a string")
    try:
        return parse_server_name(value)
    except InvalidServerName as exc:
        where = f" at offset {exc.offset}" if exc.offset is not None else ""
        raise InvalidWellKnown(
            f"m.server {value!r} is not a valid server name: {exc.reason}{where}"
        ) from None


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"

"""Client server discovery, sans-I/O (client-server API v1.19, "Server Discovery").

The spec's steps, as :class:`ClientDiscoveryMachine` runs them:

1. Take the server name from a user ID (split at the first colon), or use the
   server name given.
2. Take the hostname from the server name (the grammar's ``hostname``).
3. ``GET https://<hostname>/.well-known/matrix/client``:

   a. 404: ``IGNORE``.
   b. Not 200, or an empty body: ``FAIL_PROMPT``.
   c. Not a JSON object: ``FAIL_PROMPT``.
   d. No ``m.homeserver.base_url``: ``FAIL_PROMPT``.
   e. ``base_url`` not a URL, or ``<base_url>/_matrix/client/versions`` not a
      valid versions response: ``FAIL_ERROR``.
   f. ``m.identity_server`` present without ``base_url``: ``FAIL_PROMPT``; with
      one that fails ``<base_url>/_matrix/identity/v2``: ``FAIL_ERROR``.

Otherwise the outcome is ``SUCCESS`` (the spec leaves it unnamed). Optionally
the support file (``/.well-known/matrix/support``, spec v1.19 "Getting the
support information for a server") is fetched alongside. Decisions the spec
leaves open are in docs/interpretations.md (I-43 to I-47).

Like :class:`~mxresolve.ResolutionMachine`: :meth:`~ClientDiscoveryMachine.next_event`
hands out :class:`~mxresolve.HttpsGet` requests, :meth:`~ClientDiscoveryMachine.receive`
takes their outcomes, and the last event is a :class:`ClientDiscovery`. No
sockets, no clock, no randomness.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Generator
from dataclasses import dataclass
from enum import Enum
from typing import Any
from urllib.parse import urlsplit

from .errors import InvalidServerName, LocalProtocolError
from .events import NEED_RESULTS, HttpsFailure, HttpsGet, HttpsResponse, NeedResults, Outcome
from .grammar import ServerName, parse_server_name
from .wellknown import REDIRECT_STATUSES, RedirectRefused, redirect_request

__all__ = [
    "CLIENT_WELL_KNOWN_PATH",
    "IDENTITY_PATH",
    "SUPPORT_PATH",
    "VERSIONS_PATH",
    "ClientDiscovery",
    "ClientDiscoveryMachine",
    "ClientOutcome",
    "ClientTraceEvent",
    "SupportContact",
    "SupportFile",
]

CLIENT_WELL_KNOWN_PATH = "/.well-known/matrix/client"
SUPPORT_PATH = "/.well-known/matrix/support"
VERSIONS_PATH = "/_matrix/client/versions"
IDENTITY_PATH = "/_matrix/identity/v2"


class ClientOutcome(str, Enum):
    """How discovery ended (spec v1.19 names the last three)."""

    SUCCESS = "SUCCESS"  # use homeserver_base_url
    IGNORE = "IGNORE"  # no client well-known: carry on with what the user gave
    FAIL_PROMPT = "FAIL_PROMPT"  # invalid or empty data: ask the user for the homeserver
    FAIL_ERROR = "FAIL_ERROR"  # valid data, but no usable server: stop the login

    def __str__(self) -> str:
        return str(self.value)


@dataclass(frozen=True, kw_only=True, slots=True)
class ClientTraceEvent:
    """One line of a discovery's story; ``step`` is the spec's ("3", "3b", "3e"...)."""

    step: str
    message: str
    request: HttpsGet | None = None
    outcome: Outcome | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"step": self.step, "message": self.message}
        if self.request is not None:
            out["request"] = self.request.to_json()
        if self.outcome is not None:
            out["outcome"] = self.outcome.to_json()
        return out


@dataclass(frozen=True, kw_only=True, slots=True)
class SupportContact:
    role: str
    matrix_id: str | None = None
    email_address: str | None = None

    def to_json(self) -> dict[str, str]:
        out = {"role": self.role}
        if self.matrix_id is not None:
            out["matrix_id"] = self.matrix_id
        if self.email_address is not None:
            out["email_address"] = self.email_address
        return out


@dataclass(frozen=True, kw_only=True, slots=True)
class SupportFile:
    """A valid ``/.well-known/matrix/support`` document."""

    contacts: tuple[SupportContact, ...] = ()
    support_page: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ClientDiscovery:
    """The result of client discovery.

    Attributes:
        server_name: the server name discovery started from.
        outcome: the spec's outcome.
        step: the step that decided it ("3a" ... "3f"; "3" for SUCCESS).
        reason: why, in a sentence (empty for SUCCESS).
        homeserver_base_url: with SUCCESS, the validated base URL (no trailing slash).
        identity_server_base_url: the validated identity server, if one is advertised.
        versions: the homeserver's ``versions``, once validated.
        well_known: the final response for the client well-known, if one came
            (its headers say, for example, whether CORS is offered).
        support: the support file, if asked for and valid; ``support_error`` says
            why it is not (``None`` when it is valid or absent with a 404).
        trace: how the outcome was reached.
    """

    server_name: str
    outcome: ClientOutcome
    step: str
    reason: str
    homeserver_base_url: str | None
    identity_server_base_url: str | None
    versions: tuple[str, ...]
    well_known: HttpsResponse | None
    support: SupportFile | None
    support_error: str | None
    support_status: int | None
    trace: tuple[ClientTraceEvent, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "server_name": self.server_name,
            "outcome": self.outcome.value,
            "step": self.step,
            "reason": self.reason,
            "homeserver_base_url": self.homeserver_base_url,
            "identity_server_base_url": self.identity_server_base_url,
            "versions": list(self.versions),
            "support": None
            if self.support is None
            else {
                "contacts": [c.to_json() for c in self.support.contacts],
                "support_page": self.support.support_page,
            },
            "support_error": self.support_error,
            "trace": [e.to_json() for e in self.trace],
        }


class _Decided(Exception):
    """Internal: the outcome is known (raised from deep in a step)."""

    def __init__(self, outcome: ClientOutcome, step: str, reason: str) -> None:
        super().__init__(reason)
        self.outcome = outcome
        self.step = step
        self.reason = reason


_Gen = Generator[tuple[HttpsGet, ...], tuple[Outcome, ...], None]


def server_name_of(user_id_or_server_name: str) -> ServerName:
    """Step 1: a user ID's server name (split at the first colon), or the name itself."""
    if not isinstance(user_id_or_server_name, str):
        raise InvalidServerName(
            repr(user_id_or_server_name),
            f"expected a string, got {type(user_id_or_server_name).__name__}",
        )
    text = user_id_or_server_name
    if text.startswith("@"):
        localpart, colon, rest = text.partition(":")
        if not colon or len(localpart) < 2:
            raise InvalidServerName(text, "a user ID is @localpart:server_name")
        text = rest
    return parse_server_name(text)


class ClientDiscoveryMachine:
    """Client server discovery without I/O. Drive it like the resolution machine.

    Args:
        user_id_or_server_name: ``@bot:example.org`` or ``example.org``. An
            invalid one raises :class:`~mxresolve.InvalidServerName` here.
        support: also fetch ``/.well-known/matrix/support``.
        no_response: the outcome when the client well-known gets no HTTP response
            at all (I-43): ``FAIL_PROMPT`` (the default) or ``IGNORE`` (as a 404).
        max_redirects: redirects followed per URL.
        max_body_bytes: the largest body read for any of the documents.
    """

    def __init__(
        self,
        user_id_or_server_name: str,
        *,
        support: bool = False,
        no_response: ClientOutcome = ClientOutcome.FAIL_PROMPT,
        max_redirects: int = 10,
        max_body_bytes: int = 51200,
    ) -> None:
        self.server_name = server_name_of(user_id_or_server_name)
        if no_response not in (ClientOutcome.FAIL_PROMPT, ClientOutcome.IGNORE):
            raise ValueError(f"no_response must be FAIL_PROMPT or IGNORE, not {no_response!r}")
        self._no_response = ClientOutcome(no_response)
        for name, value in (("max_redirects", max_redirects), ("max_body_bytes", max_body_bytes)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, not {value!r}")
        self._support = support
        self._max_redirects = max_redirects
        self._max_body_bytes = max_body_bytes
        self._trace: list[ClientTraceEvent] = []
        self._to_hand_out: deque[HttpsGet] = deque()
        self._batch: tuple[HttpsGet, ...] = ()
        self._outcomes: dict[HttpsGet, Outcome] = {}
        self._result: ClientDiscovery | None = None
        # Filled in as the steps go.
        self._homeserver: str | None = None
        self._identity: str | None = None
        self._versions: tuple[str, ...] = ()
        self._well_known: HttpsResponse | None = None
        self._support_file: SupportFile | None = None
        self._support_error: str | None = None
        self._support_status: int | None = None
        self._generator = self._run()
        self._advance(None)

    # --- the protocol -------------------------------------------------------------------

    def next_event(self) -> HttpsGet | NeedResults | ClientDiscovery:
        if self._result is not None:
            return self._result
        if self._to_hand_out:
            return self._to_hand_out.popleft()
        return NEED_RESULTS

    def receive(self, request: HttpsGet, outcome: Outcome) -> None:
        if request not in self._batch or request in self._outcomes:
            raise LocalProtocolError(f"not waiting for an outcome of {request}")
        if request in self._to_hand_out:
            raise LocalProtocolError(f"{request} has not been handed out by next_event() yet")
        if not isinstance(outcome, (HttpsResponse, HttpsFailure)):
            raise LocalProtocolError(f"{request} needs an HTTPS outcome, not {outcome!r}")
        self._outcomes[request] = outcome
        self._note("3", f"{request} -> {outcome}", request=request, outcome=outcome)
        if len(self._outcomes) == len(self._batch):
            outcomes = tuple(self._outcomes[r] for r in self._batch)
            self._batch, self._outcomes = (), {}
            self._advance(outcomes)

    @property
    def trace(self) -> tuple[ClientTraceEvent, ...]:
        return tuple(self._trace)

    # --- driving ------------------------------------------------------------------------

    def _advance(self, outcomes: tuple[Outcome, ...] | None) -> None:
        try:
            batch = next(self._generator) if outcomes is None else self._generator.send(outcomes)
        except StopIteration:
            self._finish(ClientOutcome.SUCCESS, "3", "")
            return
        except _Decided as decided:
            self._finish(decided.outcome, decided.step, decided.reason)
            return
        self._batch = batch
        self._to_hand_out.extend(batch)

    def _finish(self, outcome: ClientOutcome, step: str, reason: str) -> None:
        self._note(step, f"{outcome.value}" + (f": {reason}" if reason else ""))
        self._result = ClientDiscovery(
            server_name=self.server_name.text,
            outcome=outcome,
            step=step,
            reason=reason,
            homeserver_base_url=self._homeserver if outcome is ClientOutcome.SUCCESS else None,
            identity_server_base_url=self._identity if outcome is ClientOutcome.SUCCESS else None,
            versions=self._versions,
            well_known=self._well_known,
            support=self._support_file,
            support_error=self._support_error,
            support_status=self._support_status,
            trace=tuple(self._trace),
        )

    def _note(
        self,
        step: str,
        message: str,
        *,
        request: HttpsGet | None = None,
        outcome: Outcome | None = None,
    ) -> None:
        self._trace.append(
            ClientTraceEvent(step=step, message=message, request=request, outcome=outcome)
        )

    # --- the steps ----------------------------------------------------------------------

    def _get(self, host: str, port: int, path: str, authority: str) -> HttpsGet:
        return HttpsGet(
            url=f"https://{authority}{path}",
            host=host,
            port=port,
            target=path,
            host_header=authority,
            max_body_bytes=self._max_body_bytes,
        )

    def _run(self) -> _Gen:
        name = self.server_name
        self._note("1", f"the server name is {name.text!r}")
        # Step 2: the hostname, without the port: the well-known is always on 443.
        self._note("2", f"the hostname is {name.hostname!r}")
        client = self._get(name.host, 443, CLIENT_WELL_KNOWN_PATH, name.hostname)
        batch = [client]
        if self._support:
            batch.append(self._get(name.host, 443, SUPPORT_PATH, name.hostname))
        results = yield from self._fetch_all(batch)
        if self._support:
            self._read_support(results[1])
        response = results[0]
        document = self._client_document(response)
        homeserver = document.get("m.homeserver")
        if not isinstance(homeserver, dict) or not isinstance(homeserver.get("base_url"), str):
            what = (
                "has no m.homeserver object"
                if not isinstance(homeserver, dict)
                else ("has no m.homeserver.base_url string")
            )
            raise _Decided(ClientOutcome.FAIL_PROMPT, "3d", f"the client well-known {what}")
        hs_url = homeserver["base_url"]
        hs_base = _base_url(hs_url, "m.homeserver.base_url", "3e")
        # Step 3f is judged after 3e, but both URLs are checked at once.
        identity = _identity_base(document)
        checks = [self._url_get(hs_base, VERSIONS_PATH)]
        if isinstance(identity, str):
            checks.append(self._url_get(identity, IDENTITY_PATH))
        self._note("3e", f"validating {hs_base} through {VERSIONS_PATH}")
        validated = yield from self._fetch_all(checks)
        self._versions = _versions(validated[0], hs_base)
        self._homeserver = hs_base
        if isinstance(identity, _Decided):
            raise identity
        if identity is not None:
            _identity_ok(validated[1], identity)
            self._identity = identity

    def _client_document(self, response: Outcome) -> dict[str, Any]:
        """Steps 3a to 3c: the client well-known as a JSON object, or the outcome."""
        if isinstance(response, HttpsFailure):
            raise _Decided(
                self._no_response,
                "3b" if self._no_response is ClientOutcome.FAIL_PROMPT else "3a",
                f"no response from {self.server_name.hostname} for the client well-known "
                f"({response})",
            )
        assert isinstance(response, HttpsResponse)
        self._well_known = response
        if response.status == 404:
            raise _Decided(ClientOutcome.IGNORE, "3a", "the client well-known answered 404")
        if response.status != 200:
            raise _Decided(
                ClientOutcome.FAIL_PROMPT,
                "3b",
                f"the client well-known answered HTTP {response.status}, not 200",
            )
        if not response.body.strip():
            raise _Decided(ClientOutcome.FAIL_PROMPT, "3b", "the client well-known is empty")
        try:
            document = json.loads(response.body)
        except (ValueError, RecursionError):
            raise _Decided(
                ClientOutcome.FAIL_PROMPT, "3c", "the client well-known is not JSON"
            ) from None
        if not isinstance(document, dict):
            raise _Decided(
                ClientOutcome.FAIL_PROMPT, "3c", "the client well-known is not a JSON object"
            )
        return document

    def _url_get(self, base: str, path: str) -> HttpsGet:
        parts = urlsplit(base)
        authority = parse_server_name(parts.netloc)
        return self._get(authority.host, authority.port or 443, parts.path + path, parts.netloc)

    def _fetch_all(
        self, requests: list[HttpsGet]
    ) -> Generator[tuple[HttpsGet, ...], tuple[Outcome, ...], list[Outcome]]:
        """GET each URL concurrently, following https redirects one hop at a time."""
        current = list(requests)
        final: list[Outcome | None] = [None] * len(current)
        visited = [{r.url} for r in current]
        hops = [0] * len(current)
        while True:
            waiting = [i for i, f in enumerate(final) if f is None]
            if not waiting:
                return [f for f in final if f is not None]
            outcomes = yield tuple(current[i] for i in waiting)
            for i, outcome in zip(waiting, outcomes, strict=True):
                if not (isinstance(outcome, HttpsResponse) and outcome.status in REDIRECT_STATUSES):
                    final[i] = outcome
                    continue
                try:
                    if hops[i] >= self._max_redirects:
                        raise RedirectRefused(f"more than {self._max_redirects} redirects")
                    nxt = redirect_request(current[i], outcome.header("location"))
                    if nxt.url in visited[i]:
                        raise RedirectRefused(f"redirect loop: {nxt.url} was already visited")
                except RedirectRefused as exc:
                    self._note("3", f"not following the redirect from {current[i].url}: {exc}")
                    final[i] = outcome  # a 30x is "not 200"; the step decides what that means
                    continue
                self._note("3", f"HTTP {outcome.status}: following to {nxt.url}")
                visited[i].add(nxt.url)
                hops[i] += 1
                current[i] = nxt

    def _read_support(self, outcome: Outcome) -> None:
        if isinstance(outcome, HttpsFailure):
            self._support_error = f"no response for the support file ({outcome})"
            return
        assert isinstance(outcome, HttpsResponse)
        self._support_status = outcome.status
        try:
            self._support_file = parse_support(outcome)
        except ValueError as exc:
            self._support_error = str(exc)


def _base_url(value: str, what: str, step: str) -> str:
    """A base URL as the spec's step 3e.i checks it, without its trailing slash."""
    try:
        parts = urlsplit(value.strip())
        scheme = parts.scheme.lower()
        netloc = parts.netloc
    except ValueError:
        raise _Decided(ClientOutcome.FAIL_ERROR, step, f"{what} {value!r} is not a URL") from None
    if scheme not in ("https", "http") or not netloc:
        raise _Decided(ClientOutcome.FAIL_ERROR, step, f"{what} {value!r} is not an http(s) URL")
    if scheme != "https":
        raise _Decided(
            ClientOutcome.FAIL_ERROR,
            step,
            f"{what} {value!r} is not https: discovery found over TLS does not lead to plaintext",
        )
    if "@" in netloc or parts.query or parts.fragment:
        raise _Decided(
            ClientOutcome.FAIL_ERROR,
            step,
            f"{what} {value!r} has credentials, a query or a fragment; a base URL has none",
        )
    try:
        parse_server_name(netloc)
    except InvalidServerName as exc:
        raise _Decided(
            ClientOutcome.FAIL_ERROR, step, f"{what} {value!r} has an invalid host: {exc.reason}"
        ) from None
    return f"https://{netloc}{parts.path.rstrip('/')}"


def _identity_base(document: dict[str, Any]) -> str | _Decided | None:
    """Step 3f's identity server base URL, ``None`` if none, or the outcome it causes."""
    if "m.identity_server" not in document:
        return None
    identity = document["m.identity_server"]
    if not isinstance(identity, dict) or not isinstance(identity.get("base_url"), str):
        return _Decided(
            ClientOutcome.FAIL_PROMPT,
            "3f",
            "m.identity_server is present but has no base_url string",
        )
    try:
        return _base_url(identity["base_url"], "m.identity_server.base_url", "3f")
    except _Decided as decided:
        return decided


def _json_object(outcome: Outcome, url: str) -> dict[str, Any]:
    if isinstance(outcome, HttpsFailure):
        raise ValueError(f"{url} did not answer ({outcome})")
    assert isinstance(outcome, HttpsResponse)
    if outcome.status != 200:
        raise ValueError(f"{url} answered HTTP {outcome.status}, not 200")
    try:
        document = json.loads(outcome.body)
    except (ValueError, RecursionError):
        raise ValueError(f"{url} did not answer with JSON") from None
    if not isinstance(document, dict):
        raise ValueError(f"{url} did not answer with a JSON object")
    return document


def _versions(outcome: Outcome, base: str) -> tuple[str, ...]:
    url = base + VERSIONS_PATH
    try:
        document = _json_object(outcome, url)
    except ValueError as exc:
        raise _Decided(ClientOutcome.FAIL_ERROR, "3e", str(exc)) from None
    versions = document.get("versions")
    if (
        not isinstance(versions, list)
        or not versions
        or not all(isinstance(v, str) for v in versions)
    ):
        raise _Decided(ClientOutcome.FAIL_ERROR, "3e", f"{url} has no 'versions' list of strings")
    return tuple(versions)


def _identity_ok(outcome: Outcome, base: str) -> None:
    try:
        _json_object(outcome, base + IDENTITY_PATH)
    except ValueError as exc:
        raise _Decided(ClientOutcome.FAIL_ERROR, "3f", str(exc)) from None


def parse_support(response: HttpsResponse) -> SupportFile | None:
    """The support file in ``response``; ``None`` for a 404; ValueError if invalid."""
    if response.status == 404:
        return None
    if response.status != 200:
        raise ValueError(f"the support file answered HTTP {response.status}, not 200 or 404")
    try:
        document = json.loads(response.body)
    except (ValueError, RecursionError):
        raise ValueError("the support file is not JSON") from None
    if not isinstance(document, dict):
        raise ValueError("the support file is not a JSON object")
    contacts, page = document.get("contacts"), document.get("support_page")
    if contacts is None and page is None:
        raise ValueError("the support file has neither contacts nor support_page")
    if page is not None and not isinstance(page, str):
        raise ValueError("support_page is not a string")
    out: list[SupportContact] = []
    if contacts is not None:
        if not isinstance(contacts, list):
            raise ValueError("contacts is not a list")
        for i, c in enumerate(contacts):
            if not isinstance(c, dict) or not isinstance(c.get("role"), str):
                raise ValueError(f"contacts[{i}] has no role string")
            mxid, email = c.get("matrix_id"), c.get("email_address")
            if mxid is None and email is None:
                raise ValueError(f"contacts[{i}] has neither matrix_id nor email_address")
            if not isinstance(mxid, (str, type(None))) or not isinstance(email, (str, type(None))):
                raise ValueError(f"contacts[{i}]: matrix_id and email_address must be strings")
            out.append(SupportContact(role=c["role"], matrix_id=mxid, email_address=email))
    return SupportFile(contacts=tuple(out), support_page=page)

"""The sans-I/O state machine: one object per resolution.

The states are the spec's steps (v1.19, "Resolving server names"): 1, 2, 3,
3.1-3.5, 4, 5, 6, plus START and the two endings. Every move between them is a
row of :data:`TRANSITIONS`; a move that is not in the table is a bug and raises
:class:`~mxresolve.LocalProtocolError`. docs/state-machine.md is generated from
the table.

Inside a step, the work is written as a generator that yields a batch of
requests and receives their outcomes, so each step reads top to bottom like
the spec's paragraph. The machine hands the requests out one by one through
:meth:`ResolutionMachine.next_event` and resumes the step once every outcome is
in.

A step may also ask *early*: DNS questions a later step may need (the SRV
records of step 4 while step 3 fetches the well-known, ``_matrix._tcp``
alongside ``_matrix-fed._tcp``, a name's addresses alongside its SRV lookup).
They go out with the step's own requests but nothing waits for them. The later
step takes an early answer as if it had asked then (and caches it then, with
the time it arrived); an early answer no step takes is dropped, uncached, when
the resolution ends. So the steps, their precedence, the result, the decisions
and the cache are what they would be without asking early (Settings: round
trips; docs/interpretations.md).

It never opens a socket, reads a clock or draws a random number: ``now`` comes
with every call and randomness through the ``random`` callable.

Typical driver loop::

    machine = ResolutionMachine("example.org", now=clock(), random=rng.random)
    while True:
        event = machine.next_event()
        if isinstance(event, (DnsQuery, HttpsGet)):
            machine.receive(event, perform(event), now=clock())
        elif event is NEED_RESULTS:
            ...  # wait for the requests already handed out
        else:
            return event  # Resolution or ResolutionFailure
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
from collections import deque
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from enum import Enum

from .cache import ResolverCache, WellKnownEntry, well_known_lifetime
from .cachecontrol import freshness_lifetime
from .errors import InvalidServerName, LocalProtocolError
from .events import (
    NEED_RESULTS,
    DnsQuery,
    DnsResult,
    DnsStatus,
    FailureKind,
    HttpsFailure,
    HttpsFailureKind,
    HttpsGet,
    HttpsResponse,
    NeedResults,
    Outcome,
    RecordType,
    Request,
    Resolution,
    ResolutionFailure,
    SrvRecord,
    Step,
    Target,
    TraceEvent,
    TraceKind,
)
from .grammar import DEFAULT_PORT, HostKind, ServerName, parse_server_name, server_name_advisories
from .settings import Settings, SrvDotPolicy, SrvFailurePolicy, SrvTargetAliasPolicy
from .srv import order_srv_records
from .wellknown import (
    REDIRECT_STATUSES,
    InvalidWellKnown,
    RedirectRefused,
    parse_well_known_body,
    redirect_request,
    well_known_request,
)

__all__ = [
    "TRANSITIONS",
    "Event",
    "Phase",
    "ResolutionMachine",
    "State",
    "invalid_server_name_failure",
]


class Phase(Enum):
    """The states that are not spec steps."""

    START = "start"
    RESOLVED = "resolved"
    FAILED = "failed"


State = Step | Phase


class Event(Enum):
    """What a step found out; together with the state it picks the next state."""

    HOSTNAME_IS_IP_LITERAL = "hostname is an IP literal"
    EXPLICIT_PORT = "explicit port"
    NO_PORT = "no port"
    DELEGATED_TO_IP_LITERAL = "m.server is an IP literal"
    DELEGATED_WITH_PORT = "m.server has a port"
    DELEGATED_WITHOUT_PORT = "m.server has no port"
    WELL_KNOWN_ERROR = "well-known error"
    NO_SRV_RECORD = "no SRV record"
    NO_SRV_RECORD_LEGACY_OFF = "no SRV record, deprecated steps off"
    TARGETS_FOUND = "targets found"
    FAILED = "failed"


_S = Step
_ENDS = (
    _S.IP_LITERAL,
    _S.EXPLICIT_PORT,
    _S.DELEGATED_IP_LITERAL,
    _S.DELEGATED_EXPLICIT_PORT,
    _S.DELEGATED_SRV,
    _S.DELEGATED_LEGACY_SRV,
    _S.DELEGATED_ADDRESS,
    _S.SRV,
    _S.LEGACY_SRV,
    _S.ADDRESS,
)

TRANSITIONS: dict[tuple[State, Event], State] = {
    (Phase.START, Event.HOSTNAME_IS_IP_LITERAL): _S.IP_LITERAL,
    (Phase.START, Event.EXPLICIT_PORT): _S.EXPLICIT_PORT,
    (Phase.START, Event.NO_PORT): _S.WELL_KNOWN,
    (_S.WELL_KNOWN, Event.DELEGATED_TO_IP_LITERAL): _S.DELEGATED_IP_LITERAL,
    (_S.WELL_KNOWN, Event.DELEGATED_WITH_PORT): _S.DELEGATED_EXPLICIT_PORT,
    (_S.WELL_KNOWN, Event.DELEGATED_WITHOUT_PORT): _S.DELEGATED_SRV,
    (_S.WELL_KNOWN, Event.WELL_KNOWN_ERROR): _S.SRV,
    (_S.DELEGATED_SRV, Event.NO_SRV_RECORD): _S.DELEGATED_LEGACY_SRV,
    (_S.DELEGATED_SRV, Event.NO_SRV_RECORD_LEGACY_OFF): _S.DELEGATED_ADDRESS,
    (_S.DELEGATED_LEGACY_SRV, Event.NO_SRV_RECORD): _S.DELEGATED_ADDRESS,
    (_S.SRV, Event.NO_SRV_RECORD): _S.LEGACY_SRV,
    (_S.SRV, Event.NO_SRV_RECORD_LEGACY_OFF): _S.ADDRESS,
    (_S.LEGACY_SRV, Event.NO_SRV_RECORD): _S.ADDRESS,
    **{(step, Event.TARGETS_FOUND): Phase.RESOLVED for step in _ENDS},
    **{(step, Event.FAILED): Phase.FAILED for step in _ENDS},
    # Step 3 itself only fails when the overall deadline passes mid-fetch.
    (_S.WELL_KNOWN, Event.FAILED): Phase.FAILED,
}

# Why a step is entered, in the words a trace reader needs.
_STEP_REASONS: dict[Step, str] = {
    _S.IP_LITERAL: "the hostname is an IP literal: use it directly, no DNS, no well-known",
    _S.EXPLICIT_PORT: "a DNS name with an explicit port: resolve its addresses, use that port",
    _S.WELL_KNOWN: "a DNS name without a port: fetch its /.well-known/matrix/server",
    _S.DELEGATED_IP_LITERAL: "m.server is an IP literal: use it directly",
    _S.DELEGATED_EXPLICIT_PORT: "m.server has a port: resolve the delegated hostname's addresses",
    _S.DELEGATED_SRV: "m.server has no port: look up _matrix-fed._tcp of the delegated hostname",
    _S.DELEGATED_LEGACY_SRV: "no _matrix-fed._tcp record: try the deprecated _matrix._tcp",
    _S.DELEGATED_ADDRESS: "no SRV record: resolve the delegated hostname, port 8448",
    _S.SRV: "no valid delegation: look up _matrix-fed._tcp of the hostname",
    _S.LEGACY_SRV: "no _matrix-fed._tcp record: try the deprecated _matrix._tcp",
    _S.ADDRESS: "no SRV record: resolve the hostname's addresses, port 8448",
}

_SERVICE = "_matrix-fed._tcp"
_LEGACY_SERVICE = "_matrix._tcp"

# Well-known failures that mean "the server is down", not "the server said no".
_UNAVAILABLE = frozenset(
    {
        HttpsFailureKind.NO_ADDRESS,
        HttpsFailureKind.CONNECTION_REFUSED,
        HttpsFailureKind.CONNECT_TIMEOUT,
        HttpsFailureKind.TLS_HANDSHAKE_FAILED,
        HttpsFailureKind.CERTIFICATE_INVALID,
        HttpsFailureKind.READ_TIMEOUT,
        HttpsFailureKind.CONNECTION_RESET,
        HttpsFailureKind.PROTOCOL_ERROR,
    }
)

_StepGen = Generator[tuple[Request, ...], tuple[Outcome, ...], Event]
_Handler = Callable[[], Event | _StepGen]


@dataclass(frozen=True, slots=True)
class _WellKnownError:
    reason: str
    unavailable: bool


@dataclass(frozen=True, slots=True)
class _NameAddresses:
    """What the AAAA and A lookups of one name gave."""

    addresses: tuple[str, ...]
    aliases: tuple[str, ...]
    failed: bool  # a lookup got no answer (SERVFAIL, timeout) rather than "none"
    summary: str


class ResolutionMachine:
    """Resolves one server name, without doing any I/O.

    Args:
        server_name: the name to resolve, a string or a parsed :class:`ServerName`.
            A string that is not a valid server name raises
            :class:`~mxresolve.InvalidServerName` here.
        now: the current time in POSIX seconds (the caller's clock).
        random: returns floats in [0, 1); used only to order SRV records.
        cache: shared across resolutions; a fresh one if omitted.
        settings: periods, limits and interpretations.
    """

    def __init__(
        self,
        server_name: str | ServerName,
        *,
        now: float,
        random: Callable[[], float],
        cache: ResolverCache | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.server_name = (
            server_name if isinstance(server_name, ServerName) else parse_server_name(server_name)
        )
        if not isinstance(now, (int, float)) or not math.isfinite(now):
            raise ValueError(f"now must be a finite number of seconds, not {now!r}")
        self.settings = settings if settings is not None else Settings()
        self.cache = cache if cache is not None else ResolverCache()
        self.state: State = Phase.START
        self.started_at = float(now)
        self.deadline = self.started_at + self.settings.deadline
        self._now = float(now)
        self._random = random
        self._trace: list[TraceEvent] = []
        self._expires_at = math.inf
        self._to_hand_out: deque[Request] = deque()
        self._batch: tuple[Request, ...] = ()
        self._outcomes: dict[Request, Outcome] = {}
        self._abandoned: set[Request] = set()
        # Early questions: None while in flight, then (answer, when it arrived).
        self._early: dict[DnsQuery, tuple[DnsResult, float] | None] = {}
        self._generator: _StepGen | None = None
        self._result: Resolution | ResolutionFailure | None = None
        self._delegated: ServerName | None = None
        self._targets: tuple[Target, ...] = ()
        self._failure: tuple[FailureKind, str] | None = None
        for note in server_name_advisories(self.server_name):
            self._note(TraceKind.WARNING, note)
        self._advance(self._start())

    # --- the public protocol ----------------------------------------------------------

    def next_event(self) -> Request | NeedResults | Resolution | ResolutionFailure:
        """The next request to perform, :data:`NEED_RESULTS`, or the final result."""
        if self._result is not None:
            return self._result
        if self._to_hand_out:
            return self._to_hand_out.popleft()
        return NEED_RESULTS

    def receive(self, request: Request, outcome: Outcome, *, now: float) -> None:
        """Give the outcome of a request that :meth:`next_event` handed out.

        Outcomes may come in any order. An outcome for a request abandoned
        because the resolution already ended is ignored.
        """
        if request in self._abandoned:
            return
        early = isinstance(request, DnsQuery) and request in self._early
        in_batch = request in self._batch and request not in self._outcomes
        if not in_batch and not (early and self._early[request] is None):  # type: ignore[index]
            if request in self._outcomes or early:
                raise LocalProtocolError(f"already received an outcome for {request}")
            raise LocalProtocolError(f"not waiting for an outcome of {request}")
        if request in self._to_hand_out:
            raise LocalProtocolError(f"{request} has not been handed out by next_event() yet")
        _check_outcome(request, outcome)
        if isinstance(now, (int, float)) and math.isfinite(now) and now > self._now:
            self._now = float(now)  # a clock that steps back is held, not trusted
        self._note(TraceKind.OUTCOME, f"{request} -> {outcome}", request=request, outcome=outcome)
        if early:
            assert isinstance(request, DnsQuery)
            assert isinstance(outcome, DnsResult)
            self._early[request] = (outcome, self._now)
        if in_batch:
            self._outcomes[request] = outcome
        if self._now >= self.deadline:
            self._abandon()
            self._fail_now(
                FailureKind.DEADLINE_EXCEEDED,
                f"the resolution took longer than its {self.settings.deadline:g} s deadline",
            )
            return
        if early and not in_batch:
            assert isinstance(request, DnsQuery)
            assert isinstance(outcome, DnsResult)
            self._chase(request, outcome)
        if self._batch and len(self._outcomes) == len(self._batch):
            outcomes = tuple(self._outcomes[r] for r in self._batch)
            self._batch, self._outcomes = (), {}
            assert self._generator is not None
            self._advance(self._generator, outcomes)

    @property
    def pending(self) -> tuple[Request, ...]:
        """Requests handed out whose outcome has not come back yet."""
        waiting = [r for r in self._batch if r not in self._outcomes]
        waiting += [q for q, answer in self._early.items() if answer is None]
        return tuple(r for r in dict.fromkeys(waiting) if r not in self._to_hand_out)

    @property
    def trace(self) -> tuple[TraceEvent, ...]:
        return tuple(self._trace)

    # --- driving the steps ------------------------------------------------------------

    def _advance(self, step: Event | _StepGen, send: tuple[Outcome, ...] | None = None) -> None:
        """Run steps until one needs outcomes (a batch is handed out) or the end."""
        while True:
            if isinstance(step, Event):
                event = step
            else:
                try:
                    batch = step.send(send)  # type: ignore[arg-type]  # None starts it
                except StopIteration as stop:
                    event = stop.value
                else:
                    self._generator = step
                    self._hand_out(batch)
                    return
            self._generator = None
            if self._transition(event):
                return
            step, send = self._handler(self.state)(), None

    def _transition(self, event: Event) -> bool:
        """Apply the table; True when the resolution has ended."""
        try:
            new_state = TRANSITIONS[(self.state, event)]
        except KeyError:
            raise LocalProtocolError(
                f"no transition from {self.state} on {event.name}: this is a bug in mxresolve"
            ) from None
        old_state, self.state = self.state, new_state
        if isinstance(new_state, Step):
            self._note(TraceKind.STEP, _STEP_REASONS[new_state])
        elif new_state is Phase.RESOLVED:
            assert isinstance(old_state, Step)
            self._result = Resolution(
                server_name=self.server_name.text,
                step=old_state,
                targets=self._targets,
                trace=tuple(self._trace),
                expires_at=self._expires_at,
            )
        else:
            assert self._failure is not None
            self._result = ResolutionFailure(
                server_name=self.server_name.text,
                step=old_state if isinstance(old_state, Step) else None,
                kind=self._failure[0],
                message=self._failure[1],
                trace=tuple(self._trace),
            )
        if self._result is not None:
            self._abandon()  # early questions still out: their answers change nothing now
            self._early.clear()
        return self._result is not None

    def _handler(self, state: State) -> _Handler:
        assert isinstance(state, Step)
        handlers: dict[Step, _Handler] = {
            _S.IP_LITERAL: self._step_1,
            _S.EXPLICIT_PORT: self._step_2,
            _S.WELL_KNOWN: self._step_3,
            _S.DELEGATED_IP_LITERAL: self._step_3_1,
            _S.DELEGATED_EXPLICIT_PORT: self._step_3_2,
            _S.DELEGATED_SRV: self._step_3_3,
            _S.DELEGATED_LEGACY_SRV: self._step_3_4,
            _S.DELEGATED_ADDRESS: self._step_3_5,
            _S.SRV: self._step_4,
            _S.LEGACY_SRV: self._step_5,
            _S.ADDRESS: self._step_6,
        }
        return handlers[state]

    def _hand_out(self, batch: tuple[Request, ...]) -> None:
        if not batch:
            raise LocalProtocolError("a step yielded no requests: this is a bug in mxresolve")
        self._batch = tuple(dict.fromkeys(batch))
        self._outcomes = {}
        for request in self._batch:
            if isinstance(request, DnsQuery) and request in self._early:
                assert self._early[request] is None  # _lookup takes answers already in
                continue  # asked early, still out: wait for it, don't ask again
            self._to_hand_out.append(request)
            self._note(TraceKind.REQUEST, str(request), request=request)

    def _must_wait_for(self, query: DnsQuery) -> bool:
        """Whether answering ``query`` takes a round trip (neither cached nor in early)."""
        if self._early.get(query) is not None:
            return False
        return self.cache.dns(query.qname, query.rdtype, self._now) is None

    def _ask_early(self, queries: Sequence[DnsQuery], why: str) -> None:
        """Send ``queries`` now, for a later step that may need them; nothing waits."""
        for query in queries:
            if query in self._early or query in self._batch:
                continue
            if self.cache.dns(query.qname, query.rdtype, self._now) is not None:
                continue
            self._early[query] = None
            self._to_hand_out.append(query)
            self._note(TraceKind.REQUEST, f"{query} (asked early: {why})", request=query)

    def _chase(self, query: DnsQuery, result: DnsResult) -> None:
        """An early SRV answer came in: ask its targets' addresses early too.

        ``_matrix._tcp`` targets only once ``_matrix-fed._tcp`` is known to be
        empty: they matter only then, and the deprecated record is often left over.
        """
        if query.rdtype is not RecordType.SRV:
            return
        fed, legacy = query.qname, query.qname
        if query.qname.startswith(_LEGACY_SERVICE + "."):
            fed = _SERVICE + query.qname[len(_LEGACY_SERVICE) :]
        else:
            legacy = _LEGACY_SERVICE + query.qname[len(_SERVICE) :]
        fed_answer = self._early.get(DnsQuery(qname=fed, rdtype=RecordType.SRV))
        if query.qname == legacy:
            if fed_answer is None or _srv_targets(fed_answer[0], self.settings):
                return
            chosen = result
        elif _srv_targets(result, self.settings):
            chosen = result
        else:  # nothing at _matrix-fed._tcp: the legacy answer, if in, is the one
            legacy_answer = self._early.get(DnsQuery(qname=legacy, rdtype=RecordType.SRV))
            if legacy_answer is None:
                return
            chosen = legacy_answer[0]
        names = _srv_targets(chosen, self.settings)
        self._ask_early(
            [DnsQuery(qname=n, rdtype=t) for n in names for t in (RecordType.AAAA, RecordType.A)],
            "the addresses of SRV targets",
        )

    def _abandon(self) -> None:
        self._abandoned.update(q for q, answer in self._early.items() if answer is None)
        self._abandoned.update(r for r in self._batch if r not in self._outcomes)
        self._batch, self._outcomes = (), {}
        self._to_hand_out.clear()
        if self._generator is not None:
            self._generator.close()
            self._generator = None

    def _fail_now(self, kind: FailureKind, message: str) -> None:
        self._transition(self._fail(kind, message))

    # --- the steps --------------------------------------------------------------------

    def _start(self) -> Event:
        name = self.server_name
        if name.is_ip_literal:
            return Event.HOSTNAME_IS_IP_LITERAL
        if name.port is not None:
            return Event.EXPLICIT_PORT
        return Event.NO_PORT

    def _step_1(self) -> Event:
        # "that IP address should be used, together with the given port number, or
        # 8448 ... The Host header ... should be set to the server name, including
        # the port if the server name included one." No SNI for an IP certificate.
        return self._ip_literal_target(self.server_name)

    def _step_2(self) -> _StepGen:
        # "resolve the hostname to an IP address using CNAME, AAAA or A records ...
        # Host header of the original server name (with port) ... certificate for
        # the hostname."
        name = self.server_name
        assert name.port is not None
        found = yield from self._resolve_addresses([name.fqdn])
        return self._address_target(name, name.port, name.text, found[name.fqdn])

    def _step_3(self) -> _StepGen:
        host = self.server_name.host
        entry = self.cache.well_known(host)
        if entry is not None and entry.expires_at > self._now:
            if entry.delegation is not None:
                self._note(
                    TraceKind.CACHE,
                    f"cached well-known for {host}: m.server is {entry.delegation.text!r}, "
                    f"fresh for {entry.expires_at - self._now:.0f} s more",
                )
                self._expire_by(entry.expires_at)
                return self._delegate(entry.delegation)
            self._note(
                TraceKind.CACHE,
                f"cached well-known failure for {host} ({entry.error}); "
                f"not retried for {entry.expires_at - self._now:.0f} s more "
                f"(consecutive failures: {entry.failures})",
            )
            self._expire_by(entry.expires_at)
            return self._after_well_known_failure(entry)

        if self.settings.srv_with_well_known:
            self._ask_early(self._srv_queries(self.server_name), "step 4 may need it")
        fetched = yield from self._fetch_well_known(host)
        if isinstance(fetched, _WellKnownError):
            entry = self.cache.store_failure(
                host,
                fetched.reason,
                unavailable=fetched.unavailable,
                now=self._now,
                settings=self.settings,
            )
            self._note(
                TraceKind.DECISION,
                f"the well-known is an error response ({fetched.reason}); cached as a failure "
                f"for {entry.expires_at - self._now:.0f} s "
                f"(consecutive failures: {entry.failures})",
            )
            self._expire_by(entry.expires_at)
            return self._after_well_known_failure(entry)

        delegated, response = fetched
        freshness = freshness_lifetime(response, self._now)
        lifetime = well_known_lifetime(freshness.seconds, self.settings)
        self.cache.store_delegation(host, delegated, lifetime, self._now)
        self._note(
            TraceKind.DECISION,
            f"valid well-known: m.server is {delegated.text!r}; cached for {lifetime:.0f} s "
            f"({freshness.source}, within [{self.settings.well_known_min_ttl:g}, "
            f"{self.settings.well_known_max_ttl:g}] s)",
        )
        self._expire_by(self._now + lifetime)
        return self._delegate(delegated)

    def _step_3_1(self) -> Event:
        # "Requests must be made with a Host header containing the IP address,
        # including the port if one was provided."
        assert self._delegated is not None
        return self._ip_literal_target(self._delegated)

    def _step_3_2(self) -> _StepGen:
        # "Host header of <delegated_hostname>:<delegated_port> ... certificate for
        # <delegated_hostname>."
        delegated = self._delegated
        assert delegated is not None
        assert delegated.port is not None
        found = yield from self._resolve_addresses([delegated.fqdn])
        return self._address_target(
            delegated, delegated.port, delegated.text, found[delegated.fqdn]
        )

    def _step_3_3(self) -> _StepGen:
        assert self._delegated is not None
        return (yield from self._srv_step(_SERVICE, self._delegated))

    def _step_3_4(self) -> _StepGen:
        assert self._delegated is not None
        return (yield from self._srv_step(_LEGACY_SERVICE, self._delegated))

    def _step_3_5(self) -> _StepGen:
        # "Requests are then made to the resolved IP address and a port of 8448,
        # using a Host header of <delegated_hostname>."
        delegated = self._delegated
        assert delegated is not None
        found = yield from self._resolve_addresses([delegated.fqdn])
        return self._address_target(
            delegated, DEFAULT_PORT, delegated.hostname, found[delegated.fqdn]
        )

    def _step_4(self) -> _StepGen:
        return (yield from self._srv_step(_SERVICE, self.server_name))

    def _step_5(self) -> _StepGen:
        return (yield from self._srv_step(_LEGACY_SERVICE, self.server_name))

    def _step_6(self) -> _StepGen:
        # "resolved using CNAME, AAAA and A records ... port 8448 and a Host header
        # containing the <hostname>."
        name = self.server_name
        found = yield from self._resolve_addresses([name.fqdn])
        return self._address_target(name, DEFAULT_PORT, name.hostname, found[name.fqdn])

    # --- step 3 helpers ---------------------------------------------------------------

    def _fetch_well_known(
        self, host: str
    ) -> Generator[
        tuple[Request, ...], tuple[Outcome, ...], tuple[ServerName, HttpsResponse] | _WellKnownError
    ]:
        """GET the well-known, following redirects one hop at a time."""
        request = well_known_request(host, self.settings.max_body_bytes)
        visited = {request.url}
        for hop in range(self.settings.max_redirects + 1):
            if self.settings.resolve_well_known_host:
                located = yield from self._well_known_addresses(request)
                if isinstance(located, HttpsFailure):
                    return _WellKnownError(
                        f"{request.url}: {located}", unavailable=located.kind in _UNAVAILABLE
                    )
                request = dataclasses.replace(request, addresses=located)
            (outcome,) = yield (request,)
            if isinstance(outcome, HttpsFailure):
                return _WellKnownError(
                    f"{request.url}: {outcome}", unavailable=outcome.kind in _UNAVAILABLE
                )
            assert isinstance(outcome, HttpsResponse)
            if outcome.status in REDIRECT_STATUSES:
                if hop == self.settings.max_redirects:
                    return _WellKnownError(
                        f"more than {self.settings.max_redirects} redirects", unavailable=False
                    )
                try:
                    next_request = redirect_request(request, outcome.header("location"))
                except RedirectRefused as exc:
                    return _WellKnownError(str(exc), unavailable=False)
                if next_request.url in visited:
                    return _WellKnownError(
                        f"redirect loop: {next_request.url} was already visited", unavailable=False
                    )
                visited.add(next_request.url)
                self._note(
                    TraceKind.DECISION, f"HTTP {outcome.status}: following to {next_request.url}"
                )
                request = next_request
                continue
            if outcome.status != 200:
                return _WellKnownError(
                    f"{request.url} answered HTTP {outcome.status}, not 200",
                    unavailable=outcome.status >= 500 or outcome.status == 429,
                )
            if len(outcome.body) > self.settings.max_body_bytes:
                return _WellKnownError(
                    f"the body is {len(outcome.body)} bytes, over the "
                    f"{self.settings.max_body_bytes}-byte limit",
                    unavailable=False,
                )
            try:
                return parse_well_known_body(outcome.body), outcome
            except InvalidWellKnown as exc:
                return _WellKnownError(str(exc), unavailable=False)
        raise AssertionError("unreachable: the loop returns on its last hop")

    def _well_known_addresses(
        self, request: HttpsGet
    ) -> Generator[tuple[Request, ...], tuple[Outcome, ...], tuple[str, ...] | HttpsFailure]:
        """The well-known host's usable addresses, through the one DNS cache.

        Step 6 (or 2) for the same name then asks nothing more: one name, asked once.
        """
        try:
            literal: tuple[str, ...] = (str(ipaddress.ip_address(request.host.strip("[]"))),)
        except ValueError:
            literal = ()
        if literal:
            found = _NameAddresses(addresses=literal, aliases=(), failed=False, summary="")
        else:
            fqdn = _fqdn(request.host)
            found = (yield from self._resolve_addresses([fqdn]))[fqdn]
        if not found.addresses:
            kind = HttpsFailureKind.NO_ADDRESS
            return HttpsFailure(kind=kind, message=f"{request.host}: {found.summary}")
        refusals = [self.settings.ip_policy.refusal(a) for a in found.addresses]
        allowed = tuple(a for a, why in zip(found.addresses, refusals, strict=True) if why is None)
        if not allowed:
            why = "; ".join(str(r) for r in refusals)
            return HttpsFailure(kind=HttpsFailureKind.ADDRESS_REFUSED, message=why)
        return allowed

    def _after_well_known_failure(self, entry: WellKnownEntry) -> Event:
        """Step 4 - unless a recent delegation may stand in (``stale_if_error``)."""
        last_good = entry.last_good
        stale_until = entry.last_good_expired_at + self.settings.stale_if_error
        if entry.unavailable and last_good is not None and self._now < stale_until:
            self._note(
                TraceKind.WARNING,
                f"the well-known host is unavailable; keeping the last valid delegation "
                f"{last_good.text!r}, which expired {self._now - entry.last_good_expired_at:.0f} s "
                f"ago (stale_if_error allows {self.settings.stale_if_error:g} s)",
            )
            self._expire_by(min(entry.expires_at, stale_until))
            return self._delegate(last_good)
        return Event.WELL_KNOWN_ERROR

    def _delegate(self, delegated: ServerName) -> Event:
        self._delegated = delegated
        if delegated.is_ip_literal:
            return Event.DELEGATED_TO_IP_LITERAL
        if delegated.port is not None:
            return Event.DELEGATED_WITH_PORT
        return Event.DELEGATED_WITHOUT_PORT

    # --- SRV (steps 3.3, 3.4, 4, 5) ---------------------------------------------------

    def _srv_step(self, service: str, name: ServerName) -> _StepGen:
        """Look up ``service`` SRV for ``name``; targets use ``name`` for Host and TLS.

        The spec note: "we require <hostname> rather than <delegated_hostname> for
        SRV delegation" - the certificate and Host are never the SRV target's.
        """
        qname = f"{service}.{name.fqdn}"
        query = DnsQuery(qname=qname, rdtype=RecordType.SRV)
        if self._must_wait_for(query):  # else nothing is gained by asking more now
            if service == _SERVICE and self.settings.legacy_srv_with_srv:
                self._ask_early(self._srv_queries(name)[1:], "the next step may need it")
            if self.settings.addresses_with_srv:
                self._ask_early(
                    [DnsQuery(qname=name.fqdn, rdtype=t) for t in (RecordType.AAAA, RecordType.A)],
                    "without an SRV record, the name's own addresses are used",
                )
        (result,) = yield from self._lookup([query])
        if result.status.is_failure:
            if self.settings.srv_failure is SrvFailurePolicy.FAIL:
                return self._fail(FailureKind.DNS_FAILURE, f"the SRV lookup of {qname} failed")
            self._note(
                TraceKind.WARNING,
                f"the SRV lookup of {qname} got no answer ({result.status.value}); "
                "treating it as no record (srv_failure=as_absent)",
            )
            return self._no_srv(service)
        if result.status.is_negative:
            self._note(TraceKind.DECISION, f"no SRV record at {qname} ({result.status.value})")
            return self._no_srv(service)

        records = [r for r in result.records if isinstance(r, SrvRecord)]
        usable = [r for r in records if r.target != "."]
        if not usable:
            if self.settings.srv_dot is SrvDotPolicy.UNAVAILABLE:
                return self._fail(
                    FailureKind.SERVICE_UNAVAILABLE,
                    f"{qname} has target '.': the service is decidedly not available (RFC 2782)",
                )
            self._note(TraceKind.WARNING, f"{qname} has target '.'; treated as no record")
            return self._no_srv(service)
        if len(usable) < len(records):
            self._note(TraceKind.WARNING, f"ignoring '.' targets mixed with real ones at {qname}")

        ordered = order_srv_records(usable, self._random)
        if len(ordered) > self.settings.max_srv_records:
            self._note(
                TraceKind.WARNING,
                f"{len(ordered)} SRV records; using the first {self.settings.max_srv_records}",
            )
            ordered = ordered[: self.settings.max_srv_records]
        self._note(
            TraceKind.DECISION,
            "SRV records in RFC 2782 order: " + "; ".join(str(r) for r in ordered),
        )

        valid: list[SrvRecord] = []
        for record in ordered:
            problem = _srv_target_problem(record)
            if problem:
                self._note(TraceKind.WARNING, f"ignoring SRV record {record}: {problem}")
            else:
                valid.append(record)
        found = yield from self._resolve_addresses([_fqdn(r.target) for r in valid])

        targets: list[Target] = []
        failed = refused = False
        for record in valid:
            addresses = found[_fqdn(record.target)]
            host = _fqdn(record.target)[:-1]
            if addresses.aliases:
                if self.settings.srv_target_alias is SrvTargetAliasPolicy.REFUSE:
                    self._note(
                        TraceKind.WARNING,
                        f"SRV target {host} is a CNAME, which RFC 2782 forbids; dropped",
                    )
                    continue
                self._note(
                    TraceKind.WARNING,
                    f"SRV target {host} is a CNAME (to {addresses.aliases[-1]}), which RFC 2782 "
                    "forbids; followed anyway (srv_target_alias=follow)",
                )
            if not addresses.addresses:
                failed = failed or addresses.failed
                self._note(TraceKind.DECISION, f"SRV target {host} dropped: {addresses.summary}")
                continue
            allowed = self._allowed(addresses.addresses)
            if not allowed:
                refused = True
                continue
            targets.append(
                Target(
                    host=host,
                    port=record.port,
                    addresses=allowed,
                    host_header=name.hostname,
                    tls_server_name=name.host,
                    sni=name.host,
                )
            )
        if not targets:
            if refused:
                return self._fail(
                    FailureKind.REFUSED_ADDRESS,
                    f"every address of the {qname} targets was refused by the IP policy",
                )
            kind = FailureKind.DNS_FAILURE if failed else FailureKind.NO_ADDRESS
            return self._fail(kind, f"no SRV target of {qname} has a usable address")
        return self._found(targets)

    def _srv_queries(self, name: ServerName) -> list[DnsQuery]:
        """``_matrix-fed._tcp`` of ``name``, and ``_matrix._tcp`` when that is both on and
        asked alongside."""
        services = [_SERVICE]
        if self.settings.legacy_srv and self.settings.legacy_srv_with_srv:
            services.append(_LEGACY_SERVICE)
        return [DnsQuery(qname=f"{s}.{name.fqdn}", rdtype=RecordType.SRV) for s in services]

    def _no_srv(self, service: str) -> Event:
        if service == _SERVICE and not self.settings.legacy_srv:
            self._note(TraceKind.DECISION, "deprecated _matrix._tcp lookups are off (legacy_srv)")
            return Event.NO_SRV_RECORD_LEGACY_OFF
        return Event.NO_SRV_RECORD

    # --- addresses --------------------------------------------------------------------

    def _ip_literal_target(self, name: ServerName) -> Event:
        port = name.port if name.port is not None else DEFAULT_PORT
        target = Target(
            host=name.host,
            port=port,
            addresses=(name.host,),
            host_header=name.text,
            tls_server_name=name.host,
            sni=None,
        )
        if not self._allowed(target.addresses):
            return self._fail(
                FailureKind.REFUSED_ADDRESS, f"{name.host} is refused by the IP policy"
            )
        return self._found([target])

    def _address_target(
        self, name: ServerName, port: int, host_header: str, found: _NameAddresses
    ) -> Event:
        if not found.addresses:
            kind = FailureKind.DNS_FAILURE if found.failed else FailureKind.NO_ADDRESS
            return self._fail(kind, f"{name.host}: {found.summary}")
        allowed = self._allowed(found.addresses)
        if not allowed:
            return self._fail(
                FailureKind.REFUSED_ADDRESS,
                f"every address of {name.host} was refused by the IP policy",
            )
        return self._found(
            [
                Target(
                    host=name.host,
                    port=port,
                    addresses=allowed,
                    host_header=host_header,
                    tls_server_name=name.host,
                    sni=name.host,
                )
            ]
        )

    def _allowed(self, addresses: tuple[str, ...]) -> tuple[str, ...]:
        allowed = []
        for address in addresses:
            refusal = self.settings.ip_policy.refusal(address)
            if refusal is None:
                allowed.append(address)
            else:
                self._note(TraceKind.WARNING, f"address refused by the IP policy: {refusal}")
        return tuple(allowed)

    def _resolve_addresses(
        self, names: Sequence[str]
    ) -> Generator[tuple[Request, ...], tuple[Outcome, ...], dict[str, _NameAddresses]]:
        """AAAA and A for each of ``names``, all at once.

        The DNS transport follows CNAMEs, as a recursive resolver does ("using
        CNAME, AAAA or A records"); the alias chain it reports is bounded here.
        """
        unique = list(dict.fromkeys(names))
        queries = [
            DnsQuery(qname=n, rdtype=t) for n in unique for t in (RecordType.AAAA, RecordType.A)
        ]
        results = yield from self._lookup(queries)
        limit = self.settings.max_cname_chain
        out: dict[str, _NameAddresses] = {}
        for i, name in enumerate(unique):
            v6, v4 = results[2 * i], results[2 * i + 1]
            v6, v4 = (_bound_chain(r, limit) for r in (v6, v4))
            addresses = tuple(str(r) for r in v6.records + v4.records)
            cap = self.settings.max_addresses_per_name
            if len(addresses) > cap:
                self._note(TraceKind.WARNING, f"{name} has {len(addresses)} addresses; using {cap}")
                addresses = addresses[:cap]
            out[name] = _NameAddresses(
                addresses=addresses,
                aliases=v6.aliases or v4.aliases,
                failed=v6.status.is_failure or v4.status.is_failure,
                summary=f"AAAA {v6.status.value}, A {v4.status.value}",
            )
        return out

    def _lookup(
        self, queries: Sequence[DnsQuery]
    ) -> Generator[tuple[Request, ...], tuple[Outcome, ...], list[DnsResult]]:
        """Answer ``queries`` from the DNS cache where fresh, from the network otherwise."""
        answers: dict[DnsQuery, DnsResult] = {}
        missing: list[DnsQuery] = []
        for query in dict.fromkeys(queries):
            hit = self.cache.dns(query.qname, query.rdtype, self._now)
            if hit is not None:
                answers[query] = hit[0]
                self._expire_by(hit[1])
                self._note(
                    TraceKind.CACHE,
                    f"{query} from cache: {hit[0]} (fresh for {hit[1] - self._now:.0f} s more)",
                )
            elif self._early.get(query) is not None:
                answers[query] = self._take_early(query)
            else:
                missing.append(query)  # to ask, or asked early and still out
        if missing:
            outcomes = yield tuple(missing)
            for query, outcome in zip(missing, outcomes, strict=True):
                assert isinstance(outcome, DnsResult)
                if query in self._early:
                    answers[query] = self._take_early(query)
                    continue
                answers[query] = outcome
                self._expire_by(
                    self.cache.store_dns(
                        query.qname, query.rdtype, outcome, self._now, self.settings
                    )
                )
        return [answers[q] for q in queries]

    def _take_early(self, query: DnsQuery) -> DnsResult:
        """An early answer a step now uses: cached as of when it arrived."""
        entry = self._early.pop(query)
        assert entry is not None
        result, arrived = entry
        self._expire_by(
            self.cache.store_dns(query.qname, query.rdtype, result, arrived, self.settings)
        )
        return result

    # --- endings and notes ------------------------------------------------------------

    def _found(self, targets: list[Target]) -> Event:
        self._targets = tuple(targets)
        described = "; ".join(
            f"{t.host}:{t.port} ({', '.join(t.addresses)}) Host={t.host_header!r} "
            f"TLS name={t.tls_server_name!r} SNI={'none' if t.sni is None else repr(t.sni)}"
            for t in targets
        )
        self._note(TraceKind.DECISION, f"resolved to {len(targets)} target(s): {described}")
        return Event.TARGETS_FOUND

    def _fail(self, kind: FailureKind, message: str) -> Event:
        self._failure = (kind, message)
        self._note(TraceKind.DECISION, f"failed ({kind.value}): {message}")
        return Event.FAILED

    def _note(
        self,
        kind: TraceKind,
        message: str,
        *,
        request: Request | None = None,
        outcome: Outcome | None = None,
    ) -> None:
        step = self.state if isinstance(self.state, Step) else None
        self._trace.append(
            TraceEvent(step=step, kind=kind, message=message, request=request, outcome=outcome)
        )

    def _expire_by(self, when: float) -> None:
        if when < self._expires_at:
            self._expires_at = when


def invalid_server_name_failure(error: InvalidServerName) -> ResolutionFailure:
    """The failure value for a name rejected before any step could start."""
    return ResolutionFailure(
        server_name=error.text,
        step=None,
        kind=FailureKind.INVALID_SERVER_NAME,
        message=str(error),
        trace=(TraceEvent(step=None, kind=TraceKind.DECISION, message=str(error)),),
    )


def _bound_chain(result: DnsResult, limit: int) -> DnsResult:
    if len(result.aliases) <= limit:
        return result
    return DnsResult(
        status=DnsStatus.SERVFAIL,
        aliases=result.aliases,
        message=f"CNAME chain of {len(result.aliases)} is longer than {limit}",
    )


def _srv_targets(result: DnsResult, settings: Settings) -> list[str]:
    """The names whose addresses an SRV step would ask for, if it can be known early.

    Which records are used depends on the random order when there are more than
    ``max_srv_records``; then nothing is asked early.
    """
    if result.status is not DnsStatus.NOERROR:
        return []
    records = [r for r in result.records if isinstance(r, SrvRecord) and r.target != "."]
    if len(records) > settings.max_srv_records:
        return []
    return list(dict.fromkeys(_fqdn(r.target) for r in records if not _srv_target_problem(r)))


def _fqdn(name: str) -> str:
    name = name.lower()
    return name if name.endswith(".") else name + "."


def _srv_target_problem(record: SrvRecord) -> str | None:
    if record.port == 0:
        return "port 0 cannot be connected to"
    try:
        bare = record.target[:-1] if record.target.endswith(".") else record.target
        target = parse_server_name(bare)
    except InvalidServerName as exc:
        return f"the target is not a valid hostname ({exc.reason})"
    if target.kind is not HostKind.DNS or target.port is not None:
        return "the target must be a DNS name (RFC 2782)"
    return None


def _check_outcome(request: Request, outcome: Outcome) -> None:
    """Reject outcomes that cannot answer ``request``: a driver bug, said clearly."""
    if isinstance(request, DnsQuery):
        if not isinstance(outcome, DnsResult):
            raise LocalProtocolError(f"{request} needs a DnsResult, got {type(outcome).__name__}")
        for record in outcome.records:
            problem = _record_problem(request.rdtype, record)
            if problem:
                raise LocalProtocolError(f"bad record in the answer to {request}: {problem}")
        for alias in outcome.aliases:
            if not isinstance(alias, str) or not alias:
                raise LocalProtocolError(f"bad alias {alias!r} in the answer to {request}")
        return
    if not isinstance(outcome, (HttpsResponse, HttpsFailure)):
        raise LocalProtocolError(
            f"{request} needs an HttpsResponse or HttpsFailure, got {type(outcome).__name__}"
        )
    if isinstance(outcome, HttpsResponse):
        if not isinstance(outcome.status, int) or not 100 <= outcome.status <= 599:
            raise LocalProtocolError(f"HTTP status {outcome.status!r} is not in 100-599")
        if not isinstance(outcome.body, bytes):
            raise LocalProtocolError("an HttpsResponse body must be bytes")


def _record_problem(rdtype: RecordType, record: object) -> str | None:
    if rdtype is RecordType.SRV:
        return None if isinstance(record, SrvRecord) else f"{record!r} is not an SrvRecord"
    if not isinstance(record, str):
        return f"{record!r} is not a string"
    if rdtype is RecordType.CNAME:
        return None
    try:
        ip = ipaddress.ip_address(record)
    except ValueError:
        return f"{record!r} is not an IP address"
    wanted = 4 if rdtype is RecordType.A else 6
    return None if ip.version == wanted else f"{record} is not an IPv{wanted} address"

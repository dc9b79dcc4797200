"""The generated pages of the site (run through docs/tools/generate.py).

Nothing here is drawn by hand: diagrams come from ``TRANSITIONS``, tables and plots from
runs of the real machine (vectors or small FakeWorld scenarios), and the step table's rules
are checked against what every vector expects.
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import svgplot

from mxresolve import FakeWorld, ResolverCache, Settings, parse_server_name
from mxresolve._core.events import (
    HttpsFailureKind,
    HttpsGet,
    RecordType,
    Resolution,
    ResolutionFailure,
    Step,
    Target,
)
from mxresolve._core.grammar import DEFAULT_PORT, ServerName
from mxresolve._core.machine import _UNAVAILABLE, TRANSITIONS, Event, Phase, State
from mxresolve._tools.explain import render_result
from mxresolve._tools.vectors import Vector, _settings, run_vector, vector_settings

__all__ = ["Vector"]

EPOCH = 1767225600.0  # the vectors' default epoch, 2026-01-01T00:00:00Z

# The title of each step: the state diagram's names and algorithm.md's headings
# ("## Step 3.3: ...") are both this text; check_headings() keeps them equal.
STEP_TITLES: dict[Step, str] = {
    Step.IP_LITERAL: "an IP literal",
    Step.EXPLICIT_PORT: "an explicit port",
    Step.WELL_KNOWN: "the well-known",
    Step.DELEGATED_IP_LITERAL: "delegated to an IP literal",
    Step.DELEGATED_EXPLICIT_PORT: "delegated with a port",
    Step.DELEGATED_SRV: "delegated without a port, `_matrix-fed._tcp` SRV",
    Step.DELEGATED_LEGACY_SRV: "delegated, the deprecated `_matrix._tcp` SRV",
    Step.DELEGATED_ADDRESS: "delegated, no SRV record, port 8448",
    Step.SRV: "no valid delegation, `_matrix-fed._tcp` SRV",
    Step.LEGACY_SRV: "the deprecated `_matrix._tcp` SRV",
    Step.ADDRESS: "the hostname itself, port 8448",
}

# What each event means, in full: the diagram's edge labels are Event values, and this
# is what the table and the notes say about them. A new Event without a line here stops
# the generator, so the page cannot fall behind the machine.
EVENT_CONDITIONS: dict[Event, str] = {
    Event.HOSTNAME_IS_IP_LITERAL: "the server name is `[IPv6]` or an IPv4 address",
    Event.EXPLICIT_PORT: "a DNS name with `:port`",
    Event.NO_PORT: "a DNS name without a port",
    Event.DELEGATED_TO_IP_LITERAL: "`m.server` (fetched, cached, or a stale delegation kept "
    "by I-17) is an IP literal",
    Event.DELEGATED_WITH_PORT: "`m.server` (fetched, cached or kept by I-17) has a port",
    Event.DELEGATED_WITHOUT_PORT: "`m.server` (fetched, cached or kept by I-17) has no port",
    Event.WELL_KNOWN_ERROR: "an error response (non-200, bad body, refused redirect, network "
    "or certificate failure) and no recent delegation to keep (I-17)",
    Event.NO_SRV_RECORD: "NXDOMAIN or NODATA; by default also SERVFAIL, REFUSED or a timeout "
    "(`srv_failure=as_absent`, I-18); a lone `.` target only with `srv_dot=as_absent` (I-19)",
    Event.NO_SRV_RECORD_LEGACY_OFF: "as above, with `legacy_srv=False` (I-25)",
    Event.TARGETS_FOUND: "at least one target with an allowed address",
    Event.FAILED: "no usable target",
}

_FAILED_BY_STEP_3 = "only the overall deadline passing mid-fetch (`deadline_exceeded`)"


def _label(state: State) -> str:
    if isinstance(state, Step):
        return f"Step {state.value}: {STEP_TITLES[state]}"
    return state.name.lower()


def _node(state: State) -> str:
    if isinstance(state, Step):
        return "S" + state.value.replace(".", "_")
    return state.name


def _mermaid(text: str) -> str:
    """Label text for mermaid, which reads `_x_` as emphasis and drops backticks."""
    return text.replace("`", "").replace("_", "#95;")


def _steps(states: list[State]) -> str:
    names = [s.value for s in states if isinstance(s, Step)]
    return "Steps " + ", ".join(names) if len(names) > 1 else f"Step {names[0]}"


def _table_head(*columns: str) -> list[str]:
    """A Markdown table's header row and the rule under it."""
    return ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]


def _error_kinds_by_step(vectors: list[Vector]) -> dict[str, set[str]]:
    kinds: dict[str, set[str]] = defaultdict(set)
    for vector in vectors:
        for step in vector.steps:
            expect = step["expect"]
            if "error" in expect and expect.get("step"):
                kinds[expect["step"]].add(expect["error"])
    return kinds


def state_machine(vectors: list[Vector]) -> str:
    missing = set(Event) - set(EVENT_CONDITIONS)
    if missing:
        raise SystemExit(f"generate: no EVENT_CONDITIONS for {sorted(e.name for e in missing)}")
    by_edge: dict[tuple[Event, State], list[State]] = defaultdict(list)
    for (source, event), target in TRANSITIONS.items():
        by_edge[(event, target)].append(source)
    ending = [s for s in by_edge[(Event.TARGETS_FOUND, Phase.RESOLVED)]]
    failing = [s for s in by_edge[(Event.FAILED, Phase.FAILED)] if s is not Step.WELL_KNOWN]
    kinds = _error_kinds_by_step(vectors)
    seen_kinds = sorted({k for s in failing if isinstance(s, Step) for k in kinds[s.value]})

    lines = [
        "---",
        "hide:",
        "  - toc  # the diagram needs the width",
        "---",
        "",
        "# The state machine",
        "",
        "<!-- Generated by docs/tools/generate.py from mxresolve._core.machine.TRANSITIONS;",
        "     do not edit by hand. -->",
        "",
        'Every state but `start`, `resolved` and `failed` is a step of "Resolving server',
        'names" (Matrix spec v1.19), named as in [the algorithm](algorithm.md). Each move is',
        "a row of `TRANSITIONS`; a move that is not in the table raises `LocalProtocolError`.",
        "",
        "Three things the table alone does not show:",
        "",
        "- **Invalid server names never enter the machine.** `parse_server_name()` rejects",
        "  them before `start` (the result is `invalid_server_name` with no step).",
        "- **Step 3 can reuse a stale delegation.** When the well-known is *unavailable*",
        "  (timeout, refused, TLS, 5xx, 429: [the full list](unavailable.md)) and a valid",
        "  delegation expired less than `stale_if_error` (1 h) ago, that `m.server` is used",
        "  again and step 3 leaves by the same three `m.server` edges (I-17).",
        "- **Step 3 fails only on the deadline.** A well-known error never ends the",
        "  resolution: it leads to step 4. `3 → failed` means " + _FAILED_BY_STEP_3 + ".",
        "",
        "```mermaid",
        "flowchart TD",
    ]
    shapes = {
        Phase.START: ('(["', '"])'),
        Phase.RESOLVED: ('(["', '"])'),
        Phase.FAILED: ('(["', '"])'),
    }
    lines.append('    NAME(("server name"))')
    # Not a state of the machine: the parser turns such names away before START.
    lines.append('    REJECTED["invalid server name: never enters the machine"]:::outside')
    for state in [Phase.START, *Step, Phase.RESOLVED, Phase.FAILED]:
        left, right = shapes.get(state, ('["', '"]'))
        lines.append(f"    {_node(state)}{left}{_mermaid(_label(state))}{right}")
    lines.append('    ends{"ended"}')
    lines.append(f'    NAME -- "{_mermaid("parse_server_name")} rejects it" --> REJECTED')
    lines.append(f"    NAME --> {_node(Phase.START)}")
    for (event, target), sources in by_edge.items():
        if target in (Phase.RESOLVED, Phase.FAILED):
            continue
        for source in sources:
            lines.append(f'    {_node(source)} -- "{event.value}" --> {_node(target)}')
    for state in ending:
        lines.append(f"    {_node(state)} --> ends")
    lines.append(f'    ends -- "{Event.TARGETS_FOUND.value}" --> {_node(Phase.RESOLVED)}')
    lines.append(f'    ends -- "{Event.FAILED.value}" --> {_node(Phase.FAILED)}')
    lines.append(f'    {_node(Step.WELL_KNOWN)} -- "deadline only" --> {_node(Phase.FAILED)}')
    stale = _mermaid("unavailable + a recent delegation: reuse it (stale_if_error, I-17)")
    srv = "no SRV record includes SERVFAIL and timeouts (I-18); a lone '.' target fails (I-19)"
    lines += [
        f'    STALE>"{stale}"]:::note -.- {_node(Step.WELL_KNOWN)}',
        f'    NOSRV>"{srv}"]:::note -.- {_node(Step.SRV)}',
        f"    NOSRV -.- {_node(Step.DELEGATED_SRV)}",
        "    classDef outside stroke-dasharray: 5 5",
        "    classDef note fill:#fff8e1,stroke:#f9a825",
        "```",
        "",
        "The diamond gathers the steps that can end a resolution: each of them either found",
        "targets or failed. Flags (yellow) are notes; the dashed box is outside the machine.",
        "",
        "## Every move",
        "",
        "Moves that several steps share are one row.",
        "",
        *_table_head("From", "Event", "When", "To"),
    ]
    described: set[Event] = set()
    for (event, target), sources in by_edge.items():
        when = EVENT_CONDITIONS[event] if event not in described else "as above"
        described.add(event)
        if event is Event.FAILED:
            sources = [s for s in sources if s is not Step.WELL_KNOWN]
            when = f"{when}: " + ", ".join(f"`{k}`" for k in seen_kinds) + " (as the vectors show)"
        source_text = _steps(sources) if sources != [Phase.START] else "start"
        lines.append(f"| {source_text} | {event.value} | {when} | {_label(target)} |")
    lines.append(f"| Step 3 | failed | {_FAILED_BY_STEP_3} | failed |")
    lines += [
        "",
        "A `deadline_exceeded` can end any step that waits for the network; the machine",
        "checks the deadline each time an outcome comes back.",
    ]
    return "\n".join(lines) + "\n"


def check_headings(algorithm_text: str) -> None:
    """algorithm.md's step headings must be the state names."""
    found = dict(re.findall(r"^#+ Step ([\d.]+): (.+)$", algorithm_text, flags=re.M))
    for step, title in STEP_TITLES.items():
        if found.get(step.value) != title:
            raise SystemExit(
                f"generate: docs/algorithm.md needs the heading 'Step {step.value}: {title}' "
                f"(found {found.get(step.value)!r})"
            )


# --- traces -------------------------------------------------------------------------


def vector_trace(vector: Vector) -> str:
    """A vector's run as the CLI explains it; several resolutions get a t= header each."""
    result = run_vector(vector)
    blocks: list[str] = []
    for step_result, raw in zip(result.steps, vector.steps, strict=True):
        if step_result.result is None:
            raise ValueError(f"{vector.id} / {step_result.name}: the step gave no result")
        if len(vector.steps) > 1:
            if blocks:
                blocks.append("")
            blocks.append(f"--- t={raw.get('at', 0)} s: {step_result.name} ---")
        blocks.append(render_result(step_result.result))
    return "\n".join(blocks)


# --- the step table -----------------------------------------------------------------


@dataclass(frozen=True)
class StepRule:
    """One row of the summary table, and the same rule as code to check the vectors.

    ``expect`` gets the server name and the delegated name (or None) and returns the
    fields every target of that step must have; ``None`` for a field the rule cannot
    predict from the names (the SRV record's port).
    """

    step: Step
    when: str
    lookups: str
    port: str
    host_header: str
    certificate: str
    sni: str
    expect: Callable[[ServerName, ServerName | None], dict[str, Any]]


@dataclass(frozen=True)
class _Way:
    """How a step makes targets from a name: the table's last four columns and their code.

    Steps 3.1 to 3.5 do to `m.server` what steps 1, 2, 4, 5 and 6 do to the server name,
    so each way is written once, its text with ``{port}``, ``{name}`` and ``{hostname}``
    for the words that name the one or the other.
    """

    port: str
    host_header: str
    certificate: str
    sni: str
    expect: Callable[[ServerName], dict[str, Any]]


_IP_LITERAL = _Way(
    "the {port} port, else 8448",
    "{name} as written, with its port if it has one",
    "the IP address",
    "none",
    lambda name: {
        "port": name.port or DEFAULT_PORT,
        "host_header": name.text,
        "tls_server_name": name.host,
        "sni": None,
    },
)
_EXPLICIT_PORT = _Way(
    "the {port} port",
    "{name} as written, with its port",
    "{hostname}",
    "{hostname}",
    lambda name: {
        "port": name.port,
        "host_header": name.text,
        "tls_server_name": name.host,
        "sni": name.host,
    },
)
_SRV = _Way(  # no "port": the SRV record's, which the names cannot predict
    "the SRV record's port",
    "{hostname}, no port",
    "{hostname} (never the SRV target)",
    "{hostname}",
    lambda name: {"host_header": name.hostname, "tls_server_name": name.host, "sni": name.host},
)
_PORT_8448 = _Way(
    "8448",
    "{hostname}, no port",
    "{hostname}",
    "{hostname}",
    lambda name: {
        "port": DEFAULT_PORT,
        "host_header": name.hostname,
        "tls_server_name": name.host,
        "sni": name.host,
    },
)

_SERVER_NAME_WORDS = {"port": "given", "name": "the server name", "hostname": "the hostname"}
_DELEGATED_WORDS = {"port": "delegated", "name": "`m.server`", "hostname": "the delegated hostname"}


def _server_name(name: ServerName, delegated: ServerName | None) -> ServerName:
    return name


def _delegated(name: ServerName, delegated: ServerName | None) -> ServerName:
    assert delegated is not None
    return delegated


def _rule(step: Step, when: str, lookups: str, way: _Way) -> StepRule:
    """``way`` applied to the name the step works on: the delegated one in steps 3.x."""
    on_delegated = step.value.startswith("3.")
    words = _DELEGATED_WORDS if on_delegated else _SERVER_NAME_WORDS
    pick = _delegated if on_delegated else _server_name
    return StepRule(
        step,
        when,
        lookups,
        way.port.format(**words),
        way.host_header.format(**words),
        way.certificate.format(**words),
        way.sni.format(**words),
        lambda n, d: way.expect(pick(n, d)),
    )


STEP_RULES: tuple[StepRule, ...] = (
    _rule(Step.IP_LITERAL, "the server name is an IP literal", "nothing", _IP_LITERAL),
    _rule(
        Step.EXPLICIT_PORT, "a DNS name with a port", "AAAA and A of the hostname", _EXPLICIT_PORT
    ),
    _rule(
        Step.DELEGATED_IP_LITERAL,
        "`m.server` is an IP literal",
        "the well-known, then nothing",
        _IP_LITERAL,
    ),
    _rule(
        Step.DELEGATED_EXPLICIT_PORT,
        "`m.server` is a DNS name with a port",
        "the well-known; AAAA and A of the delegated hostname",
        _EXPLICIT_PORT,
    ),
    _rule(
        Step.DELEGATED_SRV,
        "`m.server` is a DNS name without a port",
        "the well-known; SRV `_matrix-fed._tcp.<delegated>`; AAAA and A of each target",
        _SRV,
    ),
    _rule(
        Step.DELEGATED_LEGACY_SRV,
        "as 3.3, and no `_matrix-fed._tcp` record (deprecated)",
        "SRV `_matrix._tcp.<delegated>`; AAAA and A of each target",
        _SRV,
    ),
    _rule(
        Step.DELEGATED_ADDRESS,
        "as 3.3, and no SRV record at all",
        "AAAA and A of the delegated hostname",
        _PORT_8448,
    ),
    _rule(
        Step.SRV,
        "a DNS name without a port, and no valid delegation (step 3 gave an error)",
        "SRV `_matrix-fed._tcp.<hostname>`; AAAA and A of each target",
        _SRV,
    ),
    _rule(
        Step.LEGACY_SRV,
        "as 4, and no `_matrix-fed._tcp` record (deprecated)",
        "SRV `_matrix._tcp.<hostname>`; AAAA and A of each target",
        _SRV,
    ),
    _rule(Step.ADDRESS, "as 4, and no SRV record at all", "AAAA and A of the hostname", _PORT_8448),
)

_DELEGATION = re.compile(r"m\.server is '([^']*)'|last valid delegation '([^']*)'")


def _delegated_name(result: Resolution | ResolutionFailure) -> ServerName | None:
    """The delegation the machine acted on, as its trace states it."""
    found = None
    for event in result.trace:
        match = _DELEGATION.search(event.message)
        if match:
            found = match.group(1) or match.group(2)
    return None if found is None else parse_server_name(found)


def check_step_rules(vectors: list[Vector]) -> list[str]:
    """Each vector step that expects targets, against the table's rule for its step."""
    rules = {rule.step.value: rule for rule in STEP_RULES}
    problems: list[str] = []
    checked = 0
    for vector in vectors:
        result = run_vector(vector)
        for step_result, raw in zip(result.steps, vector.steps, strict=True):
            expect = raw["expect"]
            if "targets" not in expect or expect.get("step") not in rules:
                continue
            name = parse_server_name(raw["resolve"])
            if step_result.result is None:
                problems.append(f"{vector.id} / {step_result.name}: the step gave no result")
                continue
            delegated = _delegated_name(step_result.result)
            if expect["step"].startswith("3.") and delegated is None:
                problems.append(f"{vector.id} / {step_result.name}: no delegation in the trace")
                continue
            wanted = rules[expect["step"]].expect(name, delegated)
            targets = [t for item in expect["targets"] for t in (item.get("any_order", [item]))]
            for target in targets:
                for key, value in wanted.items():
                    if key in target and target[key] != value:
                        problems.append(
                            f"{vector.id} / {step_result.name}: step {expect['step']} "
                            f"{key} is {target[key]!r} in the vector, {value!r} by the table"
                        )
                checked += 1
    if checked < 50:
        problems.append(f"only {checked} expected targets were checked; the check is broken")
    return problems


# Names in unusual forms, each shown by the run of a vector.
FORM_EXAMPLES = (
    ("IPv6 literal", "step1::ipv6-default-port"),
    ("IPv6 literal with a port", "step1::ipv6-with-port"),
    ("IPv6, upper-case hex", "grammar::ipv6-uppercase-hex"),
    ("IPv4-mapped IPv6", "grammar::ipv6-ipv4-mapped"),
    ("delegated to IPv6", "step3.1::ipv6-default-port"),
    ("delegated to IPv6 with port 8448", "step3.1::ipv6-explicit-default-port-kept-in-host"),
    ("trailing dot, with a port", "grammar::trailing-dot"),
    ("trailing dot, step 6", "step6::trailing-dot"),
    ("trailing dot in `m.server`", "step3.3::trailing-dot-m-server"),
    ("upper case, with a port", "grammar::uppercase-dns-name"),
    ("upper case, step 6", "step6::uppercase-name"),
    ("upper case in `m.server`", "step3.3::uppercase-m-server"),
)


def _cell(text: str | None) -> str:
    return "(none)" if text is None else f"`{text}`"


def _names(target: Target) -> str:
    """A row's `Host` header, certificate name and SNI cells."""
    return f"{_cell(target.host_header)} | {_cell(target.tls_server_name)} | {_cell(target.sni)}"


def _first_target(vector: Vector) -> tuple[Resolution, Target, ServerName | None]:
    """The vector's first resolution, its first target, and the delegation it acted on."""
    result = run_vector(vector).steps[0].result
    if not isinstance(result, Resolution):
        raise SystemExit(f"generate: {vector.id} does not resolve")
    return result, result.targets[0], _delegated_name(result)


def steps_page(vectors: list[Vector]) -> str:
    by_id = {v.id: v for v in vectors}
    lines = [
        "---",
        "hide:",
        "  - toc  # the tables need the width",
        "---",
        "",
        "# The steps at a glance",
        "",
        "<!-- Generated by docs/tools/generate.py; do not edit by hand. -->",
        "",
        'One row per step of "Resolving server names" (Matrix spec v1.19) that can give',
        "targets. The first step that applies decides. *Hostname* is the server name without",
        "its port; *delegated* is the `m.server` of a valid well-known (step 3). The",
        "certificate name and SNI drop a trailing dot and are lower case; the `Host` header",
        "keeps the name exactly as written. Steps 3.1 to 3.5 run only after step 3 found a",
        "valid delegation (or kept a recent one: [I-17](interpretations.md#i-17-a-recent-"
        "delegation-outlives-a-short-outage-stale-if-error)).",
        "",
        *_table_head(
            "Step",
            "When it applies",
            "What is looked up",
            "Port",
            "`Host` header",
            "Certificate name",
            "SNI",
        ),
    ]
    for rule in STEP_RULES:
        lines.append(
            f"| [{rule.step.value}](algorithm.md#step-{rule.step.value.replace('.', '')}-"
            f"{_slug(STEP_TITLES[rule.step])}) | {rule.when} | {rule.lookups} | {rule.port} | "
            f"{rule.host_header} | {rule.certificate} | {rule.sni} |"
        )
    lines += [
        "",
        "Step 3 itself gives no targets: it fetches `https://<hostname>/.well-known/matrix/server`",
        "(a request whose own `Host` is the hostname and whose certificate must be valid for it)",
        "and picks 3.1 to 3.5, or step 4 on an error.",
        "",
        "This table is checked: `docs/tools/generate.py --check` (run by the test suite)",
        "applies each row, as code, to every vector that expects targets, and fails if the",
        "`port`, `Host`, certificate name or SNI a vector expects differs from the row.",
        "",
        "## The same rules, worked",
        "",
        "One resolution per step, from the vectors `example::step-N` (their full traces are",
        "in [the algorithm](algorithm.md)).",
        "",
        *_table_head(
            "Step",
            "Server name",
            "`m.server`",
            "Connect to",
            "`Host` header",
            "Certificate name",
            "SNI",
        ),
        *_worked_rows(by_id),
        "",
        "## IPv6, trailing dots and upper case",
        "",
        "Each row is a vector run by mxresolve: the same rules, applied to unusual forms.",
        "",
        *_table_head(
            "Form", "Server name", "Step", "Connect to", "`Host` header", "Certificate name", "SNI"
        ),
    ]
    for form, vid in FORM_EXAMPLES:
        vector = by_id[vid]
        result, target, delegated = _first_target(vector)
        name = f"`{vector.steps[0]['resolve']}`"
        if delegated is not None:
            name += f" → `m.server` `{delegated.text}`"
        lines.append(
            f"| {form} | {name} | {result.step.value} | `{target.host}` port {target.port} | "
            f"{_names(target)} |"
        )
    lines += [
        "",
        "The vectors are `" + "`, `".join(vid for _, vid in FORM_EXAMPLES) + "`; run any with",
        "`python -m mxresolve vectors run --explain ID`.",
    ]
    return "\n".join(lines) + "\n"


def _worked_rows(by_id: dict[str, Vector]) -> list[str]:
    rows = []
    for rule in STEP_RULES:
        vector = by_id[f"example::step-{rule.step.value}"]
        result, target, delegated = _first_target(vector)
        if result.step is not rule.step:
            raise SystemExit(f"generate: {vector.id} is not decided by step {rule.step.value}")
        rows.append(
            f"| {rule.step.value} | `{result.server_name}` | "
            f"{_cell(None if delegated is None else delegated.text)} | "
            f"`{target.host}:{target.port}` | {_names(target)} |"
        )
    return rows


def _slug(title: str) -> str:
    text = re.sub(r"[^\w\s-]", "", title.lower())
    return re.sub(r"[\s]+", "-", text.strip())


# --- the "unavailable" classification ------------------------------------------------

_WK = "https://example.org/.well-known/matrix/server"

# The settings a vector with no settings runs with (mxresolve._tools.vectors): the
# defaults, but every address allowed (the worlds use documentation addresses, which the
# default IP policy refuses) and the fetch resolving its own host (v1 worlds).
_VECTOR_DEFAULTS = dataclasses.replace(_settings({}), resolve_well_known_host=False)


def _scenario_world() -> dict[str, Any]:
    return {
        "dns": {
            "_matrix-fed._tcp.example.org.": {
                "SRV": {
                    "ttl": 0,
                    "records": [
                        {"priority": 0, "weight": 0, "port": 8448, "target": "fb.example.org."}
                    ],
                }
            },
            "fb.example.org.": {"A": {"ttl": 0, "records": ["198.51.100.30"]}},
            "matrix.example.net.": {"A": {"ttl": 0, "records": ["203.0.113.9"]}},
        },
        "https": {
            _WK: {
                "status": 200,
                "headers": [["Cache-Control", "max-age=3600"]],
                "body": '{"m.server": "matrix.example.net:8448"}',
            }
        },
    }


def _keeps_delegation(response: dict[str, Any]) -> bool:
    """Good fetch at 0 s; at 3600 s the well-known gives ``response``. Stale kept?"""
    world = FakeWorld(_scenario_world(), now=EPOCH)
    cache = ResolverCache()
    settings = _VECTOR_DEFAULTS
    first = world.resolve("example.org", cache=cache, settings=settings)
    assert isinstance(first, Resolution)
    assert first.step is Step.DELEGATED_EXPLICIT_PORT
    world.patch({"https": {_WK: {"status": None, "headers": None, "body": None, **response}}})
    world.now = EPOCH + 3600
    second = world.resolve("example.org", cache=cache, settings=settings)
    if isinstance(second, Resolution) and second.step is Step.DELEGATED_EXPLICIT_PORT:
        return True
    assert second.step is Step.SRV, second
    return False


_FAILURE_MEANINGS = {
    HttpsFailureKind.NO_ADDRESS: "the well-known host has no address",
    HttpsFailureKind.ADDRESS_REFUSED: "the IP policy refused every address of the host",
    HttpsFailureKind.CONNECTION_REFUSED: "the TCP connection was refused",
    HttpsFailureKind.CONNECT_TIMEOUT: "the TCP connection timed out",
    HttpsFailureKind.TLS_HANDSHAKE_FAILED: "the TLS handshake failed",
    HttpsFailureKind.CERTIFICATE_INVALID: "the certificate did not verify",
    HttpsFailureKind.READ_TIMEOUT: "the response did not come in time",
    HttpsFailureKind.CONNECTION_RESET: "the connection was reset",
    HttpsFailureKind.BODY_TOO_LARGE: "the body is over `max_body_bytes`",
    HttpsFailureKind.HEADERS_TOO_LARGE: "the headers are over the limit",
    HttpsFailureKind.PROTOCOL_ERROR: "the response is not valid HTTP/1.1",
}

_RESPONSE_ROWS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("HTTP 404", {"status": 404, "body": "{}"}),
    ("HTTP 410", {"status": 410, "body": "{}"}),
    ("HTTP 429", {"status": 429, "body": "{}"}),
    ("HTTP 500", {"status": 500, "body": "{}"}),
    ("HTTP 503", {"status": 503, "body": "{}"}),
    ("HTTP 200, body not JSON", {"status": 200, "body": "<html>"}),
    ("HTTP 200, no `m.server`", {"status": 200, "body": "{}"}),
    (
        "redirect to `http:`",
        {"status": 302, "headers": [["Location", "http://example.org/x"]], "body": ""},
    ),
)


def _pins(vectors: list[Vector]) -> dict[str, list[str]]:
    """Vectors (I-17) whose later step patches the well-known to a failure or status."""
    pins: dict[str, list[str]] = defaultdict(list)
    for vector in vectors:
        if vector.raw.get("interpretation") != "I-17":
            continue
        for step in vector.steps:
            for response in step.get("world_patch", {}).get("https", {}).values():
                if response.get("failure"):
                    pins[response["failure"]].append(vector.id)
                elif response.get("status"):
                    pins[f"HTTP {response['status']}"].append(vector.id)
    return pins


def _class_cell(keeps: bool) -> str:
    return "**unavailable**: stale delegation kept" if keeps else "definite: step 4"


def _pinned_cell(vector_ids: list[str]) -> str:
    return ", ".join(f"`{v}`" for v in sorted(vector_ids)) or "(none)"


def unavailable_page(vectors: list[Vector]) -> str:
    pins = _pins(vectors)
    lines = [
        "# When the well-known is unavailable",
        "",
        "<!-- Generated by docs/tools/generate.py; do not edit by hand. -->",
        "",
        "A well-known fetch that fails is an *error response* (spec v1.19, step 3), and",
        "normally resolution goes on at step 4. mxresolve splits the failures in two",
        "([I-17](interpretations.md#i-17-a-recent-delegation-outlives-a-short-outage-"
        "stale-if-error)):",
        "",
        "- **unavailable**: the host is down or unreachable. If a valid delegation expired",
        "  less than `stale_if_error` (default 3600 s) ago, it is used again, with a trace",
        "  warning, instead of step 4.",
        "- **definite**: the server answered, or we refused what it sent. The old delegation",
        "  ends at once and step 4 decides.",
        "",
        "Either way the failure is cached on the back-off schedule (60 s, 120 s, ... up to an",
        "hour; see [timelines](timelines.md)). Each row below was found by running the",
        "machine: a delegation cached for 3600 s, then at 3600 s the well-known gives the",
        "row's failure. The failure kinds are `HttpsFailureKind`; the class of each is",
        "`mxresolve._core.machine._UNAVAILABLE`, and the generator stops if the run and that",
        "set disagree.",
        "",
        "## Failures before a response",
        "",
        *_table_head("`HttpsFailureKind`", "Meaning", "Class", "Pinned by"),
    ]
    for kind in HttpsFailureKind:
        keeps = _keeps_delegation({"failure": kind.value})
        if keeps != (kind in _UNAVAILABLE):
            raise SystemExit(f"generate: {kind.value}: the run and _UNAVAILABLE disagree")
        lines.append(
            f"| `{kind.value}` | {_FAILURE_MEANINGS[kind]} | {_class_cell(keeps)} | "
            f"{_pinned_cell(pins.get(kind.value, []))} |"
        )
    lines += [
        "",
        "## Responses",
        "",
        "Any 5xx status and 429 count as unavailable; every other non-200 status, a body",
        "that is not a valid delegation, and a refused redirect are definite.",
        "",
        *_table_head("Response", "Class", "Pinned by"),
    ]
    for label, response in _RESPONSE_ROWS:
        keeps = _keeps_delegation(response)
        lines.append(f"| {label} | {_class_cell(keeps)} | {_pinned_cell(pins.get(label, []))} |")
    lines += [
        "",
        "`stale_if_error=0` turns the reuse off: every failure then leads to step 4, as the",
        "spec's text reads on its own.",
    ]
    return "\n".join(lines) + "\n"


# --- timelines ----------------------------------------------------------------------


@dataclass(frozen=True)
class Moment:
    at: float
    result: Resolution | ResolutionFailure
    fetched: bool
    asked: tuple[str, ...]
    cache: ResolverCache


def _replay(
    world_json: dict[str, Any],
    times: list[float],
    settings: Settings,
    patches: dict[float, dict[str, Any]] | None = None,
) -> Iterator[Moment]:
    """Resolve example.org at each of ``times`` against one cache: the machine, for real."""
    world = FakeWorld(world_json, now=EPOCH)
    cache = ResolverCache()
    rng = random.Random(0)
    for at in times:
        if patches and at in patches:
            world.patch(patches[at])
        world.now = EPOCH + at
        before = len(world.requests)
        result = world.resolve("example.org", cache=cache, settings=settings, random=rng.random)
        made = world.requests[before:]
        yield Moment(
            at=at,
            result=result,
            fetched=any(isinstance(r, HttpsGet) for r in made),
            asked=tuple(str(r) for r in made),
            cache=cache,
        )


def _replay_vector(vectors: list[Vector], vid: str) -> Iterator[Moment]:
    """The resolutions of vector ``vid``: its steps' times, its world, its settings."""
    vector = next(v for v in vectors if v.id == vid)
    times = [float(step.get("at", 0)) for step in vector.steps]
    return _replay(vector.world, times, vector_settings(vector))


def _cached(row: int, at: float, end: float, style: str) -> svgplot.Bar:
    """An answer cached from ``at`` until ``end``, labelled with how long that is."""
    return svgplot.Bar(row, at, end, style, f"{end - at:.0f} s")


def _step_of(result: Resolution | ResolutionFailure) -> str:
    if isinstance(result, ResolutionFailure):
        return f"failed ({result.kind.value})"
    return f"step {result.step.value}"


def _wk_entry(cache: ResolverCache) -> Any:
    entry = cache.well_known("example.org")
    assert entry is not None
    return entry


def _day_timeline() -> tuple[str, list[str]]:
    """The well-known cache over a day, for three kinds of response headers."""
    cases = [
        ("no cache headers (24 h default)", []),
        ("Cache-Control: max-age=28800", [["Cache-Control", "max-age=28800"]]),
        ("Cache-Control: max-age=60", [["Cache-Control", "max-age=60"]]),
    ]
    bars, marks = [], []
    table = _table_head("Response headers", "Cached for", "Fetches in 24 h", "Fetched at")
    times = [h * 3600.0 for h in range(25)]
    for row, (label, headers) in enumerate(cases):
        world = {
            "dns": {"matrix.example.net.": {"A": {"ttl": 86400, "records": ["203.0.113.9"]}}},
            "https": {
                _WK: {
                    "status": 200,
                    "headers": headers,
                    "body": '{"m.server": "matrix.example.net:8448"}',
                }
            },
        }
        fetches = []
        for moment in _replay(world, times, _VECTOR_DEFAULTS):
            entry = _wk_entry(moment.cache)
            if moment.fetched:
                fetches.append(moment.at)
                end = entry.expires_at - EPOCH
                bars.append(_cached(row, moment.at, end, "fresh"))
            marks.append(
                svgplot.Mark(
                    row,
                    moment.at,
                    "fetch" if moment.fetched else "hit",
                    f"t={moment.at:.0f} s: {'fetched' if moment.fetched else 'from the cache'}",
                )
            )
        lifetime = bars[-1].end - bars[-1].start
        table.append(
            f"| {label} | {lifetime:.0f} s | {len(fetches)} | "
            + ", ".join(f"{t / 3600:g} h" for t in fetches)
            + " |"
        )
    svg = svgplot.timeline(
        title="The well-known cache over a day (a resolution every hour)",
        rows=[c[0] for c in cases],
        bars=bars,
        marks=marks,
        until=24 * 3600,
        tick=3 * 3600,
        unit="h",
    )
    return svg, table


def _backoff_timeline(vectors: list[Vector]) -> tuple[str, list[str], str]:
    vid = "well-known-cache::backoff-default-reaches-one-hour"
    bars, marks, rows = [], [], []
    table = _table_head(
        "Consecutive failure", "Fetched at", "Cached for", "Next fetch at", "Decided by"
    )
    for moment in _replay_vector(vectors, vid):
        if not moment.fetched:
            continue
        entry = _wk_entry(moment.cache)
        row = entry.failures - 1
        end = entry.expires_at - EPOCH
        rows.append(f"failure {entry.failures}")
        bars.append(_cached(row, moment.at, end, "failure"))
        marks.append(svgplot.Mark(row, moment.at, "fail", f"t={moment.at:.0f} s: HTTP 404"))
        table.append(
            f"| {entry.failures} | {moment.at:.0f} s | {end - moment.at:.0f} s | {end:.0f} s | "
            f"{_step_of(moment.result)} |"
        )
    svg = svgplot.timeline(
        title="Back-off: a well-known that answers 404",
        rows=rows,
        bars=bars,
        marks=marks,
        until=15000,
        tick=1800,
        unit="s",
    )
    return svg, table, vid


def _stale_timeline() -> tuple[str, list[str]]:
    """A delegation (max-age 3600), then from 3600 s on the well-known times out."""
    world = _scenario_world()
    patch = {
        "https": {_WK: {"status": None, "headers": None, "body": None, "failure": "read_timeout"}}
    }
    times = [float(t) for t in range(0, 9001, 60)] + [7199.0]
    times.sort()
    rows = ["well-known cache", "resolutions"]
    bars, marks = [], []
    table = _table_head("t", "Well-known", "Decided by", "Note")
    last_step = None
    stale_start = stale_end = None
    for moment in _replay(world, times, _VECTOR_DEFAULTS, patches={3600.0: patch}):
        entry = _wk_entry(moment.cache)
        step = _step_of(moment.result)
        if moment.fetched:
            end = entry.expires_at - EPOCH
            style = "fresh" if entry.delegation is not None else "failure"
            bars.append(_cached(0, moment.at, end, style))
        kept = any("keeping the last valid delegation" in e.message for e in moment.result.trace)
        if kept and stale_start is None:
            stale_start = moment.at
        if not kept and stale_start is not None and stale_end is None:
            stale_end = moment.at
        if moment.fetched or step != last_step:
            marks.append(
                svgplot.Mark(
                    0,
                    moment.at,
                    "fetch" if moment.at == 0 else "fail",
                    f"t={moment.at:.0f} s: fetched",
                )
                if moment.fetched
                else svgplot.Mark(1, moment.at, "hit", f"t={moment.at:.0f} s: {step}")
            )
            what = (
                "fetch: valid, `max-age=3600`"
                if moment.at == 0
                else ("fetch: `read_timeout`" if moment.fetched else "no fetch (failure cached)")
            )
            note = "stale delegation kept (I-17)" if kept else ""
            table.append(f"| {moment.at:.0f} s | {what} | {step} | {note} |")
        last_step = step
    assert stale_start is not None
    assert stale_end is not None
    bars.append(svgplot.Bar(1, stale_start, stale_end, "stale", "stale delegation used"))
    svg = svgplot.timeline(
        title="Stale-if-error: the well-known times out from 3600 s on",
        rows=rows,
        bars=bars,
        marks=marks,
        until=9000,
        tick=900,
        unit="s",
    )
    return svg, table


def _dns_timeline(vectors: list[Vector]) -> tuple[str, list[str], str]:
    vid = "example::caching"
    keys = [
        ("well-known example.org", None, None),
        ("A matrix.example.net.", "matrix.example.net.", RecordType.A),
        ("AAAA matrix.example.net.", "matrix.example.net.", RecordType.AAAA),
    ]
    bars, marks = [], []
    table = _table_head("t", "Answer", "Asked or from cache", "Fresh until")
    for moment in _replay_vector(vectors, vid):
        for row, (label, qname, rdtype) in enumerate(keys):
            if qname is None or rdtype is None:
                asked = moment.fetched
                end = _wk_entry(moment.cache).expires_at - EPOCH
                style = "fresh"
            else:
                asked = any(a == f"DNS {rdtype.value} {qname}" for a in moment.asked)
                hit = moment.cache.dns(qname, rdtype, EPOCH + moment.at)
                end = moment.at if hit is None else hit[1] - EPOCH
                style = "fresh" if hit is not None and hit[0].records else "negative"
            if asked:
                bars.append(_cached(row, moment.at, end, style))
            marks.append(
                svgplot.Mark(
                    row,
                    moment.at,
                    "fetch" if asked else "hit",
                    f"t={moment.at:.0f} s: {'asked' if asked else 'cache'}",
                )
            )
            table.append(
                f"| {moment.at:.0f} s | {label} | {'asked' if asked else 'cache'} | {end:.0f} s |"
            )
    svg = svgplot.timeline(
        title="DNS TTLs and the well-known, three resolutions (example::caching)",
        rows=[k[0] for k in keys],
        bars=bars,
        marks=marks,
        until=7800,
        tick=1800,
        unit="s",
    )
    return svg, table, vid


def timelines_page(vectors: list[Vector]) -> tuple[str, dict[str, str]]:
    day_svg, day_table = _day_timeline()
    backoff_svg, backoff_table, backoff_vid = _backoff_timeline(vectors)
    stale_svg, stale_table = _stale_timeline()
    dns_svg, dns_table, dns_vid = _dns_timeline(vectors)
    svgs = {
        "well-known-day.svg": day_svg,
        "backoff.svg": backoff_svg,
        "stale-if-error.svg": stale_svg,
        "dns-ttl.svg": dns_svg,
    }
    s = Settings()
    lines = [
        "# Timelines: caching and back-off",
        "",
        "<!-- Generated by docs/tools/generate.py; do not edit by hand. -->",
        "",
        "Each plot is drawn from a run of the real state machine against a FakeWorld, with",
        "the same numbers in the table beside it. Time runs left to right from the first",
        "resolution. Filled dots are requests that went out; hollow dots are answers taken",
        "from the cache. Defaults: a valid well-known is cached for its `Cache-Control` or",
        f"`Expires` lifetime, else {s.well_known_default_ttl:g} s, within",
        f"[{s.well_known_min_ttl:g} s, {s.well_known_max_ttl:g} s]; failures for",
        f"{s.failure_initial_ttl:g} s, doubling up to {s.failure_max_ttl:g} s; an expired",
        f"delegation is kept up to {s.stale_if_error:g} s while the host is unavailable.",
        "",
        "## The question: the well-known times out an hour after a good fetch",
        "",
        "It depends on how long the good answer was cached:",
        "",
        "- **No cache headers** (the common case): the delegation is fresh for 24 h, so an",
        "  hour later the well-known is not fetched at all. The timeout is never seen.",
        "- **`max-age=3600`** (or anything under an hour): the delegation has just expired, so",
        "  it is fetched again and times out (`read_timeout`). That failure means",
        "  *unavailable* ([the classification](unavailable.md)), so the expired delegation is",
        "  used again, with a warning, for up to an hour after it expired; the failure is",
        "  cached 60 s, then 120 s, 240 s ... between retries. After that hour, step 4.",
        "",
        "The plot below is that second case.",
        "",
        "## Stale-if-error",
        "",
        "![stale-if-error timeline](assets/timelines/stale-if-error.svg)",
        "",
        *stale_table,
        "",
        "## The well-known cache over a day",
        "",
        "![well-known cache over a day](assets/timelines/well-known-day.svg)",
        "",
        *day_table,
        "",
        "A lifetime under the 300 s floor is raised to it (I-15), so even `max-age=60` means",
        "at most one fetch every five minutes.",
        "",
        "## Back-off over repeated failures",
        "",
        f"From the vector `{backoff_vid}`: the well-known answers 404 every time; each",
        "fetch happens exactly when the previous failure expires.",
        "",
        "![back-off timeline](assets/timelines/backoff.svg)",
        "",
        *backoff_table,
        "",
        "## DNS TTLs",
        "",
        f"From the vector `{dns_vid}` (the caching example of [the algorithm](algorithm.md)):",
        "the well-known is cached 3600 s (`max-age`), the A record 7200 s (its TTL), and the",
        "AAAA answer is a NODATA the world declares, cached 300 s like any negative answer",
        "without an SOA.",
        "",
        "![DNS TTL timeline](assets/timelines/dns-ttl.svg)",
        "",
        *dns_table,
    ]
    return "\n".join(lines) + "\n", svgs

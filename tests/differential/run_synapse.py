#!/usr/bin/env python3
"""Differential run: every loopback-world scenario through mxresolve and through Synapse.

Starts the world of ``tests/integration/world.py`` (Knot DNS + nginx + black hole on loopback),
resolves every scenario with mxresolve's sync ``Resolver`` and with Synapse 1.163.2's own
resolver classes (``benchmarks/peers/synapse_peer.py``, mode ``resolve``, one driver call per
nameserver of the world), compares them with ``compare.compare`` and writes
``docs/differential.md``. Differences are findings: the exit status is 0 whenever the run
itself worked, 1 when it broke (world, Synapse driver, mxresolve raising), 2 for bad usage.

    python tests/differential/run_synapse.py                 # needs root (port 443)
    python tests/differential/run_synapse.py --json          # also print raw results
    python tests/differential/run_synapse.py --only wk-url,srv-dot --output /tmp/d.md

``nox -s differential`` sets up both environments and runs this.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))  # the same package names pytest gives these modules

import mxresolve  # noqa: E402
from differential.compare import (  # noqa: E402
    Comparison,
    MxSide,
    SynapseSide,
    compare,
    format_endpoint,
    mx_side,
)
from integration.world import (  # noqa: E402
    SCENARIOS,
    LoopbackWorld,
    Scenario,
    WorldError,
    find_binary,
    missing_prerequisites,
)

DRIVER = ROOT / "benchmarks" / "peers" / "synapse_peer.py"
DEFAULT_SYNAPSE_PYTHON = ROOT / ".venv-synapse" / "bin" / "python"
DEFAULT_OUTPUT = ROOT / "docs" / "differential.md"
# mxresolve's limits for this run. The slow/hanging scenarios need a well-known deadline of at
# most 5 s (world.py: wk_timeout_max); the deadline matches the Synapse driver's 10 s per name.
REQUEST_TIMEOUT = 5.0
DEADLINE = 10.0
# Bound on one driver call: its own bound is 10 s per name (README), plus start-up.
DRIVER_SECONDS_PER_NAME = 15.0
DRIVER_SLACK_SECONDS = 120.0


class RunError(RuntimeError):
    """The run itself broke (as opposed to the two resolvers disagreeing)."""


# =============================================================================================
# Hand-written explanations. Each was checked against both sides' output of a real run.
# =============================================================================================

SPEC = "spec v1.19"


@dataclass(frozen=True)
class Explanation:
    """Why the two sides differ; ``aspects`` are the differences it explains (see compare)."""

    aspects: tuple[str, ...]
    text: str


DIFFERENCES: dict[str, Explanation] = {
    "wk-redir-http": Explanation(
        ("first endpoint", "endpoints", "Host header", "TLS name"),
        "The well-known answers 301 to `http://wk-plain-http.mxtest/…`. mxresolve refuses a "
        "Location that is not `https:` (I-13): the fetch is an error, no `_matrix-fed` SRV "
        "exists, so step 5 uses `_matrix._tcp` → t-legacy:8443. Synapse follows the "
        "https→http downgrade (Synapse's `well_known_resolver.py`), reads the plain-HTTP trap body and "
        "dials its delegation 127.0.3.97:8448 (nothing listens there). **mxresolve follows the "
        'spec**: step 3 is "a regular HTTPS request" and the well-known schema asks for '
        '"normal X.509 certificate validation", which a plain-HTTP hop cannot provide.',
    ),
    "wk-url": Explanation(
        ("outcome",),
        '`m.server` is `"https://deleg-port.mxtest"`, not a server name. mxresolve treats it as '
        "invalid data (I-10), continues at step 4 and ends at step 6 on wk-url.mxtest:8448. "
        "Synapse does not validate `m.server` (Synapse's `matrix_federation_agent.py`): pasted into "
        "the request URI it yields the host `https` (Host and TLS name `https:`), and the "
        "request fails on the SRV lookup of `_matrix-fed._tcp.https`, which the test "
        'nameserver refuses. **mxresolve follows the spec**: a delegated server name "uses the '
        'same grammar" as server names, and invalid data "should not result in discovery '
        'failure" (well-known schema); step 3: "If the response is invalid … skip to step 4".',
    ),
    "wk-slow": Explanation(
        ("outcome",),
        "The well-known sends its headers, then drips the body at about 1 byte/s. mxresolve's "
        f"per-request timeout ({REQUEST_TIMEOUT:g} s in this run; I-35) ends the fetch as an "
        "error and step 6 follows. Synapse has no timeout of its own on the well-known fetch "
        f"(Synapse's `well_known_resolver.py`: only the caller's federation `client_timeout`, 60 s by default); the "
        "driver stops it after its 10 s bound with nothing dialled. The spec sets no timeout; "
        "**mxresolve's result is the spec's** for a fetch that never produces a valid response "
        '(step 3: "If the response is invalid … skip to step 4"), while Synapse leaves the '
        "outcome to its caller's timeout.",
    ),
    "srv-servfail": Explanation(
        ("outcome",),
        "`_matrix-fed._tcp.srv-servfail.mxtest` answers SERVFAIL; there is no `_matrix` record. "
        'mxresolve treats an SRV lookup that got no answer as "not found" (I-18, '
        "`srv_failure=as_absent`) and resolves at step 6. Synapse re-raises a SERVFAIL when it "
        "has no cached answer, and the request fails (Synapse's `srv_resolver.py`; synapse#6589). "
        'The spec only covers a record that "was not found" (step 5) or "no SRV records were '
        "found\" (step 6), not a failed lookup: **neither side breaks the text**; mxresolve's "
        "reading keeps federation working when only the SRV zone is broken.",
    ),
    "srv-servfail-legacy": Explanation(
        ("outcome",),
        "SERVFAIL on `_matrix-fed._tcp`, but a `_matrix._tcp` record exists. mxresolve treats "
        'the failed lookup as "not found" (I-18) and uses step 5 (t-legacy:8443). Synapse '
        "stops at the SERVFAIL and never asks for `_matrix._tcp` (Synapse's `srv_resolver.py`). As for "
        'srv-servfail, the spec\'s steps 5/6 speak only of records "not found": **a gap, not a '
        "violation** on either side.",
    ),
}

NOTES: dict[str, str] = {
    "ip4-no-dns": "Both resolve the literal without DNS (the nameserver is the black hole).",
    "explicit-port": "Neither uses the trap well-known or SRV of port.mxtest (step 2, I-34).",
    "explicit-port-nxdomain": "Both fail with no fallback (step 2, I-34).",
    "wk-gone": "Both fail; neither falls back to the original name's `_matrix-fed` SRV (I-24).",
    "wk-nosrv": (
        "Both dial ::1 first. Synapse's address order is the driver's (AAAA, then A); "
        "production Synapse uses getaddrinfo's order. mxresolve lists IPv6 first (I-23)."
    ),
    "dual-stack": (
        "Both dial ::1 first. Synapse's address order is the driver's (AAAA, then A); "
        "production Synapse uses getaddrinfo's order. mxresolve lists IPv6 first (I-23)."
    ),
    "wk-srv-multi": (
        "Synapse dialled only the priority-10 target because it connected; mxresolve also "
        "lists the priority-20 fallback."
    ),
    "wk-503": (
        "Two SRV records share priority 10 (weights 60/40): each side draws the order at "
        "random (RFC 2782; I-22, Synapse's `srv_resolver.py`), so the first endpoint can differ between runs; "
        "the group is compared as a set."
    ),
    "wk-redir-308": (
        "Twisted now follows 308, although Synapse's docs say it does not (Synapse's `well_known_resolver.py`)."
    ),
    "wk-redir-loop": (
        "Both treat the loop as an error and use the `_matrix-fed` SRV: mxresolve detects the "
        "repeated URL (I-13), Synapse's redirect agent gives up after 20 hops (Synapse's `well_known_resolver.py`)."
    ),
    "wk-redir-self": (
        "Both treat the self-redirect as an error: mxresolve detects the repeated URL (I-13), "
        "Synapse's redirect agent gives up after 20 hops (Synapse's `well_known_resolver.py`)."
    ),
    "wk-empty-string": (
        '`m.server: ""`: Synapse takes it as a valid answer without delegation '
        "(Synapse's `well_known_resolver.py`), mxresolve as invalid data (I-10); both end at step 6. (They cache it "
        "differently, which this run does not observe.)"
    ),
    "wk-oversized": (
        "Both reject the 200 KiB body: Synapse's 51,200-byte limit (Synapse's `well_known_resolver.py`), "
        "mxresolve's `max_body_bytes` (I-14)."
    ),
    "wk-hang": (
        "Agreement by way of the driver. :443 accepts TCP and never answers. mxresolve's "
        "request timeout ends the fetch (I-35), then step 6. Synapse has no well-known timeout "
        "(Synapse's `well_known_resolver.py`): the driver's 10 s bound cancelled the pending fetch, and Synapse took "
        "the cancelled fetch as a failed well-known and went on to SRV and :8448 (with bounds "
        "of 4, 7 and 9.5 s it waited that long each time, then resolved). Otherwise only its "
        "caller's federation timeout would end the wait."
    ),
    "srv-cname-target": (
        'Both follow an SRV target that is a CNAME although RFC 2782 says it "MUST NOT be an '
        'alias" (I-20; synapse#19201).'
    ),
    "srv-no-address": "Both fail; neither falls through to step 6 (I-21).",
    "srv-dot": (
        'Both fail without fall-through, for different reasons: mxresolve reports the "." '
        'target as `service_unavailable` (I-19). Synapse\'s "service unavailable" check '
        "never fires against real DNS (twisted.names decodes the root target as an empty "
        "name), and the request fails with `ValueError: invalid hostname` "
        "(benchmarks/peers/README.md, known limitations)."
    ),
    "srv-dot-legacy": (
        'Both fail without falling through to step 6: mxresolve reports the "." `_matrix` '
        "target as `service_unavailable` (I-19); Synapse fails with `ValueError: invalid "
        'hostname` because its "." check never fires against real DNS (driver README).'
    ),
    "target-badcert": (
        "Resolution agrees. Synapse then fails certificate verification on the target "
        "(`VerificationError`), as mxresolve's `connect()` would; that is past resolution."
    ),
    "servfail-host": (
        "Both fail, at different points: Synapse at the SERVFAIL of its first SRV lookup (Synapse's "
        "`srv_resolver.py`), mxresolve at step 6 after treating the SRV SERVFAILs as absent (I-18) and "
        "getting SERVFAIL for the addresses too (`dns_failure`, I-27)."
    ),
    "dns-timeout": (
        f"Both fail against the black-hole nameserver: mxresolve at its {DEADLINE:g} s deadline "
        "(I-35); Synapse waits on twisted.names' own SRV retries (it passes no timeout, "
        f"Synapse's `well_known_resolver.py`) until the driver's 10 s bound."
    ),
}


# =============================================================================================
# Running both sides
# =============================================================================================


@dataclass
class Row:
    scenario: Scenario
    mx_raw: dict[str, Any]
    mx: MxSide
    syn_raw: dict[str, Any]
    syn: SynapseSide
    result: Comparison
    explanation: str
    explanation_problem: str | None


def run_mxresolve(world: LoopbackWorld, scenarios: Sequence[Scenario]) -> list[Any]:
    """Resolve each scenario with a fresh sync Resolver (fresh caches, as the driver does)."""
    results: list[Any] = []
    for s in scenarios:
        resolver = mxresolve.Resolver(
            **world.resolver_config(s),
            request_timeout=REQUEST_TIMEOUT,
            settings=mxresolve.Settings(deadline=DEADLINE),
        )
        try:
            results.append(resolver.resolve_result(s.server_name))
        except Exception as exc:  # resolve_result returns failures; anything raised is a bug
            raise RunError(f"mxresolve raised on {s.name}: {exc!r}") from exc
    return results


def run_synapse(
    python: Path, nameserver: str, cafile: str, names: Sequence[str]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One driver call for all ``names``; returns (driver document, results in input order)."""
    request = {"nameserver": nameserver, "cafile": cafile, "names": list(names), "mode": "resolve"}
    bound = DRIVER_SECONDS_PER_NAME * len(names) + DRIVER_SLACK_SECONDS
    try:
        done = subprocess.run(
            [str(python), str(DRIVER)],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            timeout=bound,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RunError(f"the Synapse driver did not finish within {bound:g} s") from exc
    except OSError as exc:
        raise RunError(f"cannot run the Synapse driver with {python}: {exc}") from exc
    tail = done.stderr.strip()[-2000:]
    try:
        document = json.loads(done.stdout)
    except json.JSONDecodeError as exc:
        raise RunError(
            f"the Synapse driver exited {done.returncode} without a JSON result:\n{tail}"
        ) from exc
    if done.returncode != 0 or "error" in document:
        raise RunError(
            f"the Synapse driver failed (exit {done.returncode}): "
            f"{document.get('error', '?')}\n{tail}"
        )
    results = document.get("results")
    if not isinstance(results, list) or [r.get("name") for r in results] != list(names):
        raise RunError("the Synapse driver's results do not match the names it was given")
    return document, results


def explain(name: str, result: Comparison) -> tuple[str, str | None]:
    """The hand-written explanation, and a problem if it does not fit what was observed."""
    known = DIFFERENCES.get(name)
    if result.verdict == "agree":
        problem = None
        if known is not None:
            problem = "an explanation is on file for a difference that did not occur"
        return NOTES.get(name, ""), problem
    if known is None:
        text = "**Unexplained**: no explanation on file for this difference (not guessed)."
        return text, "difference without an explanation"
    if set(known.aspects) != set(result.aspects):
        problem = (
            f"the explanation covers {', '.join(known.aspects)}, "
            f"the run differs in {', '.join(result.aspects)}"
        )
        return f"{known.text} **(Recheck: {problem}.)**", problem
    return known.text, None


def run(synapse_python: Path, scenarios: Sequence[Scenario]) -> tuple[list[Row], dict[str, Any]]:
    missing = missing_prerequisites()
    if missing:
        raise RunError("the loopback world cannot run here: " + "; ".join(missing))
    if not synapse_python.exists():
        raise RunError(
            f"{synapse_python} not found: create the venv from "
            "benchmarks/peers/requirements-synapse.txt (or run `nox -s differential`)"
        )
    world = LoopbackWorld()
    try:
        world.start()
    except WorldError as exc:
        raise RunError(f"the loopback world failed to start: {exc}") from exc
    meta: dict[str, Any] = {}
    try:
        t0 = time.monotonic()
        mx_results = run_mxresolve(world, scenarios)
        meta["mxresolve_seconds"] = round(time.monotonic() - t0, 1)
        by_ns: dict[str, list[int]] = {}
        for i, s in enumerate(scenarios):
            by_ns.setdefault(world.nameserver_for(s), []).append(i)
        syn_results: list[dict[str, Any] | None] = [None] * len(scenarios)
        calls = []
        t0 = time.monotonic()
        for ns, indexes in by_ns.items():
            names = [scenarios[i].server_name for i in indexes]
            document, results = run_synapse(synapse_python, ns, world.cafile, names)
            meta["synapse_version"] = document.get("version")
            kind = "black hole" if ns == world.blackhole_nameserver else "Knot"
            calls.append({"nameserver": kind, "names": len(names)})
            for i, r in zip(indexes, results, strict=True):
                syn_results[i] = r
        meta["synapse_seconds"] = round(time.monotonic() - t0, 1)
        meta["driver_calls"] = calls
    finally:
        world.stop()

    rows: list[Row] = []
    for s, mx_result, syn_raw in zip(scenarios, mx_results, syn_results, strict=True):
        assert syn_raw is not None
        mx = mx_side(mx_result)
        syn = SynapseSide.from_driver(syn_raw)
        result = compare(mx, syn)
        text, problem = explain(s.name, result)
        rows.append(Row(s, mx_result.to_json(), mx, syn_raw, syn, result, text, problem))
    return rows, meta


# =============================================================================================
# Output
# =============================================================================================


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").strip()


def _short(text: str, limit: int = 110) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _names(host: str | None, tls: str | None, sni: str | None, sni_seen: bool = True) -> str:
    sni_text = ("`" + sni + "`" if sni else "none") if sni_seen else "not observed"
    return f"Host `{host}`, TLS `{tls}`, SNI {sni_text}"


def describe_mx(mx: MxSide) -> str:
    if not mx.ok:
        assert mx.error is not None
        return f"fails at step {mx.step}: `{_short(mx.error, 90)}`"
    parts = []
    for group in mx.groups():
        eps = [format_endpoint(ep) for t in group for ep in t.endpoints]
        parts.append("{" + ", ".join(eps) + "}" if len(group) > 1 else ", ".join(eps))
    names = []
    for t in mx.targets:
        text = _names(t.host_header, t.tls_server_name, t.sni)
        if text not in names:
            names.append(text)
    return f"step {mx.step}: " + " → ".join(parts) + "; " + "; ".join(names)


def describe_syn(syn: SynapseSide) -> str:
    wk = f" (`m.server` `{syn.well_known}`)" if syn.well_known else ""
    if not syn.resolved:
        return f"fails before dialling{wk}: `{_short(syn.error or '?', 90)}`"
    text = "dials " + " → ".join(format_endpoint(ep) for ep in syn.dialled) + wk + "; "
    text += _names(syn.host_header, syn.tls_name, syn.sni, syn.tls_observed)
    if syn.error:
        text += f"; then `{_short(syn.error, 70)}`"
    return text


def _versions(synapse_python: Path, meta: dict[str, Any]) -> dict[str, str]:
    def first_line(argv: list[str]) -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return "?"
        out = (done.stdout or done.stderr).strip().splitlines()
        return out[0] if out else "?"

    probe = "import importlib.metadata as m, platform; print(m.version('Twisted'), "
    probe += "platform.python_version())"
    twisted, _, syn_py = first_line([str(synapse_python), "-c", probe]).partition(" ")
    knotd, nginx = find_binary("knotd"), find_binary("nginx")
    return {
        "mxresolve": mxresolve.__version__,
        "python (mxresolve)": platform.python_version(),
        "synapse": str(meta.get("synapse_version", "?")),
        "twisted": twisted,
        "python (Synapse)": syn_py or "?",
        "knot": first_line([knotd, "-V"]).rpartition(" ")[2] if knotd else "?",
        "nginx": first_line([nginx, "-v"]).rpartition("/")[2] if nginx else "?",
    }


def render(rows: Sequence[Row], meta: dict[str, Any], versions: dict[str, str]) -> str:
    agree = sum(1 for r in rows if r.result.verdict == "agree")
    differ = len(rows) - agree
    calls = ", ".join(f"{c['names']} names on the {c['nameserver']}" for c in meta["driver_calls"])
    lines = [
        "# Differential run: mxresolve vs. Synapse",
        "",
        "<!-- Generated by tests/differential/run_synapse.py; edit the explanations there. -->",
        "",
        f"Every scenario of the loopback world (`tests/integration/world.py`: Knot DNS "
        f"{versions['knot']}, nginx {versions['nginx']}, a black-hole nameserver, a test CA, "
        "all on 127.0.0.0/8 and ::1) was resolved by **mxresolve "
        f"{versions['mxresolve']}** (sync `Resolver`, Python {versions['python (mxresolve)']}, "
        f"a fresh resolver per scenario, request timeout {REQUEST_TIMEOUT:g} s, deadline "
        f"{DEADLINE:g} s) and by **Synapse {versions['synapse']}** (Twisted "
        f"{versions['twisted']}, Python {versions['python (Synapse)']}), whose own "
        "`MatrixFederationAgent`, `WellKnownResolver` and `SrvResolver` were driven as a black "
        "box by `benchmarks/peers/synapse_peer.py` in mode `resolve`: fresh caches per name, "
        "the request really sent, at most 10 s per name. The driver was called once per "
        f"nameserver ({calls}).",
        "",
        "What is compared is what both can observe:",
        "",
        "- **outcome**: mxresolve returns targets or fails; Synapse dials the federation request "
        "or fails before dialling (TLS and HTTP after the connect are not resolution);",
        "- **endpoints**: the first `(ip, port)` Synapse dialled must be the first endpoint of a "
        "target in mxresolve's first group (SRV targets of equal priority form one unordered "
        "group), and every endpoint Synapse dialled must be one mxresolve lists, in group "
        "order. Synapse stops at the first TCP success, so it usually dials only a prefix;",
        "- the **Host** header, the **TLS name** the certificate is checked against, and the "
        "**SNI** (when Synapse reached a TLS handshake), against the mxresolve target that owns "
        "the first endpoint Synapse dialled.",
        "",
        "Synapse's A/AAAA lookups go through the driver's resolver (AAAA, then A) instead of "
        "getaddrinfo, and its IP blocklist is emptied so that loopback is allowed; see "
        "`benchmarks/peers/README.md` for the driver's limits. Explanations cite the spec "
        "v1.19 by step, mxresolve's interpretations (`docs/interpretations.md`, I-NN) and the "
        "Synapse module that behaves so (in `synapse/http/federation/`).",
        "",
        "Command (as root, for port 443):",
        "",
        "```sh",
        "nox -s differential",
        "# or, in an environment with mxresolve, dnspython and trustme:",
        "python tests/differential/run_synapse.py [--json]",
        "```",
        "",
        f"Run on {meta['date']} in {meta['total_seconds']:g} s (mxresolve "
        f"{meta['mxresolve_seconds']:g} s, Synapse {meta['synapse_seconds']:g} s).",
        "",
        "## Summary",
        "",
        f"{len(rows)} scenarios: **{agree} agree**, **{differ} differ**.",
        "",
    ]
    for r in rows:
        if r.result.verdict == "differ":
            lines.append(f"- `{r.scenario.name}`: differs in {', '.join(r.result.aspects)}.")
    problems = [r for r in rows if r.explanation_problem]
    if problems:
        lines += ["", "Explanations to recheck:", ""]
        lines += [f"- `{r.scenario.name}`: {r.explanation_problem}." for r in problems]
    lines += [
        "",
        "## Scenarios",
        "",
        "| scenario | server name | mxresolve | Synapse | verdict | explanation |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        verdict = "agree" if r.result.verdict == "agree" else "**differ**"
        if r.result.aspects:
            verdict += " (" + ", ".join(r.result.aspects) + ")"
        cells = [
            f"`{r.scenario.name}`",
            f"`{r.scenario.server_name}`",
            describe_mx(r.mx),
            describe_syn(r.syn),
            verdict,
            r.explanation or "—",
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def raw(rows: Sequence[Row], meta: dict[str, Any], versions: dict[str, str]) -> dict[str, Any]:
    return {
        "versions": versions,
        "meta": meta,
        "scenarios": [
            {
                "name": r.scenario.name,
                "server_name": r.scenario.server_name,
                "nameserver": r.scenario.nameserver,
                "expected": r.scenario.expected(),
                "verdict": r.result.verdict,
                "aspects": list(r.result.aspects),
                "details": list(r.result.details),
                "explanation": r.explanation,
                "explanation_problem": r.explanation_problem,
                "mxresolve": r.mx_raw,
                "mxresolve_observable": dataclasses.asdict(r.mx),
                "synapse": r.syn_raw,
            }
            for r in rows
        ],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Differential run: mxresolve vs. Synapse.")
    parser.add_argument(
        "--synapse-python",
        type=Path,
        default=Path(os.environ.get("MXRESOLVE_SYNAPSE_PYTHON", DEFAULT_SYNAPSE_PYTHON)),
        help="interpreter of the Synapse venv (default: .venv-synapse/bin/python)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="where to write the report (default: docs/differential.md; with --only: none)",
    )
    parser.add_argument("--json", action="store_true", help="print the raw results as JSON")
    parser.add_argument("--only", default="", help="comma-separated scenario names (debugging)")
    args = parser.parse_args(argv)

    scenarios: list[Scenario] = list(SCENARIOS)
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = sorted(set(wanted) - {s.name for s in SCENARIOS})
        if unknown:
            parser.error(f"unknown scenarios: {', '.join(unknown)}")
        scenarios = [s for s in SCENARIOS if s.name in wanted]
    output = args.output if args.output is not None or args.only else DEFAULT_OUTPUT

    started = time.monotonic()
    try:
        rows, meta = run(args.synapse_python, scenarios)
    except RunError as exc:
        print(f"differential run failed: {exc}", file=sys.stderr)
        return 1
    meta["total_seconds"] = round(time.monotonic() - started, 1)
    meta["date"] = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
    versions = _versions(args.synapse_python, meta)

    if output is not None:
        output.write_text(render(rows, meta, versions), encoding="utf-8")
    if args.json:
        json.dump(raw(rows, meta, versions), sys.stdout, indent=1)
        sys.stdout.write("\n")
    agree = sum(1 for r in rows if r.result.verdict == "agree")
    print(
        f"{len(rows)} scenarios: {agree} agree, {len(rows) - agree} differ "
        f"({meta['total_seconds']:g} s)" + (f"; wrote {output}" if output else ""),
        file=sys.stderr,
    )
    for r in rows:
        if r.result.verdict == "differ":
            print(f"  differ  {r.scenario.name}: {'; '.join(r.result.details)}", file=sys.stderr)
        if r.explanation_problem:
            print(f"  RECHECK {r.scenario.name}: {r.explanation_problem}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

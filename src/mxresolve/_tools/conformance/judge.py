"""Judging what an implementation did in one step against what the vector expects.

Everything here works on JSON-shaped observations, the same for the in-process
runner and for an adapter speaking the harness protocol (docs/harness.md)::

    {"outcome": {"targets": [...]} | {"error": KIND},
     "step": "4" | None,              # absent: the implementation cannot say
     "requests": [{"op": "dns", "qname", "qtype"} | {"op": "https_get", "url"}],
     "cache": [...]}                  # absent: the implementation cannot show it

Every failure carries the requirement level of the comparison that failed
(MUST, SHOULD or INTERPRETATION with its I-NN): levels are set per vector, per
step, and per assertion (spec-vectors/README.md, "Levels").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Failure", "Level", "StepVerdict", "judge_step"]

ADDRESS_TYPES = frozenset({"A", "AAAA"})
LEVEL_ORDER = ("MUST", "SHOULD", "INTERPRETATION")
REQUEST_ASSERTIONS = ("exact", "includes", "excludes", "in_order", "count")


@dataclass(frozen=True, slots=True)
class Level:
    level: str
    interpretation: str | None = None

    def override(self, raw: Mapping[str, Any]) -> Level:
        """The level ``raw`` states (``level`` and ``interpretation`` keys), else this one."""
        if "level" not in raw:
            return self
        return Level(str(raw["level"]), raw.get("interpretation"))


@dataclass(frozen=True, slots=True)
class Failure:
    level: str
    interpretation: str | None
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"level": self.level, "interpretation": self.interpretation, "message": self.message}

    def __str__(self) -> str:
        label = self.interpretation or self.level
        return f"[{label}] {self.message}"


@dataclass(frozen=True, slots=True)
class StepVerdict:
    failures: tuple[Failure, ...]
    alternative: str | None  # the named reading that matched instead of the main one
    not_compared: tuple[str, ...]  # what the implementation could not show (cache, step)


def judge_step(
    step: Mapping[str, Any], observed: Mapping[str, Any], base: Level, *, narrow: bool
) -> StepVerdict:
    """Compare one step. ``narrow``: the implementation leaves addresses to its dialer."""
    level = base.override(step)
    failures, skipped = _judge(step, step, observed, level, narrow=narrow)
    if failures:
        for alternative in step.get("alternatives", ()):
            # An alternative replaces the expectation; requests and cache carry over unless given.
            merged = {**step, **alternative}
            alt_level = level.override(alternative)
            alt_failures, alt_skipped = _judge(
                merged, alternative, observed, alt_level, narrow=narrow
            )
            if not alt_failures:
                return StepVerdict((), str(alternative["name"]), tuple(alt_skipped))
    return StepVerdict(tuple(failures), None, tuple(skipped))


def _judge(
    step: Mapping[str, Any],
    own: Mapping[str, Any],
    observed: Mapping[str, Any],
    level: Level,
    *,
    narrow: bool,
) -> tuple[list[Failure], list[str]]:
    failures: list[Failure] = []
    skipped: list[str] = []

    def fail(at: Level, message: str) -> None:
        failures.append(Failure(at.level, at.interpretation, message))

    expect = step["expect"]
    outcome = observed.get("outcome", {})
    if "step" in expect:
        if "step" not in observed:
            skipped.append("step")
        elif expect["step"] != observed["step"]:
            fail(level, f"decided by step {observed['step']}, expected step {expect['step']}")
    if "error" in expect:
        if "error" not in outcome:
            fail(level, f"expected error {expect['error']!r}, got targets")
        elif outcome["error"] != expect["error"]:
            fail(level, f"expected error {expect['error']!r}, got {outcome['error']!r}")
    elif "error" in outcome:
        message = outcome.get("message", "")
        fail(level, f"expected targets, got error {outcome['error']!r}: {message}".rstrip(": "))
    else:
        addresses_level = level.override(expect.get("addresses_level", {}))
        got = list(outcome.get("targets", []))
        wanted = list(expect["targets"])
        if "targets_level" in expect and wanted:
            # The first choice at the step's level; the rest of the list at targets_level.
            first = wanted[0].get("any_order", [wanted[0]]) if isinstance(wanted[0], dict) else []
            if not any(got and _same_target(w, got[0], loose=narrow) for w in first):
                fail(level, f"first target: expected one of {first}, got {got[:1]}")
            level = level.override(expect["targets_level"])
        for at, message in _compare_targets(wanted, got, level, addresses_level, narrow):
            fail(at, message)
    for assertion in step.get("requests", ()):
        at = level.override(assertion)
        message = _request_assertion(assertion, list(observed.get("requests", [])), narrow)
        if message is not None:
            fail(at, message)
    cache = step.get("cache", ())
    if cache and "cache" not in observed:
        skipped.append("cache")
    elif cache:
        epoch = float(observed.get("epoch", 0))
        for assertion in cache:
            message = _cache_assertion(assertion, observed["cache"], epoch)
            if message is not None:
                fail(level.override(assertion), message)
    return failures, skipped


# --- targets ----------------------------------------------------------------------------

_IDENTITY = ("host", "port", "host_header", "tls_server_name", "sni")


def _normal_host(value: Any) -> Any:
    return value.lower().rstrip(".") if isinstance(value, str) else value


def _same_target(wanted: Mapping[str, Any], got: Mapping[str, Any], *, loose: bool) -> bool:
    for key in _IDENTITY:
        if key in wanted:
            mine = _normal_host(got.get(key)) if key == "host" else got.get(key)
            if wanted[key] != mine:
                return False
    if "addresses" not in wanted or loose:
        return True
    # "an IP address": some of the expected ones, and nothing else.
    got_addresses = set(got.get("addresses") or ())
    return bool(got_addresses) and got_addresses <= set(wanted["addresses"])


def _compare_targets(
    expected: Sequence[Any],
    got: list[Mapping[str, Any]],
    level: Level,
    addresses_level: Level,
    narrow: bool,
) -> list[tuple[Level, str]]:
    """Ordered; ``{"any_order": [...]}`` groups match as a set in place."""
    position = 0
    pairs: list[tuple[Mapping[str, Any], Mapping[str, Any]]] = []
    for item in expected:
        group = item["any_order"] if isinstance(item, dict) and "any_order" in item else [item]
        window = got[position : position + len(group)]
        unmatched = list(window)
        for wanted in group:
            match = next((t for t in unmatched if _same_target(wanted, t, loose=narrow)), None)
            if match is None:
                shown = [dict(t) for t in window]
                return [(level, f"target(s) at position {position}: expected {group}, got {shown}")]
            unmatched.remove(match)
            pairs.append((wanted, match))
        position += len(group)
    if position != len(got):
        return [(level, f"expected {position} target(s), got {len(got)}: {got}")]
    found = []
    if not narrow:
        for wanted, match in pairs:
            if "addresses" in wanted and set(wanted["addresses"]) != set(
                match.get("addresses", ())
            ):
                found.append(
                    (
                        addresses_level,
                        f"target {wanted.get('host')}: addresses "
                        f"{sorted(match.get('addresses', ()))}, expected all of "
                        f"{sorted(wanted['addresses'])}",
                    )
                )
    return found


# --- requests ---------------------------------------------------------------------------


def _is_address_query(request: Mapping[str, Any]) -> bool:
    if request.get("op") != "dns":
        return False
    qtype = request.get("qtype")
    types = set(qtype) if isinstance(qtype, list) else {qtype}
    return types <= ADDRESS_TYPES


def _matches(pattern: Mapping[str, Any], request: Mapping[str, Any]) -> bool:
    """Does ``request`` match ``pattern``? A field the pattern leaves out matches anything."""
    if pattern.get("op") != request.get("op"):
        return False
    if pattern.get("op") == "https_get":
        return "url" not in pattern or pattern["url"] == request.get("url")
    if "qname" in pattern and str(pattern["qname"]).lower() != str(request.get("qname")).lower():
        return False
    qtype = pattern.get("qtype")
    if qtype is None:
        return True
    return request.get("qtype") in (qtype if isinstance(qtype, list) else [qtype])


def _show(request: Mapping[str, Any]) -> str:
    if request.get("op") == "https_get":
        return f"GET {request.get('url')}"
    qtype = request.get("qtype", "*")
    qtype = "|".join(qtype) if isinstance(qtype, list) else qtype
    return f"{qtype} {request.get('qname')}"


def _request_assertion(
    assertion: Mapping[str, Any], made: list[Mapping[str, Any]], narrow: bool
) -> str | None:
    kind = next((k for k in REQUEST_ASSERTIONS if k in assertion), None)
    if kind is None:
        return None  # an assertion of a later format: ignored (the loader warned)
    if narrow:
        made = [r for r in made if not _is_address_query(r)]
    if kind == "count":
        spec = assertion["count"]
        pattern = spec["request"]
        if narrow and _is_address_query(pattern):
            return None
        n = sum(_matches(pattern, r) for r in made)
        low, high = spec.get("min", 0), spec.get("max")
        if n < low or (high is not None and n > high):
            bounds = f"{low}" if high == low else f"{low} to {'any' if high is None else high}"
            return f"{_show(pattern)} asked {n} time(s), expected {bounds}"
        return None
    patterns = [p for p in assertion[kind] if not (narrow and _is_address_query(p))]
    if kind == "exact":
        among = assertion.get("among")
        if among is not None:  # only the requests of these kinds are compared
            made = [r for r in made if any(_matches(p, r) for p in among)]
        return _exact(patterns, made)
    if kind == "includes":
        left = list(made)
        missing = []
        for pattern in patterns:
            hit = next((r for r in left if _matches(pattern, r)), None)
            if hit is None:
                missing.append(_show(pattern))
            else:
                left.remove(hit)
        return f"requests: missing {missing}" if missing else None
    if kind == "excludes":
        bad = [_show(r) for r in made if any(_matches(p, r) for p in patterns)]
        return f"requests: asked {bad}, which must not be asked" if bad else None
    # in_order: the patterns appear in this order, other requests in between allowed
    position = 0
    for request in made:
        if position < len(patterns) and _matches(patterns[position], request):
            position += 1
    if position < len(patterns):
        return (
            f"requests: expected in this order {[_show(p) for p in patterns]}, "
            f"got {[_show(r) for r in made]}"
        )
    return None


def _exact(expected: list[Mapping[str, Any]], made: list[Mapping[str, Any]]) -> str | None:
    """Format 1's comparison: HTTPS GETs in order, DNS queries as a multiset."""
    problems = []
    want_https = [r["url"] for r in expected if r.get("op") == "https_get"]
    got_https = [r["url"] for r in made if r.get("op") == "https_get"]
    if want_https != got_https:
        problems.append(f"HTTPS requests: expected {want_https}, got {got_https}")
    want = Counter((str(r["qname"]).lower(), r["qtype"]) for r in expected if r.get("op") == "dns")
    got = Counter((str(r["qname"]).lower(), r["qtype"]) for r in made if r.get("op") == "dns")
    if want != got:
        missing = sorted((want - got).elements())
        extra = sorted((got - want).elements())
        problems.append(f"DNS queries: missing {missing}, unexpected {extra}")
    return "; ".join(problems) or None


# --- cache ------------------------------------------------------------------------------


def _cache_assertion(
    assertion: Mapping[str, Any], entries: Sequence[Mapping[str, Any]], epoch: float
) -> str | None:
    if "well_known" in assertion:
        name = str(assertion["well_known"]).lower()
        entry = next(
            (e for e in entries if e.get("kind") == "well-known" and e.get("name") == name), None
        )
        what = f"the well-known of {name}"
    elif "dns" in assertion:
        q = assertion["dns"]
        entry = next(
            (
                e
                for e in entries
                if e.get("kind") == "dns"
                and str(e.get("qname")).lower() == str(q["qname"]).lower()
                and e.get("qtype") == q["qtype"]
            ),
            None,
        )
        what = f"the {q['qtype']} answer of {q['qname']}"
    else:
        return None
    if assertion.get("absent"):
        return f"{what} is cached, expected nothing" if entry is not None else None
    if entry is None:
        return f"{what} is not cached"
    if "delegation" in assertion and entry.get("delegation") != assertion["delegation"]:
        return (
            f"{what} is cached as {entry.get('delegation')!r}, expected {assertion['delegation']!r}"
        )
    if "expires_between" in assertion:
        low, high = assertion["expires_between"]
        at = float(entry["expires_at"]) - epoch
        if not low <= at <= high:
            return f"{what} is cached until t={at:g} s, expected between {low} and {high}"
    return None

"""Loading and running spec-vectors (format: spec-vectors/README.md).

This is the in-process harness: each vector's world becomes a
:class:`~mxresolve.FakeWorld`, each of its steps one resolution at
``epoch + at`` against one shared cache, and the outcome, the deciding step
and the requests made are compared with what the vector expects.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from importlib import resources
from pathlib import Path
from typing import Any

from .._core.cache import ResolverCache
from .._core.events import HttpsGet, Request, Resolution, ResolutionFailure, Target
from .._core.settings import IpPolicy, Settings
from .._io.fakeworld import FakeWorld, WorldError

__all__ = [
    "FORMAT_VERSION",
    "StepResult",
    "Vector",
    "VectorFormatError",
    "VectorResult",
    "bundled_vectors",
    "load_vectors",
    "run_vector",
    "vector_settings",
]

FORMAT_VERSION = 1
DEFAULT_EPOCH = 1767225600  # 2026-01-01T00:00:00Z
FEATURES = frozenset(
    {
        "well-known-cache",
        "dns-cache",
        "deprecated-matrix-srv",
        "observable-redirects",
        "address-level",
        "ipv6",
        "settings",
        "stale-if-error",
        "ip-policy",
    }
)
REQUIREMENTS = ("MUST", "SHOULD", "INTERPRETATION")


class VectorFormatError(ValueError):
    """A vector file that does not follow the format; says which file and where."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Vector:
    id: str
    description: str
    requirement: str
    features: tuple[str, ...]
    citations: tuple[dict[str, Any], ...]
    settings: dict[str, Any]
    world: dict[str, Any]
    steps: tuple[dict[str, Any], ...]
    source: str
    raw: dict[str, Any] = field(repr=False)

    @property
    def first_step(self) -> str:
        """The spec step the vector is mainly about (its first citation's)."""
        for citation in self.citations:
            if "step" in citation:
                return str(citation["step"])
        return "-"


@dataclass(frozen=True, kw_only=True, slots=True)
class StepResult:
    name: str
    decided_step: str | None
    failures: tuple[str, ...]
    result: Resolution | ResolutionFailure
    requests: tuple[Request, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class VectorResult:
    vector: Vector
    steps: tuple[StepResult, ...]

    @property
    def passed(self) -> bool:
        return all(not s.failures for s in self.steps)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.vector.id,
            "result": "pass" if self.passed else "fail",
            "requirement": self.vector.requirement,
            "steps": [
                {"name": s.name, "decided_step": s.decided_step, "failures": list(s.failures)}
                for s in self.steps
            ],
        }


# --- loading --------------------------------------------------------------------------


def bundled_vectors() -> Path:
    """The folder of vectors shipped with mxresolve (or the source checkout's)."""
    shipped = resources.files("mxresolve").joinpath("_spec_vectors").joinpath("vectors")
    if shipped.is_dir():
        return Path(str(shipped))
    return Path(__file__).resolve().parents[3] / "spec-vectors" / "vectors"


def load_vectors(paths: Iterable[Path | str] = ()) -> list[Vector]:
    """Load vector files (or every ``*.json`` under folders); default: the bundled set."""
    files: list[Path] = []
    for raw_path in list(paths) or [bundled_vectors()]:
        path = Path(raw_path)
        if path.is_dir():
            files.extend(sorted(path.rglob("*.json")))
        elif path.is_file():
            files.append(path)
        else:
            raise VectorFormatError(f"{path}: no such file or folder")
    vectors: list[Vector] = []
    seen: dict[str, str] = {}
    for file in files:
        for vector in _load_file(file):
            if vector.id in seen:
                raise VectorFormatError(
                    f"{file}: vector id {vector.id!r} is also used in {seen[vector.id]}"
                )
            seen[vector.id] = str(file)
            vectors.append(vector)
    return vectors


def _load_file(file: Path) -> list[Vector]:
    try:
        document = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise VectorFormatError(f"{file}: cannot read JSON: {exc}") from None
    if not isinstance(document, dict) or document.get("format_version") != FORMAT_VERSION:
        raise VectorFormatError(f"{file}: expected an object with format_version {FORMAT_VERSION}")
    raw_vectors = document.get("vectors")
    if not isinstance(raw_vectors, list):
        raise VectorFormatError(f"{file}: 'vectors' must be a list")
    return [_vector(file, i, raw) for i, raw in enumerate(raw_vectors)]


def _vector(file: Path, index: int, raw: Any) -> Vector:
    where = f"{file}: vectors[{index}]"

    def need(cond: bool, what: str) -> None:
        if not cond:
            raise VectorFormatError(f"{where}: {what}")

    need(isinstance(raw, dict), "must be an object")
    vid = raw.get("id")
    need(isinstance(vid, str) and bool(vid), "needs a string 'id'")
    where = f"{file}: vector {vid!r}"
    need(isinstance(raw.get("description"), str), "needs a 'description'")
    need(raw.get("requirement") in REQUIREMENTS, f"'requirement' must be one of {REQUIREMENTS}")
    features = raw.get("features", [])
    need(isinstance(features, list), "'features' must be a list")
    unknown = set(features) - FEATURES
    need(not unknown, f"unknown features {sorted(unknown)}")
    spec = raw.get("spec")
    need(isinstance(spec, dict) and isinstance(spec.get("citations"), list), "needs spec.citations")
    need(all(isinstance(c, dict) and "quote" in c for c in spec["citations"]), "citation w/o quote")
    settings = raw.get("settings", {})
    need(isinstance(settings, dict), "'settings' must be an object")
    steps = raw.get("steps")
    need(isinstance(steps, list) and bool(steps), "needs a non-empty 'steps' list")
    last_at = 0.0
    for step in steps:
        need(isinstance(step, dict), "each step must be an object")
        need(isinstance(step.get("resolve"), str), "each step needs 'resolve'")
        at = step.get("at", 0)
        need(isinstance(at, (int, float)) and at >= last_at, "'at' must not decrease")
        last_at = float(at)
        expect = step.get("expect")
        need(isinstance(expect, dict), "each step needs 'expect'")
        need(("targets" in expect) != ("error" in expect), "expect has 'targets' or 'error'")
    try:
        _settings(settings)
        FakeWorld(raw.get("world", {}))
    except (WorldError, ValueError, TypeError) as exc:
        raise VectorFormatError(f"{where}: {exc}") from None
    return Vector(
        id=vid,
        description=raw["description"],
        requirement=raw["requirement"],
        features=tuple(features),
        citations=tuple(spec["citations"]),
        settings=settings,
        world=raw.get("world", {}),
        steps=tuple(steps),
        source=str(file),
        raw=raw,
    )


def _settings(raw: Mapping[str, Any]) -> Settings:
    """Settings from a vector: field names as in :class:`Settings`; IP policy allows all."""
    values = dict(raw)
    policy = values.pop("ip_policy", None)
    ip_policy = (
        IpPolicy.allow_all()
        if policy is None
        else IpPolicy.from_cidrs(
            policy.get("allow", ()),
            policy.get("deny", ()),
            refuse_special=policy.get("refuse_special", True),
        )
    )
    known = set(Settings.__dataclass_fields__)
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"unknown settings {sorted(unknown)}")
    for name, value in list(values.items()):
        kind = Settings.__dataclass_fields__[name].default
        if isinstance(kind, Enum):
            values[name] = type(kind)(value)
    return Settings(ip_policy=ip_policy, **values)


# --- running --------------------------------------------------------------------------


# Settings that only add requests (asked early; docs/interpretations.md). A vector's
# ``requests`` list what a resolver asking one step after another makes.
EARLY_SETTINGS = ("srv_with_well_known", "legacy_srv_with_srv", "addresses_with_srv")


def vector_settings(vector: Vector) -> Settings:
    """The settings a vector runs with.

    In the v1 world a described URL answers whatever DNS says of its host, and the
    fetch's own lookups of that host are never listed (README, "The world"): so the
    HTTPS fetch resolves its host itself unless the vector says otherwise.
    """
    settings = _settings(vector.settings)
    if "resolve_well_known_host" not in vector.settings:
        settings = dataclasses.replace(settings, resolve_well_known_host=False)
    return settings


def run_vector(vector: Vector, *, seed: int = 0) -> VectorResult:
    """Run every step of ``vector`` against one resolver cache.

    The results are compared with the settings mxresolve runs with (asking early).
    A vector that lists requests without setting the early settings itself is run a
    second time with nothing asked early, and that run must match everything,
    requests included: asking early may add requests, never change a result.
    """
    settings = vector_settings(vector)
    pins_requests = any("requests" in step for step in vector.steps)
    sets_early = any(name in vector.settings for name in EARLY_SETTINGS)
    steps = _run_steps(vector, settings, seed, compare_requests=sets_early)
    if pins_requests and not sets_early:
        one_by_one = dataclasses.replace(
            settings, srv_with_well_known=False, legacy_srv_with_srv=False, addresses_with_srv=False
        )
        checked = _run_steps(vector, one_by_one, seed, compare_requests=True)
        steps = tuple(
            dataclasses.replace(
                step,
                failures=step.failures
                + tuple(f"(nothing asked early) {failure}" for failure in other.failures),
            )
            for step, other in zip(steps, checked, strict=True)
        )
    return VectorResult(vector=vector, steps=steps)


def _run_steps(
    vector: Vector, settings: Settings, seed: int, *, compare_requests: bool
) -> tuple[StepResult, ...]:
    epoch = float(vector.raw.get("epoch", DEFAULT_EPOCH))
    world = FakeWorld(vector.world, now=epoch)
    cache = ResolverCache()
    rng = random.Random(seed)
    results = []
    for index, step in enumerate(vector.steps):
        if "world_patch" in step:
            world.patch(step["world_patch"])
        world.now = epoch + float(step.get("at", 0))
        before = len(world.requests)
        result = world.resolve(step["resolve"], cache=cache, settings=settings, random=rng.random)
        made = tuple(world.requests[before:])
        failures = _compare(step, result, made, compare_requests=compare_requests)
        results.append(
            StepResult(
                name=str(step.get("name", f"step-{index}")),
                decided_step=None if result.step is None else result.step.value,
                failures=tuple(failures),
                result=result,
                requests=made,
            )
        )
    return tuple(results)


def _compare(
    step: Mapping[str, Any],
    result: Resolution | ResolutionFailure,
    made: Sequence[Request],
    *,
    compare_requests: bool = True,
) -> list[str]:
    expect = step["expect"]
    failures: list[str] = []
    got_step = None if result.step is None else result.step.value
    if "step" in expect and expect["step"] != got_step:
        failures.append(f"decided by step {got_step}, expected step {expect['step']}")
    if "error" in expect:
        if not isinstance(result, ResolutionFailure):
            failures.append(f"expected error {expect['error']!r}, got targets")
        elif result.kind.value != expect["error"]:
            failures.append(f"expected error {expect['error']!r}, got {result.kind.value!r}")
    elif isinstance(result, ResolutionFailure):
        failures.append(f"expected targets, got error {result.kind.value!r}: {result.message}")
    else:
        failures.extend(_compare_targets(expect["targets"], list(result.targets)))
    if compare_requests and "requests" in step:
        failures.extend(_compare_requests(step["requests"], made))
    return failures


def _target_matches(expected: Mapping[str, Any], got: Target) -> bool:
    for key in ("host", "port", "host_header", "tls_server_name", "sni"):
        if key in expected and expected[key] != getattr(got, key):
            return False
    return "addresses" not in expected or set(expected["addresses"]) == set(got.addresses)


def _compare_targets(expected: Sequence[Any], got: list[Target]) -> list[str]:
    """Ordered comparison; ``{"any_order": [...]}`` groups match as a set in place."""
    position = 0
    for item in expected:
        group = item["any_order"] if isinstance(item, dict) and "any_order" in item else [item]
        window = got[position : position + len(group)]
        unmatched = list(window)
        for wanted in group:
            match = next((t for t in unmatched if _target_matches(wanted, t)), None)
            if match is None:
                return [
                    f"target(s) at position {position}: expected {group}, got "
                    f"{[t.to_json() for t in window]}"
                ]
            unmatched.remove(match)
        position += len(group)
    if position != len(got):
        return [f"expected {position} target(s), got {len(got)}: {[t.to_json() for t in got]}"]
    return []


def _compare_requests(expected: Sequence[Mapping[str, Any]], made: Sequence[Request]) -> list[str]:
    """HTTPS GETs must match in order; DNS queries as a multiset (batches are parallel)."""
    got = [r.to_json() for r in made]
    want_https = [r["url"] for r in expected if r.get("op") == "https_get"]
    got_https = [r.url for r in made if isinstance(r, HttpsGet)]
    failures = []
    if want_https != got_https:
        failures.append(f"HTTPS requests: expected {want_https}, got {got_https}")
    want_dns = Counter((r["qname"].lower(), r["qtype"]) for r in expected if r.get("op") == "dns")
    got_dns = Counter((r["qname"], r["qtype"]) for r in got if r["op"] == "dns")
    if want_dns != got_dns:
        missing = sorted((want_dns - got_dns).elements())
        extra = sorted((got_dns - want_dns).elements())
        failures.append(f"DNS queries: missing {missing}, unexpected {extra}")
    return failures

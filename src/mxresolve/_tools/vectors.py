"""Loading and running spec-vectors (format 2: spec-vectors/README.md).

This is the in-process harness: each vector's world becomes a
:class:`~mxresolve._tools.conformance.world.VectorWorld`, each of its steps one
resolution at ``epoch + at`` against one shared cache, and what happened (the
outcome, the deciding step, the requests and the cache) is judged by the same
code that judges an adapter speaking the harness protocol
(:mod:`mxresolve._tools.conformance.judge`). Format 1 files are read too: they
are upgraded on load by ``spec-vectors/tools/v1_to_v2.py``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import random
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from functools import cache
from importlib import resources
from pathlib import Path
from types import ModuleType
from typing import Any

from .._core.cache import ResolverCache
from .._core.events import HttpsGet, RecordType, Request, Resolution, ResolutionFailure
from .._core.settings import IpPolicy, Settings
from .._io.fakeworld import WorldError
from .conformance.judge import LEVEL_ORDER, Failure, Level, judge_step
from .conformance.world import VectorWorld, check_endpoints, known_world

__all__ = [
    "FEATURES",
    "FORMAT_VERSION",
    "StepResult",
    "Vector",
    "VectorFormatError",
    "VectorResult",
    "bundled_vectors",
    "load_vectors",
    "observe",
    "run_vector",
    "vector_settings",
]

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
DEFAULT_EPOCH = 1767225600  # 2026-01-01T00:00:00Z
FEATURES = frozenset(
    {
        "well-known-cache",
        "dns-cache",
        "deprecated-matrix-srv",
        "observable-redirects",
        "address-level",
        "address-lookup",
        "ipv6",
        "settings",
        "stale-if-error",
        "ip-policy",
        "endpoints",
    }
)
REQUIREMENTS = ("MUST", "SHOULD", "INTERPRETATION")
_VECTOR_KEYS = frozenset(
    {"id", "description", "spec", "requirement", "interpretation", "features", "epoch"}
    | {"settings", "world", "steps"}
)
_STEP_KEYS = frozenset(
    {"name", "at", "world_patch", "resolve", "expect", "requests", "cache", "level"}
    | {"interpretation", "alternatives"}
)
_EXPECT_KEYS = frozenset({"step", "targets", "error", "addresses_level", "targets_level"})
_ALTERNATIVE_KEYS = frozenset(
    {"name", "description", "level", "interpretation", "expect", "requests", "cache"}
)


class VectorFormatError(ValueError):
    """A vector file that does not follow the format; says which file and where."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Vector:
    id: str
    description: str
    requirement: str
    interpretation: str | None
    features: tuple[str, ...]
    citations: tuple[dict[str, Any], ...]
    settings: dict[str, Any]
    world: dict[str, Any]  # DNS and HTTPS (what FakeWorld reads)
    endpoints: dict[str, Any]  # world.endpoints (format 2)
    steps: tuple[dict[str, Any], ...]
    epoch: float
    source: str
    warnings: tuple[str, ...] = ()
    unsupported: str | None = None  # why this runner cannot run it (an unknown setting)
    raw: dict[str, Any] = field(repr=False)

    @property
    def first_step(self) -> str:
        """The spec step the vector is mainly about (its first citation's)."""
        for citation in self.citations:
            if "step" in citation:
                return str(citation["step"])
        return "-"

    @property
    def level(self) -> Level:
        return Level(self.requirement, self.interpretation)

    @property
    def interpretations(self) -> tuple[str, ...]:
        """Every I-NN the vector's steps and assertions are labelled with, its own first."""
        found = [self.interpretation] if self.interpretation else []
        for item in _labelled(self.steps):
            if item not in found:
                found.append(item)
        return tuple(found)


def _labelled(value: Any) -> Iterable[str]:
    if isinstance(value, dict):
        if isinstance(value.get("interpretation"), str):
            yield value["interpretation"]
        for item in value.values():
            yield from _labelled(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _labelled(item)


@dataclass(frozen=True, kw_only=True, slots=True)
class StepResult:
    name: str
    decided_step: str | None
    failures: tuple[Failure, ...]
    result: Resolution | ResolutionFailure | None  # None: run by an adapter
    observed: dict[str, Any]
    alternative: str | None = None
    not_compared: tuple[str, ...] = ()

    @property
    def requests(self) -> tuple[dict[str, Any], ...]:
        return tuple(self.observed.get("requests", ()))

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "decided_step": self.decided_step,
            "alternative": self.alternative,
            "failures": [f.to_json() for f in self.failures],
            "not_compared": list(self.not_compared),
            "outcome": self.observed.get("outcome"),
            "requests": list(self.requests),
            "cache": self.observed.get("cache"),
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class VectorResult:
    vector: Vector
    steps: tuple[StepResult, ...]
    skipped: str | None = None  # why the vector was not run
    deviation: str | None = None  # the justification, when the failure is an expected one

    @property
    def passed(self) -> bool:
        return self.skipped is None and all(not s.failures for s in self.steps)

    @property
    def verdict(self) -> str:
        """pass, alternative (a named reading matched), fail, deviation or skip."""
        if self.skipped is not None:
            return "skip"
        if not self.passed:
            return "deviation" if self.deviation is not None else "fail"
        return "alternative" if any(s.alternative for s in self.steps) else "pass"

    @property
    def failure_level(self) -> str | None:
        """The strongest level among the failures (MUST, then SHOULD, then INTERPRETATION)."""
        levels = {f.level for s in self.steps for f in s.failures}
        return next((lv for lv in LEVEL_ORDER if lv in levels), None)

    def to_json(self) -> dict[str, Any]:
        failed = sorted(
            {f.interpretation for s in self.steps for f in s.failures if f.interpretation}
        )
        out: dict[str, Any] = {
            "id": self.vector.id,
            "result": self.verdict,
            "requirement": self.vector.requirement,
            "interpretation": self.vector.interpretation,
            "interpretations": list(self.vector.interpretations),
            "failure_level": self.failure_level,
            "failed_interpretations": failed,
            "alternatives": [s.alternative for s in self.steps if s.alternative],
            "steps": [s.to_json() for s in self.steps],
        }
        if self.skipped is not None:
            out["skipped"] = self.skipped
        if self.deviation is not None:
            out["deviation"] = self.deviation
        if self.vector.warnings:
            out["warnings"] = list(self.vector.warnings)
        return out


# --- loading --------------------------------------------------------------------------


def _suite_root() -> Path:
    shipped = resources.files("mxresolve").joinpath("_spec_vectors")
    if shipped.is_dir():
        return Path(str(shipped))
    return Path(__file__).resolve().parents[3] / "spec-vectors"


def bundled_vectors() -> Path:
    """The folder of vectors shipped with mxresolve (or the source checkout's)."""
    return _suite_root() / "vectors"


@cache
def _upgrader() -> ModuleType:
    # The one v1 -> v2 upgrade lives with the suite (standard library only), so other
    # implementations and the migration script use the very same code.
    path = _suite_root() / "tools" / "v1_to_v2.py"
    spec = importlib.util.spec_from_file_location("_spec_vectors_v1_to_v2", path)
    if spec is None or spec.loader is None:  # pragma: no cover - a broken install
        raise VectorFormatError(f"{path}: cannot load the format 1 upgrade")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def upgrade_document(document: dict[str, Any]) -> dict[str, Any]:
    """A format 1 file's object as format 2 (see spec-vectors/tools/v1_to_v2.py)."""
    upgraded: dict[str, Any] = _upgrader().upgrade_document(document)
    return upgraded


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
    version = document.get("format_version") if isinstance(document, dict) else None
    if version not in READABLE_VERSIONS:
        raise VectorFormatError(f"{file}: expected an object with format_version 1 or 2")
    warnings = []
    if version == 1:
        warnings.append(
            f"{file}: format_version 1, upgraded on load (spec-vectors/tools/v1_to_v2.py)"
        )
        document = upgrade_document(document)
    raw_vectors = document.get("vectors")
    if not isinstance(raw_vectors, list):
        raise VectorFormatError(f"{file}: 'vectors' must be a list")
    return [_vector(file, i, raw, list(warnings)) for i, raw in enumerate(raw_vectors)]


def _unknown(
    raw: Mapping[str, Any], known: frozenset[str], where: str, warnings: list[str]
) -> None:
    for key in raw:
        if key not in known and not str(key).startswith("$"):
            warnings.append(f"{where}: ignored unknown field {key!r}")


def _vector(file: Path, index: int, raw: Any, warnings: list[str]) -> Vector:
    where = f"{file}: vectors[{index}]"

    def need(cond: bool, what: str) -> None:
        if not cond:
            raise VectorFormatError(f"{where}: {what}")

    need(isinstance(raw, dict), "must be an object")
    vid = raw.get("id")
    need(isinstance(vid, str) and bool(vid), "needs a string 'id'")
    where = f"{file}: vector {vid!r}"
    _unknown(raw, _VECTOR_KEYS, where, warnings)
    need(isinstance(raw.get("description"), str), "needs a 'description'")
    need(raw.get("requirement") in REQUIREMENTS, f"'requirement' must be one of {REQUIREMENTS}")
    features = raw.get("features", [])
    need(isinstance(features, list), "'features' must be a list")
    for unknown in sorted(set(features) - FEATURES):
        warnings.append(f"{where}: unknown feature {unknown!r}; the vector is skipped")
    spec = raw.get("spec")
    need(isinstance(spec, dict) and isinstance(spec.get("citations"), list), "needs spec.citations")
    need(all(isinstance(c, dict) and "quote" in c for c in spec["citations"]), "citation w/o quote")
    settings = raw.get("settings", {})
    need(isinstance(settings, dict), "'settings' must be an object")
    steps = raw.get("steps")
    need(isinstance(steps, list) and bool(steps), "needs a non-empty 'steps' list")
    last_at = 0.0
    clean_steps = []
    for number, step in enumerate(steps):
        need(isinstance(step, dict), "each step must be an object")
        here = f"{where}: steps[{number}]"
        _unknown(step, _STEP_KEYS, here, warnings)
        need(isinstance(step.get("resolve"), str), "each step needs 'resolve'")
        at = step.get("at", 0)
        need(isinstance(at, (int, float)) and at >= last_at, "'at' must not decrease")
        last_at = float(at)
        for expectation in [step, *step.get("alternatives", [])]:
            expect = expectation.get("expect")
            need(isinstance(expect, dict), "each step and alternative needs 'expect'")
            need(("targets" in expect) != ("error" in expect), "expect has 'targets' or 'error'")
            _unknown(expect, _EXPECT_KEYS, f"{here}.expect", warnings)
        for alternative in step.get("alternatives", []):
            need(isinstance(alternative.get("name"), str), "each alternative needs a 'name'")
            _unknown(alternative, _ALTERNATIVE_KEYS, f"{here}.alternatives", warnings)
        need(isinstance(step.get("requests", []), list), "'requests' must be a list")
        clean = dict(step)
        if "world_patch" in step:
            clean["world_patch"] = known_world(step["world_patch"], here, warnings)
        clean_steps.append(clean)
    world = known_world(raw.get("world", {}), where, warnings)
    unsupported = None
    try:
        _settings(settings)
    except _UnknownSetting as exc:
        unsupported = str(exc)
        warnings.append(f"{where}: {exc}; the vector is skipped")
    except (ValueError, TypeError) as exc:
        raise VectorFormatError(f"{where}: {exc}") from None
    try:
        VectorWorld(world)
        if "endpoints" in world:
            check_endpoints(world["endpoints"])
    except (WorldError, ValueError, TypeError) as exc:
        raise VectorFormatError(f"{where}: {exc}") from None
    return Vector(
        id=vid,
        description=raw["description"],
        requirement=raw["requirement"],
        interpretation=raw.get("interpretation"),
        features=tuple(features),
        citations=tuple(spec["citations"]),
        settings=settings,
        world={k: v for k, v in world.items() if k != "endpoints"},
        endpoints=dict(world.get("endpoints", {})),
        steps=tuple(clean_steps),
        epoch=float(raw.get("epoch", DEFAULT_EPOCH)),
        source=str(file),
        warnings=tuple(warnings),
        unsupported=unsupported,
        raw=raw,
    )


class _UnknownSetting(ValueError):
    pass


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
        raise _UnknownSetting(f"unknown settings {sorted(unknown)}")
    for name, value in list(values.items()):
        kind = Settings.__dataclass_fields__[name].default
        if isinstance(kind, Enum):
            values[name] = type(kind)(value)
    return Settings(ip_policy=ip_policy, **values)


# --- running --------------------------------------------------------------------------


# Settings that only add requests (asked early; docs/interpretations.md I-37 to I-39). A
# vector's request assertions describe a resolver asking one question at a time.
EARLY_SETTINGS = ("srv_with_well_known", "legacy_srv_with_srv", "addresses_with_srv")


def vector_settings(vector: Vector, *, early: bool | None = None) -> Settings:
    """The settings a vector runs with.

    In the vectors' world a described URL answers whatever DNS says of its host, and the
    fetch's own lookups of that host are never listed (README, "The world"): so the
    HTTPS fetch resolves its host itself unless the vector says otherwise. ``early``
    False turns asking early off (unless the vector sets those settings itself).
    """
    return run_settings(vector.settings, early=early)


def run_settings(raw: Mapping[str, Any], *, early: bool | None = None) -> Settings:
    """:func:`vector_settings` from a vector's ``settings`` object (the harness sends it)."""
    settings = _settings(raw)
    if "resolve_well_known_host" not in raw:
        settings = dataclasses.replace(settings, resolve_well_known_host=False)
    if early is False:
        settings = dataclasses.replace(
            settings,
            srv_with_well_known=bool(raw.get("srv_with_well_known", False)),
            legacy_srv_with_srv=bool(raw.get("legacy_srv_with_srv", False)),
            addresses_with_srv=bool(raw.get("addresses_with_srv", False)),
        )
    return settings


def run_vector(
    vector: Vector, *, seed: int = 0, features: frozenset[str] = FEATURES
) -> VectorResult:
    """Run every step of ``vector`` against one resolver cache, in-process.

    Results are judged with the settings mxresolve runs with (asking early), requests
    aside. A vector with request assertions that does not set the early settings itself
    is run a second time with nothing asked early, and that run must pass everything,
    requests included: asking early may add requests, never change a result.
    """
    skipped = skip_reason(vector, features)
    if skipped is not None:
        return VectorResult(vector=vector, steps=(), skipped=skipped)
    pins_requests = any(step.get("requests") for step in vector.steps)
    sets_early = any(name in vector.settings for name in EARLY_SETTINGS)
    steps = _run_steps(vector, vector_settings(vector), seed, features, compare_requests=sets_early)
    if pins_requests and not sets_early:
        checked = _run_steps(
            vector, vector_settings(vector, early=False), seed, features, compare_requests=True
        )
        steps = tuple(
            dataclasses.replace(
                step,
                failures=step.failures
                + tuple(
                    dataclasses.replace(f, message=f"(nothing asked early) {f.message}")
                    for f in other.failures
                ),
                observed=other.observed,  # the requests the assertions describe
            )
            for step, other in zip(steps, checked, strict=True)
        )
    return VectorResult(vector=vector, steps=steps)


def _run_steps(
    vector: Vector,
    settings: Settings,
    seed: int,
    features: frozenset[str],
    *,
    compare_requests: bool,
) -> tuple[StepResult, ...]:
    world = VectorWorld(
        {**vector.world, "endpoints": vector.endpoints}, now=vector.epoch, epoch=vector.epoch
    )
    resolver_cache = ResolverCache()
    rng = random.Random(seed)
    results = []
    seen: list[Request] = []
    for index, step in enumerate(vector.steps):
        if "world_patch" in step:
            world.patch(step["world_patch"])
        world.now = vector.epoch + float(step.get("at", 0))
        before = len(world.log)
        result = world.resolve(
            step["resolve"], cache=resolver_cache, settings=settings, random=rng.random
        )
        made = world.log[before:]
        seen.extend(made)
        observed = observe(result, made, resolver_cache, seen, world.now, vector.epoch)
        judged = step if compare_requests else _without_requests(step)
        verdict = judge_step(judged, observed, vector.level, narrow="address-level" not in features)
        results.append(
            StepResult(
                name=step_name(step, index),
                decided_step=None if result.step is None else result.step.value,
                failures=verdict.failures,
                result=result,
                observed=observed,
                alternative=verdict.alternative,
                not_compared=verdict.not_compared,
            )
        )
    return tuple(results)


def _without_requests(step: Mapping[str, Any]) -> dict[str, Any]:
    judged = {k: v for k, v in step.items() if k != "requests"}
    if "alternatives" in step:
        judged["alternatives"] = [
            {k: v for k, v in a.items() if k != "requests"} for a in step["alternatives"]
        ]
    return judged


def step_name(step: Mapping[str, Any], index: int) -> str:
    return str(step.get("name", f"step-{index}"))


def skip_reason(vector: Vector, features: frozenset[str]) -> str | None:
    """Why an implementation with ``features`` skips ``vector`` (None: it runs it).

    ``address-level`` is the one feature that narrows instead: without it,
    addresses and A/AAAA queries are simply not compared.
    """
    if vector.unsupported is not None:
        return vector.unsupported
    implied = features | ({"address-lookup"} if "address-level" in features else set())
    missing = sorted(set(vector.features) - implied - {"address-level"})
    return f"needs {', '.join(missing)}" if missing else None


def observe(
    result: Resolution | ResolutionFailure,
    made: Iterable[Request],
    resolver_cache: ResolverCache,
    seen: Iterable[Request],
    now: float,
    epoch: float,
) -> dict[str, Any]:
    """What mxresolve did in one step, in the harness protocol's result shape."""
    if isinstance(result, ResolutionFailure):
        outcome: dict[str, Any] = {"error": result.kind.value, "message": result.message}
    else:
        outcome = {"targets": [t.to_json() for t in result.targets]}
    return {
        "outcome": outcome,
        "step": None if result.step is None else result.step.value,
        "requests": [r.to_json() for r in made],
        "cache": cache_entries(resolver_cache, seen, now),
        "epoch": epoch,
    }


def cache_entries(
    resolver_cache: ResolverCache, seen: Iterable[Request], now: float
) -> list[dict[str, Any]]:
    """The cache entries for names asked about so far (the cache offers no listing)."""
    entries: list[dict[str, Any]] = []
    done: set[tuple[str, str]] = set()
    for request in seen:
        if isinstance(request, HttpsGet):
            key = ("well-known", request.host)
            entry = resolver_cache.well_known(request.host)
            if key in done or entry is None:
                continue
            done.add(key)
            entries.append(
                {
                    "kind": "well-known",
                    "name": request.host,
                    "expires_at": entry.expires_at,
                    "delegation": None if entry.delegation is None else str(entry.delegation),
                    "failures": entry.failures,
                }
            )
        else:
            key = (request.qname, request.rdtype.value)
            dns = resolver_cache.dns(request.qname, RecordType(request.rdtype), now)
            if key in done or dns is None:
                continue
            done.add(key)
            entries.append(
                {
                    "kind": "dns",
                    "qname": request.qname,
                    "qtype": request.rdtype.value,
                    "expires_at": dns[1],
                    "status": dns[0].status.value,
                }
            )
    return entries

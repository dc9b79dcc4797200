"""Check the spec-vector files: schema, suite rules, spec quotes and world consistency.

Usage, from the repository root::

    python spec-vectors/tools/check.py [PATH ...]

PATH is a vector file, a deviations file (``*.deviations.json``, checked against
the vectors given with it) or a folder of them (default: spec-vectors/vectors and
spec-vectors/adapters/*.deviations.json).
Each problem is printed as ``FILE: VECTOR-ID: MESSAGE`` (``FILE: MESSAGE``
when no single vector is at fault), then one summary line; the exit status is
0 when there are no problems and 1 otherwise. Needs only the standard
library, so it runs before anything is installed. What is checked is listed
in spec-vectors/README.md ("Checking vector files").
"""

from __future__ import annotations

import copy
import importlib.util
import ipaddress
import json
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

TOOLS = Path(__file__).resolve().parent
SUITE = TOOLS.parent
ROOT = SUITE.parent
SCHEMA = SUITE / "schema" / "vectors.v2.schema.json"
SNAPSHOTS = TOOLS / "spec-snapshots"
DEVIATIONS_SUFFIX = ".deviations.json"


def _load_tool(name: str, file: str) -> ModuleType:
    # tools/ is not a package, and this file also runs as a script: load by path.
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, TOOLS / file)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


_schema = _load_tool("_spec_vectors_schema", "_schema.py")
_v1_to_v2 = _load_tool("_spec_vectors_v1_to_v2", "v1_to_v2.py")

Location = tuple[str | int, ...]

_FORBIDDEN_WORDS = re.compile(r"\bshould\b|\btest\s+that\b", re.IGNORECASE)
# Ids of a private catalogue ("Scenario R-36", "P-18") mean nothing to a reader of the suite.
_CATALOGUE_ID = re.compile(r"\bScenario\b|\b(?!I-)[A-Z]{1,2}-[0-9]{1,3}\b")
_MUST_WORDS = re.compile(r"\bmust\b|\brequired\b|\bfollowing grammar\b", re.IGNORECASE)
_ADDRESS_TYPES = frozenset({"A", "AAAA"})
_SRV_STEPS = frozenset({"3.3", "3.4", "4", "5"})
_LEVELS = ("MUST", "SHOULD", "INTERPRETATION")
_SHORTCODE = re.compile(r"\{\{[%<].*?[%>]\}\}", re.DOTALL)
_SPACE = re.compile(r"\s+")
_IPV4_TOKEN = re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?!\.?\d)")
_TOKEN_SPLIT = re.compile(r"[\s\"'\[\]{}(),;=/]+")
_DOC_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
)


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    vector: str | None  # None: the file as a whole
    message: str

    def __str__(self) -> str:
        if self.vector is None:
            return f"{self.file}: {self.message}"
        return f"{self.file}: {self.vector}: {self.message}"


@dataclass(slots=True)
class Report:
    files: int = 0
    vectors: int = 0
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"check: {self.vectors} vectors in {self.files} files, {len(self.problems)} problems"
            + (f", {len(self.warnings)} warnings" if self.warnings else "")
        )


# --- reading JSON ---------------------------------------------------------------------


class JsonError(ValueError):
    """A file that is not UTF-8 JSON."""


class _Object(dict[str, Any]):
    """A JSON object that remembers which keys it saw more than once."""

    duplicates: list[str]


def _object_pairs(pairs: list[tuple[str, Any]]) -> _Object:
    obj = _Object()
    obj.duplicates = []
    for key, value in pairs:
        if key in obj and key not in obj.duplicates:
            obj.duplicates.append(key)
        obj[key] = value
    return obj


def _no_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity; JSON does not.
    raise JsonError(f"{name} is not JSON")


def parse_json(data: bytes) -> Any:
    """Parse strict JSON from UTF-8 bytes; objects keep a record of duplicate keys."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JsonError(f"not valid UTF-8 (byte {exc.start})") from None
    if text.startswith("\ufeff"):
        raise JsonError("starts with a byte-order mark")
    try:
        return json.loads(text, object_pairs_hook=_object_pairs, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise JsonError(f"not valid JSON: {exc}") from None


def duplicate_keys(value: Any, at: Location = ()) -> Iterator[tuple[Location, str]]:
    """Where ``value`` (from :func:`parse_json`) has an object with a repeated key."""
    if isinstance(value, dict):
        for key in getattr(value, "duplicates", ()):
            yield at, key
        for key, item in value.items():
            yield from duplicate_keys(item, (*at, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from duplicate_keys(item, (*at, index))


# --- spec text ------------------------------------------------------------------------


def normalise(text: str) -> str:
    """Drop Hugo shortcodes (``{{% added-in v="1.8" %}}``) and collapse whitespace."""
    return _SPACE.sub(" ", _SHORTCODE.sub(" ", text)).strip()


def quote_found(quote: str, normalised_spec: str) -> bool:
    """Is ``quote`` in the (normalised) spec text, starting and ending on word boundaries?"""
    wanted = normalise(quote)
    if not wanted:
        return False
    start = normalised_spec.find(wanted)
    while start != -1:
        end = start + len(wanted)
        # A quote that cuts a word in two ("f the hostname") is not a quote.
        cut_start = wanted[0].isalnum() and start > 0 and normalised_spec[start - 1].isalnum()
        cut_end = (
            wanted[-1].isalnum() and end < len(normalised_spec) and normalised_spec[end].isalnum()
        )
        if not cut_start and not cut_end:
            return True
        start = normalised_spec.find(wanted, start + 1)
    return False


def interpretation_ids(docs: Path) -> tuple[str, set[str]] | None:
    """The I-NN ids headed in docs/interpretations.md, or None if it does not exist."""
    document = docs / "interpretations.md"
    if not document.is_file():
        return None
    text = document.read_text("utf-8")
    ids = re.findall(r"^#{2,4}\s+(I-[0-9]{2})\b", text, flags=re.MULTILINE)
    return f"{docs.name}/{document.name}", set(ids)


# --- helpers on vectors ---------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON Merge Patch, as the harness applies ``world_patch``."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    candidate = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    if "%" in candidate:  # zone ids are not part of any literal a vector means
        return None
    try:
        return ipaddress.ip_address(candidate)
    except ValueError:
        return None


def _is_ipv6_literal_server_name(server_name: str) -> bool:
    match = re.match(r"^\[([^\]]*)\]", server_name)
    return match is not None and isinstance(_ip(match.group(1)), ipaddress.IPv6Address)


def _targets(expect: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for item in expect.get("targets", ()):
        yield from item.get("any_order", [item])


def _expectations(steps: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for step in steps:
        yield step
        yield from step.get("alternatives", ())


def _patterns(steps: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every request pattern in the request assertions of the steps and alternatives."""
    for expectation in _expectations(steps):
        for assertion in expectation.get("requests", ()):
            for key in ("exact", "includes", "excludes", "in_order"):
                yield from assertion.get(key, ())
            if "count" in assertion:
                yield assertion["count"]["request"]


def _is_address_query(pattern: dict[str, Any]) -> bool:
    qtype = pattern.get("qtype")
    types = set(qtype) if isinstance(qtype, list) else {qtype}
    return pattern.get("op") == "dns" and types <= _ADDRESS_TYPES


def _only_unknown(error: Any) -> bool:
    """A schema error that only says something is unknown: loaders ignore it, with a warning."""
    message = error.message
    if message.startswith("unexpected property"):
        return True
    if "features" in error.location and "is not one of" in message:
        return True
    return "https" in error.location and message.startswith("property name:")


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _addresses(text: str) -> Iterator[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """IP addresses written anywhere in ``text`` (records, URLs, bodies, server names)."""
    for token in _IPV4_TOKEN.findall(text):
        address = _ip(token)
        if address is not None:
            yield address
    for token in {text, *_TOKEN_SPLIT.split(text)}:
        if ":" in token:
            address = _ip(token)
            if isinstance(address, ipaddress.IPv6Address):
                yield address


def _documentation_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in _DOC_NETWORKS)


# --- the checker ----------------------------------------------------------------------


class Checker:
    """Checks vector files against the schema and the suite rules."""

    def __init__(
        self,
        *,
        schema: Path = SCHEMA,
        snapshots: Path = SNAPSHOTS,
        docs: Path = ROOT / "docs",
        display_root: Path | None = None,
    ) -> None:
        document = json.loads(schema.read_text("utf-8"))
        self.validator = _schema.Validator(document)
        # world_patch may be any object; what it leaves behind must still be a world.
        self.world_validator = _schema.Validator(
            {"$ref": "#/$defs/world", "$defs": document.get("$defs", {})}
        )
        self.snapshots = snapshots
        self.interpretations = interpretation_ids(docs)
        self.display_root = display_root if display_root is not None else Path.cwd()
        self._spec_texts: dict[str, str | None] = {}
        self._ids: dict[str, str] = {}
        self._labels: set[str] = set()  # the I-NN that label some assertion

    def run(self, paths: Iterable[Path]) -> Report:
        report = Report()
        files: list[Path] = []
        for path in paths:
            if path.is_dir():
                files.extend(sorted(path.rglob("*.json")))
            else:
                files.append(path)
        # Deviations files are checked against the vectors, so after all of them.
        deviations = [f for f in files if f.name.endswith(DEVIATIONS_SUFFIX)]
        for file in files:
            if file not in deviations:
                report.files += 1
                report.vectors += self.check_file(file, report.problems, report.warnings)
        for file in deviations:
            report.files += 1
            self.check_deviations(file, report.problems)
        return report

    def check_deviations(self, file: Path, problems: list[Problem]) -> None:
        """An implementation's expected deviations (docs/harness.md, "Deviations")."""
        name = self._display(file)
        try:
            document = parse_json(file.read_bytes())
        except (OSError, JsonError) as exc:
            problems.append(Problem(name, None, str(exc)))
            return
        entries = document.get("deviations") if isinstance(document, dict) else None
        if not isinstance(entries, list):
            problems.append(Problem(name, None, "expected an object with a 'deviations' list"))
            return
        seen: set[str] = set()
        for index, entry in enumerate(entries):
            for message in self._deviation_problems(entry, seen):
                problems.append(Problem(name, None, f"deviations[{index}]: {message}"))

    def _deviation_problems(self, entry: Any, seen: set[str]) -> Iterator[str]:
        if not isinstance(entry, dict):
            yield "expected an object"
            return
        justification = entry.get("justification")
        if not (isinstance(justification, str) and justification.strip()):
            yield "needs a non-empty 'justification'"
        keys = [key for key in ("id", "interpretation") if key in entry]
        if len(keys) != 1:
            yield "needs exactly one of 'id' and 'interpretation'"
            return
        value = entry[keys[0]]
        if not isinstance(value, str):
            yield f"{keys[0]!r} must be a string"
            return
        if value in seen:
            yield f"{value!r} is listed twice"
        seen.add(value)
        if keys[0] == "id":
            if self._ids and value not in self._ids:
                yield f"no vector has id {value!r}"
        elif not re.fullmatch(r"I-[0-9]{2,}", value):
            yield f"interpretation {value!r} is not an id like 'I-48'"
        elif self.interpretations is not None and value not in self.interpretations[1]:
            yield f"interpretation {value} is not in {self.interpretations[0]}"
        elif self._ids and value not in self._labels:
            yield f"no assertion of the vectors checked is labelled {value}: it excuses nothing"

    def _display(self, file: Path) -> str:
        try:
            return str(file.resolve().relative_to(self.display_root.resolve()))
        except ValueError:
            return str(file)

    def check_file(
        self, file: Path, problems: list[Problem], warnings: list[Problem] | None = None
    ) -> int:
        """Add ``file``'s problems to ``problems``; return how many vectors it holds.

        Unknown fields, features, record types and non-https URLs are warnings: loaders
        ignore them (format 2), so they never make a file unreadable.
        """
        warnings = warnings if warnings is not None else []
        name = self._display(file)
        try:
            document = parse_json(file.read_bytes())
        except (OSError, JsonError) as exc:
            problems.append(Problem(name, None, str(exc)))
            return 0
        if isinstance(document, dict) and document.get("format_version") == 1:
            warnings.append(
                Problem(name, None, "format_version 1: checked as upgraded; run tools/v1_to_v2.py")
            )
            document = _v1_to_v2.upgrade_document(document)
        raw_vectors = document.get("vectors") if isinstance(document, dict) else None
        vectors = raw_vectors if isinstance(raw_vectors, list) else []

        def label(location: Location) -> str | None:
            if len(location) >= 2 and location[0] == "vectors" and isinstance(location[1], int):
                index = location[1]
                vid = vectors[index].get("id") if isinstance(vectors[index], dict) else None
                return vid if isinstance(vid, str) else f"vectors[{index}]"
            return None

        for location, key in duplicate_keys(document):
            where = _schema.format_path(location)
            problems.append(Problem(name, label(location), f"{where}: duplicate key {key!r}"))
        broken: set[int] = set()
        whole_file = False
        for error in self.validator.errors(document):
            if _only_unknown(error):
                warnings.append(Problem(name, label(error.location), f"ignored: {error}"))
                continue
            problems.append(Problem(name, label(error.location), str(error)))
            if label(error.location) is None:
                whole_file = True
            else:
                broken.add(int(error.location[1]))
        if whole_file:
            return len(vectors)
        for index, vector in enumerate(vectors):
            if index not in broken:  # the rules below rely on the schema's shapes
                for message in self.check_vector(vector, name):
                    problems.append(Problem(name, vector["id"], message))
        return len(vectors)

    def check_vector(self, vector: dict[str, Any], file: str) -> Iterator[str]:
        """The suite rules for one schema-valid vector, as messages."""
        vid: str = vector["id"]
        features = set(vector["features"])
        steps: list[dict[str, Any]] = vector["steps"]

        if vid in self._ids:
            yield f"id is also used in {self._ids[vid]}"
        else:
            self._ids[vid] = file

        if _FORBIDDEN_WORDS.search(vector["description"]):
            yield "the description says 'should' or 'test that'; state what happens instead"
        if _CATALOGUE_ID.search(vector["description"]):
            yield "the description cites a private catalogue id; say in words what is tested"

        yield from self._check_citations(vector["spec"])
        yield from self._check_levels(vector)

        # --- declared features match what the vector does ---
        if vector.get("settings") and "settings" not in features:
            yield "sets 'settings' but does not declare the feature 'settings'"
        if len({step.get("at", 0) for step in steps}) > 1 and not features & {
            "well-known-cache",
            "dns-cache",
        }:
            yield "resolves at different times but declares neither well-known-cache nor dns-cache"
        ipv6 = _v1_to_v2.has_ipv6_literal(vector)
        if ipv6 and "ipv6" not in features:
            yield "uses an IPv6 literal but does not declare the feature 'ipv6'"
        if "ipv6" in features and not ipv6:
            yield (
                "declares 'ipv6' without an IPv6 literal (in a server name, a target or a "
                "delegation); AAAA answers alone do not need it"
            )
        # An IP literal's address is the literal itself; others come from DNS.
        compares_addresses = any(
            "addresses" in target and _ip(target["host"]) is None
            for step in _expectations(steps)
            for target in _targets(step["expect"])
        ) or any(_is_address_query(p) for p in _patterns(steps))
        if compares_addresses and "address-level" not in features:
            yield (
                "compares addresses or A/AAAA queries of a DNS name but does not declare "
                "'address-level'"
            )
        if "address-level" in features and not compares_addresses:
            yield "declares 'address-level' but compares no address and no A/AAAA query"
        if _v1_to_v2.needs_address_lookup(steps) and "address-lookup" not in features:
            yield "expects an error only an address lookup gives but lacks 'address-lookup'"
        endpoints = "endpoints" in vector.get("world", {}) or any(
            "endpoints" in (step.get("world_patch") or {}) for step in steps
        )
        if endpoints != ("endpoints" in features):
            yield "'endpoints' is declared exactly when the world has endpoints"
        for step in steps:
            for assertion in step.get("cache", ()):
                wanted = "well-known-cache" if "well_known" in assertion else "dns-cache"
                if wanted not in features:
                    yield f"has a cache assertion but does not declare {wanted!r}"
        legacy_names = [*vector.get("world", {}).get("dns", {})]
        for step in steps:
            legacy_names.extend(step.get("world_patch", {}).get("dns", None) or {})
        legacy_names.extend(p["qname"] for p in _patterns(steps) if p["op"] == "dns")
        if (
            any(isinstance(n, str) and n.lower().startswith("_matrix._tcp.") for n in legacy_names)
            and "deprecated-matrix-srv" not in features
        ):
            yield "has a _matrix._tcp name but does not declare 'deprecated-matrix-srv'"

        # --- steps and the clock ---
        names: set[str] = set()
        last_at = 0.0
        world: Any = vector.get("world", {})
        for index, step in enumerate(steps):
            step_name = str(step.get("name", f"step-{index}"))
            if step_name in names:
                yield f"two steps are named {step_name!r}"
            names.add(step_name)
            alternatives = [a["name"] for a in step.get("alternatives", ())]
            if len(set(alternatives)) != len(alternatives):
                yield f"step {step_name!r}: two alternatives have the same name"
            for assertion in step.get("requests", ()):
                for pattern in assertion.get("exact", ()):
                    if pattern["op"] == "dns" and not isinstance(pattern.get("qtype"), str):
                        yield f"step {step_name!r}: 'exact' requests need one qtype each"
            at = step.get("at", 0)
            if at < last_at:
                yield f"step {step_name!r}: 'at' goes back from {last_at:g} to {at:g}"
            last_at = max(last_at, at)
            if "world_patch" in step:
                world = merge_patch(world, step["world_patch"])
                for error in self.world_validator.errors(world):
                    if not _only_unknown(error):
                        yield f"step {step_name!r}: the patched world is invalid: {error}"
            zones = {str(n).lower() for n in (world.get("dns") or {})}
            for expectation in [step, *step.get("alternatives", ())]:
                for target in _targets(expectation["expect"]):
                    host = target["host"]
                    if _ip(host) is None and host.lower().rstrip(".") + "." not in zones:
                        yield f"step {step_name!r}: target host {host!r} is not in world.dns"

        # --- documentation addresses only ---
        if "ip-policy" not in features:
            places = [vector.get("world", {})]
            for step in steps:
                places += [
                    step.get("world_patch", {}),
                    step["resolve"],
                    step["expect"],
                    step.get("requests", []),
                    step.get("alternatives", []),
                ]
            seen: set[str] = set()
            for text in _strings(places):
                for address in _addresses(text):
                    if not _documentation_address(address) and str(address) not in seen:
                        seen.add(str(address))
                        yield (
                            f"address {address} is outside the documentation ranges "
                            "(192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32); "
                            "other addresses need the feature 'ip-policy'"
                        )

    def _check_levels(self, vector: dict[str, Any]) -> Iterator[str]:
        """MUST only where the spec says must; every interpretation named, and known."""
        quotes = " ".join(c["quote"] for c in vector["spec"]["citations"])
        if vector["requirement"] == "MUST" and not _MUST_WORDS.search(quotes):
            yield "requirement MUST, but no citation says 'must', 'required' or gives the grammar"
        labelled = [("the vector", vector.get("requirement"), vector.get("interpretation"))]
        for index, step in enumerate(vector["steps"]):
            where = f"step {step.get('name', f'step-{index}')!r}"
            step_level = step.get("level", vector["requirement"])
            labelled.append((where, step.get("level"), step.get("interpretation")))
            for expectation in [step, *step.get("alternatives", ())]:
                expect = expectation["expect"]
                level = expectation.get("level", step_level)
                if "addresses_level" in expect:
                    al = expect["addresses_level"]
                    labelled.append(
                        (f"{where} addresses_level", al["level"], al.get("interpretation"))
                    )
                strong = level in ("MUST", "SHOULD")
                list_level = level
                if "targets_level" in expect:
                    tl = expect["targets_level"]
                    labelled.append(
                        (f"{where} targets_level", tl["level"], tl.get("interpretation"))
                    )
                    list_level = tl["level"]
                several = len(list(_targets(expect))) > 1
                if list_level != "INTERPRETATION" and expect.get("step") in _SRV_STEPS and several:
                    yield (
                        f"{where}: several SRV targets in order at {level}; the spec says "
                        "'an SRV record' (give targets_level INTERPRETATION I-22)"
                    )
                if (
                    strong
                    and "addresses_level" not in expect
                    and any(
                        len(t.get("addresses", ())) > 1 and _ip(t["host"]) is None
                        for t in _targets(expect)
                    )
                ):
                    yield (
                        f"{where}: several addresses compared at {level}; the spec says 'an IP "
                        "address' (give addresses_level INTERPRETATION I-23)"
                    )
            for assertion in step.get("requests", ()):
                labelled.append(
                    (
                        f"{where} request assertion",
                        assertion.get("level"),
                        assertion.get("interpretation"),
                    )
                )
                level = assertion.get("level", step_level)
                exact = assertion.get("exact", ())
                asks = {p.get("qtype") for p in exact if p["op"] == "dns"}
                # An exact list that covers DNS queries says "no other query": a resolver
                # asking early or in parallel differs there without a different result.
                covers_dns = "among" not in assertion or any(
                    p["op"] == "dns" for p in assertion["among"]
                )
                if "exact" in assertion and level != "INTERPRETATION" and covers_dns:
                    yield (
                        f"{where}: an exact list of DNS queries at {level}; a resolver may ask "
                        "early or in parallel (give it INTERPRETATION I-48, beside an includes)"
                    )
                if level != "INTERPRETATION" and asks >= _ADDRESS_TYPES:
                    yield (
                        f"{where}: an exact request list with AAAA and A at {level}; the spec says "
                        "'AAAA or A' (label it INTERPRETATION I-23)"
                    )
            for assertion in step.get("cache", ()):
                labelled.append(
                    (
                        f"{where} cache assertion",
                        assertion.get("level"),
                        assertion.get("interpretation"),
                    )
                )
        for where, level, interpretation in labelled:
            if interpretation is not None:
                self._labels.add(interpretation)
            if level == "INTERPRETATION" and interpretation is None:
                yield f"{where}: level INTERPRETATION needs an 'interpretation' id"
            if interpretation is not None:
                if level != "INTERPRETATION":
                    yield f"{where}: has interpretation {interpretation} but level {level}"
                if (
                    self.interpretations is not None
                    and interpretation not in self.interpretations[1]
                ):
                    known = self.interpretations[0]
                    yield f"{where}: interpretation {interpretation} is not in {known}"

    def _check_citations(self, spec: dict[str, Any]) -> Iterator[str]:
        version = spec["cited_version"]
        text = self._spec_text(version)
        if text is None:
            yield f"no pinned spec text for cited_version {version} (tools/spec-snapshots/)"
            return
        for index, citation in enumerate(spec["citations"]):
            if "document" in citation:
                # Another document (RFC 2782, 9111, ...): no pinned text to check against here.
                if citation["document"].startswith("RFC ") and "url" not in citation:
                    yield f"citations[{index}]: an RFC citation needs its 'url'"
                continue
            if not quote_found(citation["quote"], text):
                shown = normalise(citation["quote"])
                shown = shown if len(shown) <= 80 else shown[:77] + "..."
                yield f"citations[{index}]: quote not found verbatim in spec {version}: {shown!r}"

    def _spec_text(self, version: str) -> str | None:
        if version not in self._spec_texts:
            path = self.snapshots / f"{version}.md"
            self._spec_texts[version] = (
                normalise(path.read_text("utf-8")) if path.is_file() else None
            )
        return self._spec_texts[version]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in args):
        print(__doc__.strip())
        return 0
    paths = [Path(a) for a in args] or [
        SUITE / "vectors",
        *sorted((SUITE / "adapters").glob("*" + DEVIATIONS_SUFFIX)),
    ]
    missing = [p for p in paths if not p.exists()]
    if missing:
        print(f"check: no such file or folder: {', '.join(map(str, missing))}", file=sys.stderr)
        return 1
    report = Checker().run(paths)
    for warning in report.warnings:
        print(f"warning: {warning}")
    for problem in report.problems:
        print(problem)
    print(report.summary())
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())

"""Upgrade spec-vector files from format version 1 to format version 2.

Usage, from the repository root::

    python spec-vectors/tools/v1_to_v2.py FILE_OR_FOLDER ...   # rewrite v1 files in place
    python spec-vectors/tools/v1_to_v2.py --check FILE ...     # exit 1 if any file is still v1

The same :func:`upgrade_document` is what loaders use to read a v1 file as v2
(``mxresolve vectors run`` does), so a v1 file keeps working while it waits to
be migrated. Standard library only. What changes, and why (format version 2 in
spec-vectors/README.md):

* ``requests`` lists (v1: exact, HTTPS in order, DNS as a multiset) become a
  list of request assertions: the GETs exactly, in order, at the vector's level;
  an ``includes`` of the DNS queries at the vector's level (what must be asked;
  each looked-up name needs only *an* AAAA or A query, the spec's "AAAA or A");
  and the exact DNS queries at INTERPRETATION I-48 (a resolver asking early or
  in parallel asks more without changing a result).
* Expected targets with several addresses (the spec says "an IP address") have
  their address comparison labelled INTERPRETATION I-23.
* A MUST or SHOULD step that expects several SRV targets in priority order has
  the targets after the first labelled INTERPRETATION I-22 (the spec says "an
  SRV record").
* ``ipv6`` is kept only on vectors with an IPv6 literal (a server name, a
  target, or a delegation); ``address-lookup`` is added where the expected
  error only happens to a resolver that looks addresses up itself.
* Descriptions lose private catalogue ids ("Scenario R-36: ...").
"""

from __future__ import annotations

import copy
import ipaddress
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["dumps", "upgrade_document", "upgrade_vector"]

ADDRESS_TYPES = ("AAAA", "A")
_SRV_STEPS = {"3.3", "3.4", "4", "5"}
_LOOKUP_STEPS = {"2", "3.2", "3.5", "6"}
_CATALOGUE = re.compile(r"^Scenario [A-Z]-\d+(?P<rest>[^:]*): ")
EVERY_ADDRESS = {"level": "INTERPRETATION", "interpretation": "I-23"}
SRV_ORDER = {"level": "INTERPRETATION", "interpretation": "I-22"}
ONE_AT_A_TIME = {"level": "INTERPRETATION", "interpretation": "I-48"}


def upgrade_document(document: dict[str, Any]) -> dict[str, Any]:
    """A v1 file's object as format version 2 (a v2 one is returned as it is)."""
    if document.get("format_version") != 1:
        return document
    upgraded = {k: v for k, v in document.items() if k != "vectors"}
    upgraded["format_version"] = 2
    upgraded["vectors"] = [upgrade_vector(v) for v in document.get("vectors", [])]
    return upgraded


def upgrade_vector(vector: dict[str, Any]) -> dict[str, Any]:
    """One v1 vector as v2."""
    v = copy.deepcopy(vector)
    if isinstance(v.get("description"), str):
        v["description"] = _drop_catalogue_id(v["description"])
    own = v.get("interpretation")
    features = list(v.get("features", []))
    steps = v.get("steps", [])
    if "ipv6" in features and not has_ipv6_literal(v):
        features.remove("ipv6")
    if needs_address_lookup(steps) and "address-lookup" not in features:
        features.append("address-lookup")
    v["features"] = features
    for step in steps:
        expect = step.get("expect", {})
        if v.get("requirement") in ("MUST", "SHOULD") and own != "I-22" and _srv_list(expect):
            expect["targets_level"] = dict(SRV_ORDER)
        if own != "I-23" and any(
            len(t.get("addresses", ())) > 1 and _ip(t.get("host", "")) is None
            for t in targets_of(expect)
        ):
            expect["addresses_level"] = dict(EVERY_ADDRESS)
        if isinstance(step.get("requests"), list) and not _is_v2_requests(step["requests"]):
            step["requests"] = _requests(step["requests"], pin_addresses=own != "I-23")
    # address-level now narrows (addresses and A/AAAA queries are not compared without it)
    # instead of skipping, so it goes exactly on the vectors that compare such things.
    if compares_addresses(steps) != ("address-level" in features):
        if "address-level" in features:
            features.remove("address-level")
        else:
            features.append("address-level")
    return v


def compares_addresses(steps: list[dict[str, Any]]) -> bool:
    """Does a step compare the addresses of a DNS name, or A/AAAA queries?"""
    for step in steps:
        for expectation in [step, *step.get("alternatives", [])]:
            if any(
                "addresses" in t and _ip(str(t.get("host", ""))) is None
                for t in targets_of(expectation.get("expect", {}))
            ):
                return True
            for assertion in expectation.get("requests", []):
                if "op" in assertion:  # a format 1 request
                    assertion = {"exact": [assertion]}
                patterns = [
                    p
                    for k in ("exact", "includes", "excludes", "in_order")
                    for p in assertion.get(k, [])
                ]
                if "count" in assertion:
                    patterns.append(assertion["count"]["request"])
                if any(_address_query(p) for p in patterns):
                    return True
    return False


def _address_query(pattern: dict[str, Any]) -> bool:
    qtype = pattern.get("qtype")
    types = set(qtype) if isinstance(qtype, list) else {qtype}
    return pattern.get("op") == "dns" and types <= set(ADDRESS_TYPES)


def _drop_catalogue_id(text: str) -> str:
    match = _CATALOGUE.match(text)
    if match is None:
        return text
    rest, body = match.group("rest").strip(), text[match.end() :]
    if rest:  # "Scenario R-19 with the lookups switched off: ..." keeps its qualifier
        return f"{rest[0].upper()}{rest[1:]}: {body}"
    return body[0].upper() + body[1:] if body else body


def _is_v2_requests(requests: list[Any]) -> bool:
    return any(isinstance(r, dict) and "op" not in r for r in requests)


def _requests(exact: list[dict[str, Any]], *, pin_addresses: bool) -> list[dict[str, Any]]:
    gets = [r for r in exact if r.get("op") == "https_get"]
    queries = [r for r in exact if r.get("op") == "dns"]
    # The GETs, in order, are the same for every resolver: at the vector's level.
    assertions: list[dict[str, Any]] = [{"exact": gets, "among": [{"op": "https_get"}]}]
    if queries:
        # What must be asked, at the vector's level: each SRV query, and for each
        # looked-up name "AAAA or A" (both, where the vector pins I-23 itself).
        needed: list[dict[str, Any]] = []
        for query in queries:
            name = str(query.get("qname", "")).lower()
            if not _address_query(query) or not pin_addresses:
                needed.append(query)
            elif not any(n.get("qname") == name and _address_query(n) for n in needed):
                needed.append({"op": "dns", "qname": name, "qtype": list(ADDRESS_TYPES)})
        assertions.append({"includes": needed})
    # Exactly these DNS queries and no others: a resolver asking each question when its
    # step is reached (I-48); one asking early or in parallel asks more.
    assertions.append({"exact": queries, "among": [{"op": "dns"}], **ONE_AT_A_TIME})
    return assertions


def _srv_list(expect: dict[str, Any]) -> bool:
    return expect.get("step") in _SRV_STEPS and len(list(targets_of(expect))) > 1


def needs_address_lookup(steps: list[dict[str, Any]]) -> bool:
    """Is some expected error one that only a resolver looking addresses up itself gives?"""
    for step in steps:
        expect = step.get("expect", {})
        error, decided = expect.get("error"), expect.get("step")
        if error == "no_address" or (error == "refused_address" and decided != "1"):
            return True
        if error == "dns_failure" and decided in _LOOKUP_STEPS:
            return True
    return False


def targets_of(expect: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for item in expect.get("targets", ()):
        if isinstance(item, dict):
            yield from item.get("any_order", [item])


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    candidate = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    if "%" in candidate:  # a zone id is not part of any literal a vector means
        return None
    try:
        return ipaddress.ip_address(candidate)
    except ValueError:
        return None


def _ipv6_server_name(text: str) -> bool:
    match = re.match(r"^\[([^\]]*)\]", text)
    return match is not None and isinstance(_ip(match.group(1)), ipaddress.IPv6Address)


def _delegations(world: dict[str, Any]) -> Iterator[str]:
    for response in (world.get("https") or {}).values():
        body = response.get("body") if isinstance(response, dict) else None
        if isinstance(body, str):
            try:
                parsed = json.loads(body)
            except ValueError:
                continue
            if isinstance(parsed, dict) and isinstance(parsed.get("m.server"), str):
                yield parsed["m.server"]


def has_ipv6_literal(vector: dict[str, Any]) -> bool:
    """An IPv6 literal in a server name, a target host or a well-known delegation."""
    steps = vector.get("steps", [])
    worlds = [vector.get("world") or {}] + [s.get("world_patch") or {} for s in steps]
    names = [str(s.get("resolve", "")) for s in steps]
    names += [d for w in worlds if isinstance(w, dict) for d in _delegations(w)]
    if any(_ipv6_server_name(n) for n in names):
        return True
    return any(
        isinstance(_ip(str(t.get("host", ""))), ipaddress.IPv6Address)
        for s in steps
        for t in targets_of(s.get("expect", {}))
    )


# --- writing files ----------------------------------------------------------------------

_WIDTH = 100


def dumps(document: Any) -> str:
    """JSON as the suite writes it: small values on one line, big ones spread out."""
    return _dump(document, 0) + "\n"


def _dump(value: Any, indent: int) -> str:
    flat = json.dumps(value, ensure_ascii=False)
    if not isinstance(value, (dict, list)) or indent + len(flat) <= _WIDTH or not value:
        return flat
    pad = " " * (indent + 2)
    if isinstance(value, list):
        items = [pad + _dump(item, indent + 2) for item in value]
        return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"
    items = [
        f"{pad}{json.dumps(k, ensure_ascii=False)}: {_dump(v, indent + 2)}"
        for k, v in value.items()
    ]
    return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"


def _files(paths: list[str]) -> Iterator[Path]:
    for raw in paths:
        path = Path(raw)
        yield from sorted(path.rglob("*.json")) if path.is_dir() else [path]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    check = "--check" in args
    paths = [a for a in args if a != "--check"]
    if not paths or "-h" in args or "--help" in args:
        print(__doc__.strip())
        return 0 if paths else 2
    stale = 0
    for file in _files(paths):
        document = json.loads(file.read_text("utf-8"))
        if document.get("format_version") != 1:
            continue
        stale += 1
        if check:
            print(f"{file}: format_version 1; run spec-vectors/tools/v1_to_v2.py on it")
        else:
            file.write_text(dumps(upgrade_document(document)), "utf-8")
            print(f"{file}: upgraded to format_version 2")
    return 1 if check and stale else 0


if __name__ == "__main__":
    sys.exit(main())

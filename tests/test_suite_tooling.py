"""The spec-vectors tooling: the schema validator and the suite checker (spec-vectors/tools)."""

from __future__ import annotations

import copy
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / "spec-vectors" / "tools"
VECTOR_FILES = sorted((ROOT / "spec-vectors" / "vectors").rglob("*.json"))


def _load(name: str, path: Path) -> ModuleType:
    # spec-vectors/tools is not a package; load its modules by path.
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


check = _load("spec_vectors_check", TOOLS / "check.py")
schema_module = check._schema  # the very module check.py validates with
Validator = schema_module.Validator
SchemaError = schema_module.SchemaError
SCHEMA: dict[str, Any] = json.loads(
    (ROOT / "spec-vectors/schema/vectors.v2.schema.json").read_text()
)

STEP2_QUOTE = (
    "Requests are made to the resolved IP address and given port with a `Host` header of "
    "the original server name (with port). The target server must present a valid certificate "
    "for the hostname."
)
BASE_VECTOR: dict[str, Any] = {
    "id": "tooling::base",
    "description": "A name with a port is resolved through its A record to one target.",
    "spec": {
        "since": "v1.1",
        "until": None,
        "cited_version": "v1.19",
        "citations": [
            {
                "section": "server-server-api#resolving-server-names",
                "step": "2",
                "quote": STEP2_QUOTE,
            }
        ],
    },
    "requirement": "MUST",
    "features": ["address-level"],
    "world": {"dns": {"example.org.": {"A": {"records": ["192.0.2.1"]}}}},
    "steps": [
        {
            "name": "first",
            "resolve": "example.org:8448",
            "expect": {
                "step": "2",
                "targets": [
                    {
                        "host": "example.org",
                        "port": 8448,
                        "addresses": ["192.0.2.1"],
                        "host_header": "example.org:8448",
                        "tls_server_name": "example.org",
                        "sni": "example.org",
                    }
                ],
            },
            "requests": [{"includes": [{"op": "dns", "qname": "example.org.", "qtype": "A"}]}],
        }
    ],
}


def _document(vector: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"format_version": 2, "vectors": [copy.deepcopy(vector or BASE_VECTOR)]}


def _messages(instance: Any, schema: Any = None) -> list[str]:
    return [str(e) for e in Validator(SCHEMA if schema is None else schema).errors(instance)]


def _check_text(tmp_path: Path, text: str | bytes) -> list[str]:
    file = tmp_path / "vectors.json"
    if isinstance(text, str):
        file.write_text(text, encoding="utf-8")
    else:
        file.write_bytes(text)
    report = check.Checker(display_root=tmp_path).run([file])
    return [str(p) for p in report.problems]


def _check_vector(tmp_path: Path, vector: dict[str, Any]) -> list[str]:
    return _check_text(tmp_path, json.dumps(_document(vector)))


# --- the validator --------------------------------------------------------------------


@pytest.mark.parametrize("file", VECTOR_FILES, ids=[f.name for f in VECTOR_FILES])
def test_the_validator_accepts_every_vector_file(file: Path) -> None:
    errors = Validator(SCHEMA).errors(json.loads(file.read_text("utf-8")))
    # Unknown fields are only warnings (format 2 ignores them); nothing else may be wrong.
    assert [str(e) for e in errors if not check._only_unknown(e)] == []


def test_the_base_vector_is_valid_and_passes_every_rule(tmp_path: Path) -> None:
    assert _messages(_document()) == []
    assert _check_vector(tmp_path, BASE_VECTOR) == []


def test_wrong_type_is_reported_with_its_path() -> None:
    doc = _document()
    doc["vectors"][0]["steps"][0]["expect"]["targets"][0]["port"] = "8448"
    assert _messages(doc) == [
        "$.vectors[0].steps[0].expect.targets[0].port: expected integer, got string"
    ]


def test_missing_required_property() -> None:
    doc = _document()
    del doc["vectors"][0]["world"]["dns"]["example.org."]["A"]["records"]
    del doc["vectors"][0]["steps"]
    messages = _messages(doc)
    assert "$.vectors[0]: missing required property 'steps'" in messages
    # The rrset is now neither an error nor a record set.
    assert any(
        m.startswith('$.vectors[0].world.dns["example.org."].A: matches none of the oneOf')
        for m in messages
    )


def test_extra_property() -> None:
    doc = _document()
    doc["vectors"][0]["requirment"] = "MUST"
    assert _messages(doc) == ["$.vectors[0]: unexpected property 'requirment'"]


def test_pattern_mismatch() -> None:
    doc = _document()
    doc["vectors"][0]["id"] = "Tooling::Base"
    assert _messages(doc) == [
        '$.vectors[0].id: "Tooling::Base" does not match '
        "'^[a-z0-9][a-z0-9.-]*(::[a-z0-9][a-z0-9.-]*)+$'"
    ]


def test_property_names_are_checked() -> None:
    doc = _document()
    doc["vectors"][0]["world"]["dns"]["example.org"] = {}
    assert _messages(doc) == [
        '$.vectors[0].world.dns["example.org"]: property name: "example.org" does not match '
        "'\\\\.$'"
    ]


def test_one_of_with_no_match() -> None:
    doc = _document()
    del doc["vectors"][0]["steps"][0]["expect"]["targets"]
    (message,) = _messages(doc)
    assert message.startswith("$.vectors[0].steps[0].expect: matches none of the oneOf")
    assert "missing required property 'targets'" in message


def test_one_of_with_two_matches() -> None:
    doc = _document()
    doc["vectors"][0]["steps"][0]["expect"]["error"] = "no_address"
    assert _messages(doc) == [
        "$.vectors[0].steps[0].expect: matches 2 oneOf alternatives (0, 1); exactly one may"
    ]


def test_json_equality_rules() -> None:
    # true is not 1, 1.0 is an integer, and [1, 1.0] has a repeated item.
    assert _messages(True, {"const": 1}) == ["$: must be 1"]
    assert _messages(1.0, {"type": "integer", "const": 1}) == []
    assert _messages([1, 1.0], {"uniqueItems": True}) == ["$: items 0 and 1 are equal"]
    assert _messages([1, True], {"uniqueItems": True}) == []


def test_patterns_have_ecma_semantics() -> None:
    # Python's "$" also matches before a final newline; ECMA-262's does not.
    schema = {"type": "string", "pattern": "^v[0-9]+$"}
    assert _messages("v1", schema) == []
    assert len(_messages("v1\n", schema)) == 1
    assert _messages("x\ny", {"pattern": "^x.y$"}) != []
    assert _messages("\u0663", {"pattern": "^\\d$"}) != []  # Arabic-Indic digit


def test_prefix_items_then_items() -> None:
    schema = {"prefixItems": [{"type": "string"}], "items": {"type": "integer"}, "maxItems": 2}
    assert _messages(["a", 1], schema) == []
    assert _messages([1, "a", 2], schema) == [
        "$: allows at most 2 item(s)",
        "$[0]: expected string, got integer",
        "$[1]: expected integer, got string",
    ]


@pytest.mark.parametrize(
    "schema",
    [
        {"$ref": "#/$defs/missing"},
        {"$ref": "other.json#/$defs/x"},
        {"$ref": "#/definitions/x", "definitions": {"x": {}}},
        {"properties": {"a": {"$ref": "#/$defs/a/b"}}, "$defs": {"a": {}}},
    ],
)
def test_bad_refs_fail_when_the_validator_is_built(schema: dict[str, Any]) -> None:
    with pytest.raises(SchemaError):
        Validator(schema)


@pytest.mark.parametrize(
    ("schema", "keyword"),
    [
        ({"type": "object", "anyOf": [{}]}, "anyOf"),
        ({"properties": {"a": {"type": "string", "format": "email"}}}, "format"),
        ({"$defs": {"x": {"exclusiveMaximum": 3}}}, "exclusiveMaximum"),
        ({"items": {"oneOf": [{"if": {}}]}}, "if"),
        ({"additionalProperties": {"dependentRequired": {}}}, "dependentRequired"),
    ],
)
def test_unknown_keywords_fail_loudly(schema: dict[str, Any], keyword: str) -> None:
    with pytest.raises(SchemaError, match=f"unknown keyword '{keyword}'"):
        Validator(schema)


def test_an_unknown_keyword_in_the_real_schema_fails_loudly() -> None:
    broken = copy.deepcopy(SCHEMA)
    broken["$defs"]["target"]["additionalProperty"] = False  # a typo for additionalProperties
    with pytest.raises(SchemaError, match=r"#/\$defs/target/additionalProperty"):
        Validator(broken)


def test_property_names_that_look_like_keywords_are_fine() -> None:
    Validator({"properties": {"anyOf": {"type": "string"}, "format": True}})


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "int"},
        {"required": "a"},
        {"minLength": -1},
        {"pattern": "("},
        {"pattern": "[]"},
        {"pattern": "\\p{L}"},
        {"items": [{}]},
        {"properties": {"a": {"$schema": "x"}}},
        {"$schema": "http://json-schema.org/draft-07/schema#"},
    ],
)
def test_malformed_schemas_fail_loudly(schema: dict[str, Any]) -> None:
    with pytest.raises(SchemaError):
        Validator(schema)


def test_json_paths_quote_odd_keys() -> None:
    assert schema_module.format_path(()) == "$"
    assert (
        schema_module.format_path(("world", "dns", "_matrix._tcp.a.", "SRV", 0))
        == '$.world.dns["_matrix._tcp.a."].SRV[0]'
    )


# --- the checker ----------------------------------------------------------------------


def test_a_changed_quote_is_caught(tmp_path: Path) -> None:
    vector = copy.deepcopy(BASE_VECTOR)
    vector["spec"]["citations"][0]["quote"] = STEP2_QUOTE.replace("given port", "default port")
    (problem,) = _check_vector(tmp_path, vector)
    assert problem.startswith("vectors.json: tooling::base: citations[0]: quote not found")


def test_quotes_are_matched_after_normalisation() -> None:
    spec = check.normalise((TOOLS / "spec-snapshots" / "v1.19.md").read_text("utf-8"))
    # Re-wrapped, and with or without the added-in shortcode.
    assert check.quote_found(
        "If the `/.well-known` request\n   resulted in an error response", spec
    )
    assert check.quote_found('{{% added-in v="1.8" %}} If the `/.well-known` request', spec)
    # Text the snapshot also carries: appendices and wellknown.yaml.
    assert check.quote_found("port = 1*5DIGIT", spec)
    assert check.quote_found("should assume that the body is JSON regardless of type.", spec)
    # A quote may not start or end in the middle of a word.
    assert not check.quote_found("f the `/.well-known` request", spec)
    assert not check.quote_found("If the `/.well-known` requ", spec)
    assert not check.quote_found("", spec)


def test_duplicate_keys_are_found_with_their_path(tmp_path: Path) -> None:
    parsed = check.parse_json(b'{"a": {"b": 1, "b": 2}, "c": [{"d": 1, "d": 1}]}')
    assert list(check.duplicate_keys(parsed)) == [(("a",), "b"), (("c", 0), "d")]
    text = json.dumps(_document()).replace(
        '"requirement": "MUST"', '"requirement": "MUST", "requirement": "SHOULD"'
    )
    assert _check_text(tmp_path, text) == [
        "vectors.json: tooling::base: $.vectors[0]: duplicate key 'requirement'"
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"format_version": 1, "vectors": [\xff]}', "not valid UTF-8"),
        ('\ufeff{"format_version": 1}'.encode(), "byte-order mark"),
        (b'{"format_version": NaN}', "NaN is not JSON"),
        (b'{"format_version": 1,}', "not valid JSON"),
    ],
)
def test_files_must_be_strict_utf8_json(tmp_path: Path, data: bytes, message: str) -> None:
    (problem,) = _check_text(tmp_path, data)
    assert problem.startswith("vectors.json: ")
    assert message in problem


def _problem_for(tmp_path: Path, vector: dict[str, Any]) -> str:
    (problem,) = _check_vector(tmp_path, vector)
    prefix = f"vectors.json: {vector['id']}: "
    assert problem.startswith(prefix)
    return problem[len(prefix) :]


def test_descriptions_state_facts(tmp_path: Path) -> None:
    vector = copy.deepcopy(BASE_VECTOR)
    vector["description"] = "Test that a name with a port resolves through its A record."
    assert "'should' or 'test that'" in _problem_for(tmp_path, vector)
    vector["description"] = "The resolver SHOULD use the A record of the name."
    assert "'should' or 'test that'" in _problem_for(tmp_path, vector)
    vector["description"] = "Shoulders of a name: its A record is used."  # not the word
    assert _check_vector(tmp_path, vector) == []


def test_interpretations_must_be_declared_and_exist(tmp_path: Path) -> None:
    vector = copy.deepcopy(BASE_VECTOR)
    vector["requirement"] = "INTERPRETATION"
    assert "needs an 'interpretation' id" in _problem_for(tmp_path, vector)
    vector["interpretation"] = "I-99"
    assert "I-99 is not in docs/interpretations.md" in _problem_for(tmp_path, vector)
    vector["interpretation"] = "I-01"
    assert _check_vector(tmp_path, vector) == []
    vector["requirement"] = "SHOULD"
    assert "has interpretation I-01 but level SHOULD" in _problem_for(tmp_path, vector)


def test_interpretation_ids_come_from_the_interpretations_page(tmp_path: Path) -> None:
    documented = check.interpretation_ids(ROOT / "docs")
    assert documented is not None
    assert {"I-01", "I-35"} <= documented[1]
    assert check.interpretation_ids(tmp_path) is None


def test_ids_are_unique_across_files(tmp_path: Path) -> None:
    for name in ("a.json", "b.json"):
        (tmp_path / name).write_text(json.dumps(_document()), encoding="utf-8")
    report = check.Checker(display_root=tmp_path).run([tmp_path])
    assert [str(p) for p in report.problems] == ["b.json: tooling::base: id is also used in a.json"]
    assert (report.files, report.vectors) == (2, 2)


def test_features_match_what_the_vector_does(tmp_path: Path) -> None:
    with_settings = copy.deepcopy(BASE_VECTOR)
    with_settings["settings"] = {"legacy_srv": False}
    assert "feature 'settings'" in _problem_for(tmp_path, with_settings)

    later = copy.deepcopy(BASE_VECTOR)
    later["steps"].append(copy.deepcopy(later["steps"][0]) | {"name": "later", "at": 60})
    assert "neither well-known-cache nor dns-cache" in _problem_for(tmp_path, later)
    later["features"] += ["dns-cache"]
    assert _check_vector(tmp_path, later) == []

    ipv6 = copy.deepcopy(BASE_VECTOR)
    ipv6["steps"][0]["resolve"] = "[2001:db8::1]:8448"
    ipv6["steps"][0]["expect"] = {"step": "1", "targets": [
        {"host": "2001:db8::1", "port": 8448, "host_header": "[2001:db8::1]:8448",
         "tls_server_name": "2001:db8::1", "sni": None}
    ]}  # fmt: skip
    del ipv6["steps"][0]["requests"]
    ipv6["features"] = []
    assert "feature 'ipv6'" in _problem_for(tmp_path, ipv6)
    # ipv6 means an IPv6 literal, not AAAA answers.
    aaaa = copy.deepcopy(BASE_VECTOR)
    aaaa["features"] += ["ipv6"]
    aaaa["world"]["dns"]["example.org."] = {"AAAA": {"records": ["2001:db8::1"]}}
    aaaa["steps"][0]["expect"]["targets"][0]["addresses"] = ["2001:db8::1"]
    aaaa["steps"][0]["requests"] = []
    assert "declares 'ipv6' without an IPv6 literal" in _problem_for(tmp_path, aaaa)

    addresses = copy.deepcopy(BASE_VECTOR)
    addresses["features"] = []
    assert "'address-level'" in _problem_for(tmp_path, addresses)
    del addresses["steps"][0]["expect"]["targets"][0]["addresses"]
    assert "'address-level'" in _problem_for(tmp_path, addresses)  # the A query is compared
    addresses["steps"][0]["requests"] = [{"excludes": [{"op": "dns", "qname": "example.org."}]}]
    assert _check_vector(tmp_path, addresses) == []

    legacy = copy.deepcopy(BASE_VECTOR)
    legacy["world"]["dns"]["_matrix._tcp.example.org."] = {"SRV": {"error": "SERVFAIL"}}
    assert "deprecated-matrix-srv" in _problem_for(tmp_path, legacy)
    legacy = copy.deepcopy(BASE_VECTOR)
    legacy["steps"][0]["requests"].append(
        {"excludes": [{"op": "dns", "qname": "_matrix._tcp.Example.org.", "qtype": "SRV"}]}
    )
    assert "deprecated-matrix-srv" in _problem_for(tmp_path, legacy)


def test_steps_and_the_clock(tmp_path: Path) -> None:
    vector = copy.deepcopy(BASE_VECTOR)
    vector["features"] += ["dns-cache"]
    vector["steps"][0]["at"] = 10
    vector["steps"].append(copy.deepcopy(vector["steps"][0]) | {"at": 5})
    problems = _check_vector(tmp_path, vector)
    assert problems == [
        "vectors.json: tooling::base: two steps are named 'first'",
        "vectors.json: tooling::base: step 'first': 'at' goes back from 10 to 5",
    ]


def test_target_hosts_exist_in_the_patched_world(tmp_path: Path) -> None:
    vector = copy.deepcopy(BASE_VECTOR)
    vector["steps"][0]["expect"]["targets"][0]["host"] = "exmaple.org"
    assert "target host 'exmaple.org' is not in world.dns" in _problem_for(tmp_path, vector)

    vector = copy.deepcopy(BASE_VECTOR)
    vector["features"] += ["dns-cache"]
    second = copy.deepcopy(vector["steps"][0]) | {"name": "gone", "at": 1}
    second["world_patch"] = {"dns": {"example.org.": None}}
    vector["steps"].append(second)
    assert _problem_for(tmp_path, vector) == (
        "step 'gone': target host 'example.org' is not in world.dns"
    )


def test_patched_worlds_stay_valid(tmp_path: Path) -> None:
    vector = copy.deepcopy(BASE_VECTOR)
    vector["steps"][0]["world_patch"] = {"dns": {"example.org.": {"A": {"error": "NXDOMAIN"}}}}
    assert _problem_for(tmp_path, vector).startswith(
        "step 'first': the patched world is invalid: "
        '$.dns["example.org."].A: matches none of the oneOf alternatives'
    )


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("192.0.2.7", True),
        ("198.51.100.255", True),
        ("203.0.113.1", True),
        ("2001:db8:ffff::1", True),
        ("::ffff:192.0.2.1", True),
        ("10.0.0.1", False),
        ("127.0.0.1", False),
        ("2001:db9::1", False),
        ("::1", False),
    ],
)
def test_documentation_addresses_only(tmp_path: Path, address: str, allowed: bool) -> None:
    vector = copy.deepcopy(BASE_VECTOR)
    family = "AAAA" if ":" in address else "A"
    if family == "AAAA":
        vector["features"] += ["ipv6"]  # an IPv6 literal in a delegation
    vector["world"]["https"] = {
        "https://example.org/.well-known/matrix/server": {
            "body": json.dumps({"m.server": f"[{address}]" if family == "AAAA" else address})
        }
    }
    problems = _check_vector(tmp_path, vector)
    assert (problems == []) is allowed, problems
    vector["features"] += ["ip-policy"]
    assert _check_vector(tmp_path, vector) == []


def test_check_py_passes_on_the_real_suite() -> None:
    run = subprocess.run(
        [sys.executable, "spec-vectors/tools/check.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = run.stdout.splitlines()
    assert lines
    assert lines[-1].startswith("check: ")
    assert " 0 problems" in lines[-1], run.stdout
    assert run.returncode == 0, run.stdout + run.stderr


def test_levels_say_what_the_spec_says(tmp_path: Path) -> None:
    both = copy.deepcopy(BASE_VECTOR)
    both["world"]["dns"]["example.org."]["AAAA"] = {"records": ["2001:db8::1"]}
    both["steps"][0]["expect"]["targets"][0]["addresses"] = ["2001:db8::1", "192.0.2.1"]
    del both["steps"][0]["requests"]
    assert "'an IP address'" in _problem_for(tmp_path, both)
    both["steps"][0]["expect"]["addresses_level"] = {
        "level": "INTERPRETATION",
        "interpretation": "I-23",
    }
    assert _check_vector(tmp_path, both) == []

    exact = copy.deepcopy(BASE_VECTOR)
    exact["steps"][0]["requests"] = [
        {"exact": [
            {"op": "dns", "qname": "example.org.", "qtype": "AAAA"},
            {"op": "dns", "qname": "example.org.", "qtype": "A"},
        ]}
    ]  # fmt: skip
    problems = _check_vector(tmp_path, exact)
    assert any("'AAAA or A'" in p for p in problems), problems
    assert any("INTERPRETATION I-48" in p for p in problems), problems  # DNS exactly
    exact["steps"][0]["requests"][0] |= {"level": "INTERPRETATION", "interpretation": "I-23"}
    assert _check_vector(tmp_path, exact) == []
    # The GETs alone may be exact at any level; the DNS queries exactly are I-48.
    gets = copy.deepcopy(BASE_VECTOR)
    gets["steps"][0]["requests"].append({"exact": [], "among": [{"op": "https_get"}]})
    assert _check_vector(tmp_path, gets) == []
    gets["steps"][0]["requests"].append({"exact": [], "among": [{"op": "dns"}]})
    assert "INTERPRETATION I-48" in _problem_for(tmp_path, gets)
    exact["steps"][0]["requests"][0]["interpretation"] = "I-99"
    assert "interpretation I-99 is not in" in _problem_for(tmp_path, exact)

    unfounded = copy.deepcopy(BASE_VECTOR)
    unfounded["spec"]["citations"][0]["quote"] = STEP2_QUOTE.split(" The target")[0]
    assert "no citation says 'must'" in _problem_for(tmp_path, unfounded)


def test_catalogue_ids_are_not_descriptions(tmp_path: Path) -> None:
    vector = copy.deepcopy(BASE_VECTOR)
    vector["description"] = "Scenario R-36: a redirect loop is detected."
    assert "private catalogue id" in _problem_for(tmp_path, vector)


def test_unknown_things_are_warnings(tmp_path: Path) -> None:
    vector = copy.deepcopy(BASE_VECTOR)
    vector["x-origin"] = "another suite"
    vector["features"] += ["some-later-feature"]
    vector["world"]["dns"]["example.org."]["TXT"] = {"records": ["hello"]}
    vector["world"]["https"] = {"http://example.org/x": {"status": 200}}
    file = tmp_path / "vectors.json"
    file.write_text(json.dumps(_document(vector)), encoding="utf-8")
    report = check.Checker(display_root=tmp_path).run([file])
    assert report.problems == []
    warnings = "\n".join(str(w) for w in report.warnings)
    for word in ("x-origin", "some-later-feature", "TXT", "http://example.org/x"):
        assert word in warnings


def test_format_1_files_are_checked_as_upgraded(tmp_path: Path) -> None:
    vector = copy.deepcopy(BASE_VECTOR)
    vector["steps"][0]["requests"] = [{"op": "dns", "qname": "example.org.", "qtype": "A"}]
    file = tmp_path / "vectors.json"
    file.write_text(json.dumps({"format_version": 1, "vectors": [vector]}), encoding="utf-8")
    report = check.Checker(display_root=tmp_path).run([file])
    assert report.problems == []
    assert any("v1_to_v2.py" in str(w) for w in report.warnings)


def test_check_py_checks_deviations_files_against_the_suite(tmp_path: Path) -> None:
    good = {"id": "example::step-2", "justification": "known"}
    by_label = {"interpretation": "I-48", "justification": "asks early"}

    def problems(*entries: Any) -> list[str]:
        file = tmp_path / "x.deviations.json"
        file.write_text(json.dumps({"deviations": list(entries)}), encoding="utf-8")
        report = check.Checker(display_root=tmp_path).run([ROOT / "spec-vectors" / "vectors", file])
        return [str(p) for p in report.problems]

    assert problems(good, by_label) == []
    assert problems({"id": "example::nope", "justification": "x"}) == [
        "x.deviations.json: deviations[0]: no vector has id 'example::nope'"
    ]
    assert problems(good, good) == [
        "x.deviations.json: deviations[1]: 'example::step-2' is listed twice"
    ]
    assert problems({**good, **by_label}) == [
        "x.deviations.json: deviations[0]: needs exactly one of 'id' and 'interpretation'"
    ]
    assert problems({"interpretation": "I-48", "justification": " "}) == [
        "x.deviations.json: deviations[0]: needs a non-empty 'justification'"
    ]
    assert problems({"interpretation": "48", "justification": "x"}) == [
        "x.deviations.json: deviations[0]: interpretation '48' is not an id like 'I-48'"
    ]
    assert problems({"interpretation": "I-99", "justification": "x"}) == [
        "x.deviations.json: deviations[0]: interpretation I-99 is not in docs/interpretations.md"
    ]
    # I-36 is a real interpretation that no vector assertion is labelled with.
    assert problems({"interpretation": "I-36", "justification": "x"}) == [
        "x.deviations.json: deviations[0]: no assertion of the vectors checked is labelled "
        "I-36: it excuses nothing"
    ]

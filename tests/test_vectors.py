"""Every spec-vector, one pytest case per vector; and the suite covers every step."""

from __future__ import annotations

import copy
import dataclasses
import json
import shlex
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from mxresolve import Step
from mxresolve._tools.cli import main
from mxresolve._tools.conformance.deviations import (
    Deviations,
    DeviationsError,
    apply_deviation,
    load_deviations,
)
from mxresolve._tools.conformance.harness import run_harness
from mxresolve._tools.conformance.judge import Failure, judge_step
from mxresolve._tools.conformance.report import render
from mxresolve._tools.vectors import (
    FEATURES,
    StepResult,
    Vector,
    VectorResult,
    load_vectors,
    run_vector,
)

VECTORS = load_vectors()


def test_the_suite_has_at_least_120_vectors() -> None:
    assert len(VECTORS) >= 120


def test_every_step_decides_some_vector() -> None:
    decided = {step["expect"].get("step") for vector in VECTORS for step in vector.steps}
    assert {s.value for s in Step} - {Step.WELL_KNOWN.value} <= decided
    # Step 3 never decides a success, but it is where well-known failures happen.
    assert any(c.get("step") == "3" for v in VECTORS for c in v.citations)


@pytest.mark.parametrize("vector", VECTORS, ids=[v.id for v in VECTORS])
def test_vector(vector: Vector) -> None:
    result = run_vector(vector)
    failures = [f"{s.name}: {f}" for s in result.steps for f in s.failures]
    assert not failures, "\n".join(failures)
    assert not [s.name for s in result.steps if s.alternative], "mxresolve takes the main reading"


def test_results_do_not_depend_on_the_srv_random_source() -> None:
    # any_order groups must make every vector seed-independent.
    for seed in range(1, 6):
        failing = [v.id for v in VECTORS if not run_vector(v, seed=seed).passed]
        assert not failing, f"seed {seed}: {failing}"


# --- format 2: narrowing, alternatives, endpoints, and the harness protocol --------------

BY_ID = {v.id: v for v in VECTORS}


def test_without_address_level_addresses_are_narrowed_not_skipped() -> None:
    without = FEATURES - {"address-level", "address-lookup"}
    results = [run_vector(v, features=without) for v in VECTORS]
    skipped = [r for r in results if r.verdict == "skip"]
    must = [r for r in results if r.vector.requirement == "MUST"]
    assert all(r.verdict != "skip" for r in must)
    assert all("address-lookup" in r.vector.features for r in skipped)
    # A resolver that returns no addresses and asks no A/AAAA passes once narrowed...
    vector = BY_ID["example::step-4"]
    step = vector.steps[0]
    observed = run_vector(vector).steps[0].observed
    host_level = {
        "outcome": {
            "targets": [
                {k: v for k, v in t.items() if k != "addresses"}
                for t in observed["outcome"]["targets"]
            ]
        },
        "step": "4",
        "requests": [r for r in observed["requests"] if r.get("qtype") not in ("A", "AAAA")],
    }
    assert not judge_step(step, host_level, vector.level, narrow=True).failures
    # ...and fails where addresses are compared.
    assert judge_step(step, host_level, vector.level, narrow=False).failures


def test_labels_name_the_interpretation_that_failed() -> None:
    vector = BY_ID["example::step-4"]
    observed = run_vector(vector).steps[0].observed
    first_only = {**observed, "outcome": {"targets": observed["outcome"]["targets"][:1]}}
    failures = judge_step(vector.steps[0], first_only, vector.level, narrow=False).failures
    assert [(f.level, f.interpretation) for f in failures] == [("INTERPRETATION", "I-22")]


def test_a_named_alternative_reading_passes_as_such() -> None:
    vector = BY_ID["step4::servfail-as-absent-then-step-6"]
    failing = {"outcome": {"error": "dns_failure"}, "step": "4", "requests": [
        {"op": "https_get", "url": "https://example.org/.well-known/matrix/server"},
        {"op": "dns", "qname": "_matrix-fed._tcp.example.org.", "qtype": "SRV"},
    ]}  # fmt: skip
    verdict = judge_step(vector.steps[0], failing, vector.level, narrow=False)
    assert verdict.failures == ()
    assert verdict.alternative == "srv-failure-fails"
    assert judge_step(
        vector.steps[0], {**failing, "step": "5"}, vector.level, narrow=False
    ).failures


@pytest.mark.parametrize("vid", [v.id for v in VECTORS if v.id.startswith("endpoints::")])
def test_endpoint_vectors_depend_on_their_endpoints(vid: str) -> None:
    vector = BY_ID[vid]
    assert vector.endpoints
    if vid.endswith("-valid"):  # a valid certificate changes nothing
        return
    without = dataclasses.replace(vector, endpoints={})
    assert not run_vector(without).passed


def test_the_harness_protocol_gives_the_in_process_results() -> None:
    command = [sys.executable, "-m", "mxresolve._tools.conformance.adapter"]
    results, implementation = run_harness(command, VECTORS)
    assert implementation["name"] == "mxresolve"
    verdicts = {r.vector.id: r.verdict for r in results}
    assert verdicts == {v.id: run_vector(v).verdict for v in VECTORS}
    assert set(verdicts.values()) == {"pass"}


def test_a_failing_adapter_is_reported_per_vector(tmp_path: Path) -> None:
    # An adapter that answers every resolution with the same wrong error.
    script = tmp_path / "adapter.py"
    script.write_text(
        "import json, sys\n"
        "for line in sys.stdin:\n"
        "    m = json.loads(line)\n"
        "    c = m['cmd']\n"
        "    if c == 'hello':\n"
        "        r = {'protocol': 1, 'implementation': {'name': 'x'}, 'features': []}\n"
        "    elif c == 'resolve':\n"
        "        r = {'result': {'error': 'deadline_exceeded'}}\n"
        "    elif c == 'quit':\n"
        "        break\n"
        "    else:\n"
        "        r = {'ok': True}\n"
        "    print(json.dumps(r), flush=True)\n"
    )
    chosen = [BY_ID["example::step-2"], BY_ID["well-known-cache::cached-until-max-age"]]
    results, _ = run_harness([sys.executable, str(script)], chosen)
    assert [r.verdict for r in results] == ["fail", "skip"]
    assert results[0].failure_level == "MUST"


def test_vectors_run_into_a_closed_pipe_ends_quietly() -> None:
    # `mxresolve vectors run --json | head -1` (megabytes): no BrokenPipeError traceback.
    run = subprocess.run(
        f"{shlex.quote(sys.executable)} -m mxresolve._tools.cli vectors run --json | head -1",
        shell=True,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.stdout.startswith("{")
    assert "Traceback" not in run.stderr, run.stderr
    assert "BrokenPipeError" not in run.stderr, run.stderr


def test_explain_takes_several_ids_and_shows_labels_world_and_citations(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["vectors", "run", "--explain", "example::step-4", "step1::ipv4-with-port"]) == 0
    out = capsys.readouterr().out
    assert "Vector example::step-4  [MUST]" in out
    assert "Interpretations of its steps and assertions: I-22, I-48" in out
    assert "RFC 2782, Usage rules:" in out
    assert "World at t=0" in out
    assert "Vector step1::ipv4-with-port" in out


def test_deviations_turn_expected_failures_into_deviations(tmp_path: Path) -> None:
    vector = BY_ID["example::step-2"]
    failing = dataclasses.replace(
        vector,
        steps=tuple({**s, "expect": {**s["expect"], "step": "6"}} for s in vector.steps),
    )
    path = tmp_path / "deviations.json"
    path.write_text(
        json.dumps({"deviations": [{"id": vector.id, "justification": "known and deliberate"}]})
    )
    deviations = load_deviations(path)
    result = apply_deviation(run_vector(failing), deviations)
    assert result.verdict == "deviation"
    assert result.to_json()["deviation"] == "known and deliberate"
    assert apply_deviation(run_vector(vector), deviations).verdict == "pass"  # stale entries show
    for bad in ({"deviations": [{"id": vector.id}]}, {"deviations": [{"id": 1}]}, {}):
        path.write_text(json.dumps(bad))
        with pytest.raises(DeviationsError):
            load_deviations(path)


def _failing(*failures: Failure) -> VectorResult:
    step = StepResult(name="resolve", decided_step="4", failures=failures, result=None, observed={})
    return VectorResult(vector=BY_ID["requests::well-known-then-srv-once"], steps=(step,))


def test_a_deviation_for_an_interpretation_excuses_only_its_assertions(tmp_path: Path) -> None:
    path = tmp_path / "deviations.json"
    path.write_text(
        json.dumps({"deviations": [{"interpretation": "I-48", "justification": "asks early"}]})
    )
    deviations = load_deviations(path)
    exact = Failure("INTERPRETATION", "I-48", "DNS queries differ")
    excused = apply_deviation(_failing(exact, exact), deviations)
    assert excused.verdict == "deviation"
    assert excused.to_json()["deviation"] == "I-48: asks early"
    # A MUST or SHOULD failure, or one at another I-NN, beside it: still a failure.
    for other in (
        Failure("MUST", None, "Host header differs"),
        Failure("SHOULD", None, "cached for 60 s"),
        Failure("INTERPRETATION", "I-25", "asked _matrix._tcp"),
    ):
        assert apply_deviation(_failing(exact, other), deviations).verdict == "fail"
        assert apply_deviation(_failing(other), deviations).verdict == "fail"
    both = Deviations(by_interpretation={"I-48": "asks early", "I-25": "asks legacy"})
    assert apply_deviation(_failing(exact, other), both).verdict == "deviation"
    for bad in (
        {"deviations": [{"interpretation": "I-48", "id": "example::step-2", "justification": "x"}]},
        {"deviations": [{"interpretation": "48", "justification": "x"}]},
        {"deviations": [{"interpretation": "I-48"}]},
        {"deviations": [{"interpretation": "I-48", "justification": "x"}] * 2},
    ):
        path.write_text(json.dumps(bad))
        with pytest.raises(DeviationsError):
            load_deviations(path)


def test_mxresolve_asking_early_differs_only_where_its_deviations_file_says() -> None:
    # The shipped file names I-48 alone: every other assertion, results included, passes.
    deviations = load_deviations(
        Path(__file__).parent.parent / "spec-vectors/adapters/mxresolve-ask-early.deviations.json"
    )
    assert set(deviations.by_interpretation) == {"I-48"}
    assert not deviations.by_id
    command = [sys.executable, "-m", "mxresolve._tools.conformance.adapter", "--ask-early"]
    results, _ = run_harness(command, VECTORS)
    verdicts = Counter(apply_deviation(r, deviations).verdict for r in results)
    assert verdicts["fail"] == 0, [r.vector.id for r in results if r.verdict == "fail"]
    assert verdicts["deviation"] > 100  # asking early shows in most exact request lists
    assert verdicts["pass"] + verdicts["deviation"] == len(VECTORS)


def test_the_conformance_report_tables_every_vector_per_implementation() -> None:
    chosen = [BY_ID["example::step-2"], BY_ID["step4::servfail-as-absent-then-step-6"]]
    ours = {
        "implementation": {"name": "mxresolve"},
        "results": [run_vector(v).to_json() for v in chosen],
    }
    other = copy.deepcopy(ours)
    other["implementation"] = {"name": "other", "version": "1"}
    other["results"][0] |= {"result": "fail", "failure_level": "MUST"}
    other["results"][0]["steps"][0]["failures"] = [
        {"level": "MUST", "interpretation": None, "message": "Host header differs"}
    ]
    other["results"][1] |= {"result": "alternative", "alternatives": ["srv-failure-fails"]}
    text = render([ours, other])
    assert "| mxresolve  |  | 2 | 0 | 0 (0 / 0 / 0) | 0 | 0 |" in text
    assert "| other 1 |  | 0 | 1 | 1 (1 / 0 / 0) | 0 | 0 |" in text
    assert "| `example::step-2` | MUST | pass | FAIL (MUST) |" in text
    assert "resolve: [MUST] Host header differs" in text
    assert "reading: srv-failure-fails" in text


def test_the_conformance_report_gives_each_justification_once() -> None:
    chosen = [BY_ID["example::step-2"], BY_ID["example::step-3.1"]]
    run = {"implementation": {"name": "early"}, "results": []}
    for vector in chosen:
        result = run_vector(vector).to_json()
        result |= {"result": "deviation", "deviation": "I-48: asks early"}
        result["steps"][0]["failures"] = [
            {"level": "INTERPRETATION", "interpretation": "I-48", "message": f"{vector.id} lists"}
        ]
        run["results"].append(result)
    text = render([run])
    assert text.count("asks early") == 1
    assert "1. I-48: asks early" in text
    assert (
        "| `example::step-2` | DEVIATION (I-48) | expected [1]: resolve: [I-48] example::step-2"
        in text
    )
    assert (
        "| `example::step-3.1` | DEVIATION (I-48) | expected [1]: resolve: [I-48] example::step-3.1"
        in text
    )

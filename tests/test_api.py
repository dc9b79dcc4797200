"""The public surface with no module file of its own: FakeWorld, the CLI, the drivers' inputs."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from mxresolve import (
    AsyncResolver,
    DnsStatus,
    FakeWorld,
    InvalidServerName,
    RecordType,
    Resolver,
    WorldError,
)
from mxresolve._tools.cli import main

# --- FakeWorld ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("world", "message"),
    [
        ({"dns": {"example.org": {}}}, "end with '.'"),
        ({"dns": {"example.org.": {"MX": {"records": []}}}}, "unknown record type"),
        ({"dns": {"example.org.": {"A": {"error": "BOGUS"}}}}, "unknown error"),
        ({"dns": {"example.org.": {"A": {}}}}, "'records' list"),
        ({"https": {"https://x/": {"failure": "exploded"}}}, "unknown failure"),
        ({"ftp": {}}, "unknown world keys"),
    ],
)
def test_fake_world_rejects_malformed_worlds(world: dict[str, object], message: str) -> None:
    with pytest.raises(WorldError, match=message):
        FakeWorld(world)


def test_fake_world_follows_cname_chains_with_a_bound() -> None:
    chain = {f"n{i}.example.": {"CNAME": {"records": [f"n{i + 1}.example."]}} for i in range(12)}
    world = FakeWorld({"dns": chain})
    assert world.dns("n0.example.", RecordType.A).status is DnsStatus.SERVFAIL
    short = FakeWorld({"dns": {**chain, "n3.example.": {"A": {"records": ["192.0.2.1"]}}}})
    answer = short.dns("n0.example.", RecordType.A)
    assert answer.records == ("192.0.2.1",)
    assert answer.aliases == ("n1.example.", "n2.example.", "n3.example.")


# --- the vectors command -----------------------------------------------------------------


def test_vectors_run_prints_a_line_per_vector_and_a_total(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["vectors", "run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert " 0 failed, " in lines[-1]
    assert all(line.startswith("PASS  ") for line in lines[:-1])


def test_vectors_run_json_and_explain(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["vectors", "run", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["failed"] == 0
    assert document["passed"] == len(document["results"])
    assert main(["vectors", "run", "--explain", "example::step-3.3"]) == 0
    out = capsys.readouterr().out
    assert "Step 3.3:" in out
    assert "_matrix-fed._tcp.matrix.example.net." in out
    assert "Result: as expected" in out


def test_vectors_run_fails_on_a_failing_vector(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = {
        "format_version": 1,
        "vectors": [
            {
                "id": "local::wrong-expectation",
                "description": "A vector whose expectation is wrong on purpose.",
                "spec": {
                    "since": None,
                    "until": None,
                    "cited_version": "v1.19",
                    "citations": [{"section": "x", "step": "1", "quote": "q"}],
                },
                "requirement": "MUST",
                "features": [],
                "world": {},
                "steps": [{"resolve": "192.0.2.1", "expect": {"step": "2", "error": "no_address"}}],
            }
        ],
    }
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))
    assert main(["vectors", "run", str(path)]) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[-1].startswith("0 passed, 0 alternative, 1 failed")
    assert "FAIL  local::wrong-expectation" in out
    assert main(["vectors", "run", str(tmp_path / "missing.json")]) == 2
    assert main(["vectors", "run", "--explain", "no::such-id"]) == 2


# --- the drivers' input checks -------------------------------------------------------------


@pytest.mark.parametrize("bad", [["example.org"], None, 42, b"example.org", "bad name", ""])
def test_resolvers_reject_bad_names_with_a_typed_error(bad: object) -> None:
    # Port 9 (discard): the name must be refused before anything is sent.
    resolver = Resolver(nameservers=["127.0.0.1:9"])
    with pytest.raises(InvalidServerName):
        resolver.resolve(bad)  # type: ignore[arg-type]

    async def run() -> None:
        await AsyncResolver(nameservers=["127.0.0.1:9"]).resolve(bad)  # type: ignore[arg-type]

    with pytest.raises(InvalidServerName):
        asyncio.run(run())


def test_the_type_check_and_tests_install_every_extra() -> None:
    # mypy --strict must be clean with every extra installed; a new extra left out of the
    # noxfile would go unchecked (as the [serve] extra once did).
    import re
    from pathlib import Path

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    root = Path(__file__).resolve().parent.parent
    extras = set(
        tomllib.loads((root / "pyproject.toml").read_text("utf-8"))["project"][
            "optional-dependencies"
        ]
    ) - {"test"}
    found = re.search(r'^EXTRAS = "([^"]+)"', (root / "noxfile.py").read_text("utf-8"), re.M)
    assert found is not None
    assert set(found.group(1).split(",")) == extras


def test_vectors_run_counts_what_a_vector_ignored_and_lists_it_on_request(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The bundled demo of ignored unknowns must not flood every run's stderr.
    assert main(["vectors", "run"]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "mxresolve: warning: vector 'format::unknown-fields-ignored' ignored 5 things it "
        "does not know (--warnings lists them)"
    ]
    assert main(["vectors", "run", "--warnings"]) == 0
    listed = capsys.readouterr().err.splitlines()
    assert len(listed) == 5
    assert all("format::unknown-fields-ignored" in line for line in listed)
    assert any("TXT record" in line for line in listed)

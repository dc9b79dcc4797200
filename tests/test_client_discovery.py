"""Client discovery (client-server API v1.19, "Server Discovery"): the vectors in
spec-vectors/client-discovery/ through both drivers, and the machine's protocol."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from mxresolve import (
    NEED_RESULTS,
    ClientDiscovery,
    ClientDiscoveryMachine,
    ClientOutcome,
    HttpsFailure,
    HttpsFailureKind,
    HttpsGet,
    HttpsResponse,
    InvalidServerName,
    InvalidSettings,
    LocalProtocolError,
    async_discover_client,
    discover_client,
)

ROOT = Path(__file__).resolve().parent.parent
VECTOR_DIR = ROOT / "spec-vectors" / "client-discovery"


def _load() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for path in sorted(VECTOR_DIR.glob("*.json")):
        document = json.loads(path.read_text("utf-8"))
        assert document["format"] == "mxresolve-client-discovery/1", path
        out.extend(document["vectors"])
    return out


VECTORS = _load()


def _outcome(entry: dict[str, Any]) -> HttpsResponse | HttpsFailure:
    if "failure" in entry:
        return HttpsFailure(kind=HttpsFailureKind(entry["failure"]), message="vector")
    headers = tuple((k, v) for k, v in entry.get("headers", []))
    if "json" in entry:
        body = json.dumps(entry["json"]).encode()
        headers += (("Content-Type", "application/json"),)
    else:
        body = entry.get("body", "").encode()
    return HttpsResponse(status=entry["status"], headers=headers, body=body)


def _options(vector: dict[str, Any]) -> dict[str, Any]:
    options = vector.get("options", {})
    return {"no_response": ClientOutcome(options["no_response"])} if options else {}


class _World:
    """The vector's URLs as an HTTPS transport (sync and async), recording the requests."""

    def __init__(self, http: dict[str, Any]) -> None:
        self.http = http
        self.requests: list[str] = []

    def fetch(self, request: HttpsGet, timeout: float) -> HttpsResponse | HttpsFailure:
        self.requests.append(request.url)
        if request.url not in self.http:
            raise AssertionError(f"unexpected request for {request.url}")
        return _outcome(self.http[request.url])


class _AsyncWorld(_World):
    async def fetch(self, request: HttpsGet, timeout: float) -> HttpsResponse | HttpsFailure:  # type: ignore[override]
        await asyncio.sleep(0)
        return super().fetch(request, timeout)


def _check(vector: dict[str, Any], result: ClientDiscovery, world: _World) -> None:
    expect = vector["expect"]
    assert result.outcome.value == expect["outcome"], result.reason
    assert result.step == expect["step"], result.reason
    assert result.homeserver_base_url == expect["homeserver_base_url"]
    assert result.identity_server_base_url == expect["identity_server_base_url"]
    if "requests" in expect:
        assert world.requests == expect["requests"]
    if "versions" in expect:
        assert list(result.versions) == expect["versions"]
    if "support_ok" in expect:
        assert (result.support_error is None) == expect["support_ok"], result.support_error
    # Every failed request shows up as an error: a vector's unexpected URL fails loudly.
    assert not any("transport raised" in e.message for e in result.trace), result.trace


@pytest.mark.parametrize("vector", VECTORS, ids=[v["id"] for v in VECTORS])
def test_vector_sync(vector: dict[str, Any]) -> None:
    world = _World(vector["http"])
    result = discover_client(
        vector["input"], https=world, support=vector["support"], **_options(vector)
    )
    _check(vector, result, world)


@pytest.mark.parametrize("vector", VECTORS, ids=[v["id"] for v in VECTORS])
def test_vector_async(vector: dict[str, Any]) -> None:
    world = _AsyncWorld(vector["http"])
    result = asyncio.run(
        async_discover_client(
            vector["input"], https=world, support=vector["support"], **_options(vector)
        )
    )
    _check(vector, result, world)


def test_every_outcome_and_step_has_a_vector() -> None:
    outcomes = {v["expect"]["outcome"] for v in VECTORS}
    assert outcomes == {o.value for o in ClientOutcome}
    steps = {v["expect"]["step"] for v in VECTORS}
    assert {"3", "3a", "3b", "3c", "3d", "3e", "3f"} <= steps


def test_vector_ids_are_unique() -> None:
    ids = [v["id"] for v in VECTORS]
    assert len(ids) == len(set(ids))


# --- the machine's protocol, for sans-I/O users --------------------------------------------


def test_machine_hands_out_the_step3_batch_then_waits() -> None:
    machine = ClientDiscoveryMachine("@bot:example.org", support=True)
    first, second = machine.next_event(), machine.next_event()
    assert isinstance(first, HttpsGet)
    assert isinstance(second, HttpsGet)
    assert (first.url, second.url) == (
        "https://example.org/.well-known/matrix/client",
        "https://example.org/.well-known/matrix/support",
    )
    assert machine.next_event() is NEED_RESULTS
    machine.receive(second, HttpsResponse(status=404))
    assert machine.next_event() is NEED_RESULTS
    machine.receive(first, HttpsResponse(status=404))
    result = machine.next_event()
    assert isinstance(result, ClientDiscovery)
    assert result.outcome is ClientOutcome.IGNORE
    assert result.support is None
    assert result.support_error is None


def test_machine_refuses_an_outcome_it_did_not_ask_for() -> None:
    machine = ClientDiscoveryMachine("example.org")
    request = machine.next_event()
    assert isinstance(request, HttpsGet)
    other = HttpsGet(
        url="https://x.org/",
        host="x.org",
        port=443,
        target="/",
        host_header="x.org",
        max_body_bytes=10,
    )
    with pytest.raises(LocalProtocolError):
        machine.receive(other, HttpsResponse(status=404))
    machine.receive(request, HttpsResponse(status=404))
    with pytest.raises(LocalProtocolError):
        machine.receive(request, HttpsResponse(status=404))


@pytest.mark.parametrize("bad", ["", "@bot", "@:example.org", "exa mple.org", "@bot:ex..org"])
def test_bad_input_is_a_typed_error(bad: str) -> None:
    with pytest.raises(InvalidServerName):
        ClientDiscoveryMachine(bad)


def test_no_response_accepts_only_prompt_or_ignore() -> None:
    with pytest.raises(ValueError, match="no_response"):
        ClientDiscoveryMachine("example.org", no_response=ClientOutcome.SUCCESS)


def test_bad_times_are_a_typed_error() -> None:
    with pytest.raises(InvalidSettings):
        discover_client("example.org", request_timeout=0)


def test_a_raising_transport_ends_discovery_cleanly() -> None:
    world = _World({})  # every request raises
    result = discover_client("example.org", https=world)
    assert result.outcome is ClientOutcome.FAIL_PROMPT
    assert "transport raised" in result.reason


def test_result_to_json_is_json() -> None:
    vector = next(v for v in VECTORS if v["id"] == "support-valid")
    result = discover_client(vector["input"], https=_World(vector["http"]), support=True)
    data = json.loads(json.dumps(result.to_json()))
    assert data["outcome"] == "IGNORE"
    assert data["support"]["contacts"] == [
        {"role": "m.role.admin", "matrix_id": "@admin:example.org"}
    ]

"""The adapters' shared sans-I/O decisions (mxresolve.integrations._federation), no network.

The adapters themselves run against real servers in tests/integration/test_requests.py.
"""

from __future__ import annotations

import ast
import re
import time
from pathlib import Path

import pytest

from mxresolve import FakeWorld, IpPolicy, Resolution, Settings, Target
from mxresolve.integrations._federation import (
    Attempts,
    Deadline,
    FederationConnectFailed,
    InvalidFederationURL,
    KeyedPools,
    PoolKey,
    server_name_from_url,
)

ROOT = Path(__file__).resolve().parent.parent


def _target(host: str, tls: str, addresses: tuple[str, ...] = ("203.0.113.7",)) -> Target:
    return Target(
        host=host,
        port=8448,
        addresses=addresses,
        host_header=tls,
        tls_server_name=tls,
        sni=None if tls[0].isdigit() else tls,
    )


def _resolution(*targets: Target) -> Resolution:
    world = FakeWorld(
        {
            "dns": {"example.org.": {"A": {"records": ["203.0.113.7"]}}},
            "https": {"https://example.org/.well-known/matrix/server": {"status": 404}},
        }
    )
    result = world.resolve("example.org", settings=Settings(ip_policy=IpPolicy.allow_all()))
    assert isinstance(result, Resolution)
    return result if not targets else _with_targets(result, targets)


def _with_targets(resolution: Resolution, targets: tuple[Target, ...]) -> Resolution:
    import dataclasses

    return dataclasses.replace(resolution, targets=targets)


# --- the URL -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("authority", "expected"),
    [
        ("example.org", "example.org"),
        ("example.org:8448", "example.org:8448"),
        ("[::1]:8448", "[::1]:8448"),
    ],
)
def test_the_server_name_is_the_urls_authority(authority: str, expected: str) -> None:
    assert server_name_from_url(f"matrix-federation://{authority}/x", authority).text == expected


@pytest.mark.parametrize(
    ("authority", "reason"),
    [
        ("", "no server name"),
        ("exa_mple.org", "'_' is not allowed"),
        ("example.org:0", "out of range"),
        ("user@example.org", "user info"),
    ],
)
def test_a_bad_authority_is_a_typed_error_saying_why(authority: str, reason: str) -> None:
    url = f"matrix-federation://{authority}/x"
    with pytest.raises(InvalidFederationURL) as info:
        server_name_from_url(url, authority)
    assert reason in str(info.value)
    assert info.value.url == url
    assert isinstance(info.value, ValueError)


# --- the pool key --------------------------------------------------------------------------


def test_one_address_two_certificate_names_are_two_pool_keys() -> None:
    a = _target("t.example", "a.example")
    b = _target("t.example", "b.example")
    assert PoolKey.for_target(a) != PoolKey.for_target(b)
    assert PoolKey.for_target(a) == PoolKey.for_target(_target("other.example", "a.example"))


def test_the_pool_key_ignores_address_order() -> None:
    one = _target("t.example", "a.example", ("::1", "127.0.0.1"))
    two = _target("t.example", "a.example", ("127.0.0.1", "::1"))
    assert PoolKey.for_target(one) == PoolKey.for_target(two)


def test_keyed_pools_evict_the_least_recently_used() -> None:
    pools: KeyedPools[str] = KeyedPools(limit=2)
    keys = [PoolKey.for_target(_target("t", f"n{i}.example")) for i in range(3)]
    assert pools.get(keys[0], lambda: "p0") == ("p0", [])
    assert pools.get(keys[1], lambda: "p1") == ("p1", [])
    assert pools.get(keys[0], lambda: "never") == ("p0", [])  # used: now the newest
    assert pools.get(keys[2], lambda: "p2") == ("p2", ["p1"])
    assert pools.keys() == [keys[0], keys[2]]
    assert pools.drain() == ["p0", "p2"]
    assert len(pools) == 0


# --- failover ------------------------------------------------------------------------------


def test_a_failure_before_sending_always_moves_on() -> None:
    first, second = _target("a", "a.example"), _target("b", "b.example")
    attempts = Attempts(_resolution(first, second), "POST")
    attempts.failed(first, "connection_refused: nope", request_sent=False)
    assert attempts.may_continue()


@pytest.mark.parametrize(
    ("method", "allowed", "replayable", "moves_on"),
    [
        ("POST", True, True, False),  # not idempotent
        ("PUT", False, True, False),  # idempotent, not allowed
        ("PUT", True, False, False),  # idempotent, allowed, body gone
        ("PUT", True, True, True),
        ("get", True, True, True),
    ],
)
def test_a_failure_after_sending_moves_on_only_when_safe_and_allowed(
    method: str, allowed: bool, replayable: bool, moves_on: bool
) -> None:
    first = _target("a", "a.example")
    attempts = Attempts(_resolution(first), method, allowed, replayable)
    attempts.failed(first, "ReadError: reset", request_sent=True)
    assert attempts.may_continue() is moves_on


def test_the_error_lists_every_attempt_in_order() -> None:
    first, second = _target("a", "a.example"), _target("b", "203.0.113.9")
    attempts = Attempts(_resolution(first, second), "GET")
    attempts.failed(first, "connection_refused: nope", request_sent=False)
    attempts.failed(second, "certificate_invalid: wrong name", request_sent=False)
    error = attempts.error()
    assert isinstance(error, FederationConnectFailed)
    assert [a.target for a in error.attempts] == [first, second]
    text = str(error)
    assert text.index("a:8448 (a.example): connection_refused") < text.index(
        "b:8448 (203.0.113.9): certificate_invalid"
    )


# --- deadlines -----------------------------------------------------------------------------


def test_a_deadline_cuts_timeouts_and_never_to_zero() -> None:
    assert Deadline(None).clamp(5.0) == 5.0
    assert Deadline(None).left() is None
    deadline = Deadline(0.5)
    cut = deadline.clamp(5.0)
    assert cut is not None
    assert 0.001 <= cut <= 0.5
    assert deadline.clamp(None) is not None
    gone = Deadline(0.0)
    time.sleep(0.001)
    assert gone.expired()
    assert gone.clamp(5.0) == 0.001


# --- docs ----------------------------------------------------------------------------------


def test_every_python_example_in_docs_requests_parses() -> None:
    text = (ROOT / "docs/requests.md").read_text("utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 4  # one per client, and signing
    for block in blocks:
        ast.parse(block)

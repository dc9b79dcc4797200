"""The differential comparison on hand-made inputs: no servers, no Synapse."""

from __future__ import annotations

from typing import Any

import pytest

from mxresolve import (
    DnsQuery,
    DnsResult,
    DnsStatus,
    FailureKind,
    RecordType,
    Resolution,
    ResolutionFailure,
    SrvRecord,
    Step,
    Target,
    TraceEvent,
    TraceKind,
)

from .compare import MxSide, MxTarget, SynapseSide, compare, endpoint, mx_side


def _mx(*targets: MxTarget, step: str = "6") -> MxSide:
    return MxSide(step=step, targets=targets)


def _target(
    *endpoints: tuple[str, int],
    host: str = "example.test",
    tls: str | None = None,
    sni: str | None = "",
    prio: int | None = None,
) -> MxTarget:
    tls = tls if tls is not None else host
    return MxTarget(
        endpoints=tuple(endpoint(ip, port) for ip, port in endpoints),
        host_header=host,
        tls_server_name=tls,
        sni=tls if sni == "" else sni,
        srv_priority=prio,
    )


def _syn(
    *dialled: tuple[str, int],
    host: str | None = "example.test",
    tls: str | None = "example.test",
    sni: str | None = "example.test",
    error: str | None = None,
    status: int | None = 200,
) -> SynapseSide:
    return SynapseSide(
        dialled=tuple(endpoint(ip, port) for ip, port in dialled),
        host_header=host,
        tls_name=tls,
        sni=sni,
        error=error,
        response_status=status,
    )


FAILED = MxSide(step="6", error="no_address: nx.test has no A or AAAA records")
SYN_FAILED = _syn(host="nx.test", tls="nx.test", sni=None, error="DNSLookupError: …", status=None)


def test_agree() -> None:
    result = compare(_mx(_target(("192.0.2.1", 8448))), _syn(("192.0.2.1", 8448)))
    assert result.verdict == "agree"
    assert result.aspects == ()


def test_differ_on_port() -> None:
    result = compare(_mx(_target(("192.0.2.1", 8448))), _syn(("192.0.2.1", 8443)))
    assert result.verdict == "differ"
    assert result.aspects == ("first endpoint", "endpoints")
    assert "192.0.2.1:8443" in result.details[0]


def test_differ_on_host_header() -> None:
    mx = _mx(_target(("192.0.2.1", 8443), host="example.test:8443", tls="example.test"), step="2")
    syn = _syn(("192.0.2.1", 8443), host="example.test")
    result = compare(mx, syn)
    assert result.verdict == "differ"
    assert result.aspects == ("Host header",)
    assert "'example.test:8443'" in result.details[0]


def test_differ_on_tls_name_and_sni() -> None:
    mx = _mx(_target(("192.0.2.1", 8448), host="a.test"))
    syn = _syn(("192.0.2.1", 8448), host="a.test", tls="b.test", sni="b.test")
    assert compare(mx, syn).aspects == ("TLS name", "SNI")


def test_both_fail_agree() -> None:
    result = compare(FAILED, SYN_FAILED)
    assert result.verdict == "agree"
    assert "both fail" in result.details[0]


def test_only_synapse_fails() -> None:
    result = compare(_mx(_target(("192.0.2.1", 8448))), SYN_FAILED)
    assert result.verdict == "differ"
    assert result.aspects == ("outcome",)
    assert "Synapse fails" in result.details[0]


def test_only_mxresolve_fails() -> None:
    result = compare(FAILED, _syn(("192.0.2.9", 8448), error="ConnectionRefusedError: …"))
    assert result.verdict == "differ"
    assert result.aspects == ("outcome",)
    assert "192.0.2.9:8448" in result.details[0]


def test_equal_priority_srv_group_in_any_order() -> None:
    a = _target(("192.0.2.1", 8448), prio=10)
    b = _target(("192.0.2.2", 8443), prio=10)
    c = _target(("192.0.2.3", 8448), prio=20)
    mx = _mx(a, b, c, step="4")
    assert compare(mx, _syn(("192.0.2.2", 8443))).verdict == "agree"
    assert compare(mx, _syn(("192.0.2.2", 8443), ("192.0.2.1", 8448))).verdict == "agree"
    # Priority 20 before priority 10: first endpoint and order both wrong.
    late = compare(mx, _syn(("192.0.2.3", 8448), ("192.0.2.1", 8448)))
    assert late.aspects == ("first endpoint", "endpoints")


def test_different_priorities_are_ordered() -> None:
    mx = _mx(_target(("192.0.2.1", 8448), prio=10), _target(("192.0.2.2", 8448), prio=20))
    assert compare(mx, _syn(("192.0.2.2", 8448))).aspects == ("first endpoint",)


def test_first_address_of_a_target_must_come_first() -> None:
    mx = _mx(_target(("::1", 8448), ("192.0.2.1", 8448)))
    assert compare(mx, _syn(("::1", 8448))).verdict == "agree"
    assert compare(mx, _syn(("192.0.2.1", 8448))).aspects == ("first endpoint",)


def test_sni_compared_only_when_a_handshake_was_seen() -> None:
    mx = _mx(_target(("192.0.2.1", 8448)))
    refused = _syn(("192.0.2.1", 8448), sni=None, error="ConnectionRefusedError: …", status=None)
    assert compare(mx, refused).verdict == "agree"
    bad_cert = _syn(
        ("192.0.2.1", 8448), sni=None, error="ResponseNeverReceived([VerificationError: …])"
    )
    assert compare(mx, bad_cert).aspects == ("SNI",)


def test_ip_literal_sends_no_sni() -> None:
    mx = _mx(_target(("::1", 8448), host="[::1]", tls="::1", sni=None), step="1")
    syn = _syn(("0:0::1", 8448), host="[::1]", tls="::1", sni=None)  # non-canonical on purpose
    assert compare(mx, syn).verdict == "agree"


def test_synapse_side_from_driver_output() -> None:
    result: dict[str, Any] = {
        "name": "wk-ipv6.mxtest",
        "dialled": [["0::1", 8448]],
        "host_header": "[::1]",
        "tls_name": "::1",
        "sni": None,
        "well_known": "[::1]",
        "error": None,
        "response": {"status": 200, "body": "{}"},
    }
    syn = SynapseSide.from_driver(result)
    assert syn.dialled == (("::1", 8448),)
    assert syn.resolved
    assert syn.tls_observed
    assert syn.well_known == "[::1]"
    failed = SynapseSide.from_driver({"dialled": [], "error": "timeout after 10 s"})
    assert not failed.resolved
    assert not failed.tls_observed


def _srv_event(step: Step, *records: SrvRecord) -> TraceEvent:
    return TraceEvent(
        step=step,
        kind=TraceKind.OUTCOME,
        message="SRV",
        request=DnsQuery(qname="_matrix-fed._tcp.example.test.", rdtype=RecordType.SRV),
        outcome=DnsResult(status=DnsStatus.NOERROR, records=records, ttl=300),
    )


def _resolution_target(host: str, port: int, address: str) -> Target:
    return Target(
        host=host,
        port=port,
        addresses=(address,),
        host_header="example.test",
        tls_server_name="example.test",
        sni="example.test",
    )


def test_mx_side_takes_srv_priorities_from_the_trace() -> None:
    resolution = Resolution(
        server_name="example.test",
        step=Step.SRV,
        targets=(
            _resolution_target("b.example.test", 8443, "192.0.2.2"),
            _resolution_target("a.example.test", 8448, "192.0.2.1"),
            _resolution_target("c.example.test", 8448, "192.0.2.3"),
        ),
        trace=(
            _srv_event(
                Step.SRV,
                SrvRecord(priority=10, weight=60, port=8448, target="a.example.test."),
                SrvRecord(priority=10, weight=40, port=8443, target="b.example.test."),
                SrvRecord(priority=20, weight=0, port=8448, target="c.example.test."),
            ),
        ),
        expires_at=0.0,
    )
    mx = mx_side(resolution)
    assert mx.ok
    assert [t.srv_priority for t in mx.targets] == [10, 10, 20]
    assert [len(g) for g in mx.groups()] == [2, 1]
    assert compare(mx, _syn(("192.0.2.1", 8448))).verdict == "agree"


@pytest.mark.parametrize("step", [None, Step.ADDRESS])
def test_mx_side_of_a_failure(step: Step | None) -> None:
    failure = ResolutionFailure(
        server_name="nx.test",
        step=step,
        kind=FailureKind.NO_ADDRESS,
        message="nx.test has no A or AAAA records",
        trace=(),
    )
    mx = mx_side(failure)
    assert not mx.ok
    assert mx.error == "no_address: nx.test has no A or AAAA records"
    assert mx.step == (None if step is None else "6")

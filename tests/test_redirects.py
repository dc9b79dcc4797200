"""Each redirect hop is a request of its own, to the new URL's authority (I-13, I-32)."""

from __future__ import annotations

from mxresolve import HttpsGet, HttpsResponse, ResolutionMachine, Settings
from mxresolve._core.wellknown import redirect_request, well_known_request
from one_by_one import ONE_BY_ONE


def test_redirect_hop_host_header_is_the_new_authority() -> None:
    first = well_known_request("example.org", 51200)
    assert first.host_header == "example.org"
    hop = redirect_request(first, "https://www.example.org:8443/.well-known/matrix/server")
    assert hop.host == "www.example.org"
    assert hop.port == 8443
    assert hop.host_header == "www.example.org:8443"
    same_host = redirect_request(hop, "/elsewhere?x=1")
    assert same_host.url == "https://www.example.org:8443/elsewhere?x=1"
    assert same_host.host_header == "www.example.org:8443"
    assert same_host.target == "/elsewhere?x=1"


def test_the_machine_asks_for_each_hop_with_its_own_host() -> None:
    machine = ResolutionMachine(
        "example.org", now=0.0, random=lambda: 0.0, settings=Settings(**ONE_BY_ONE, deadline=5.0)
    )
    first = machine.next_event()
    assert isinstance(first, HttpsGet)
    machine.receive(
        first,
        HttpsResponse(status=302, headers=(("Location", "https://m.example.net/wk"),)),
        now=0.0,
    )
    second = machine.next_event()
    assert isinstance(second, HttpsGet)
    assert (second.host, second.port, second.host_header) == ("m.example.net", 443, "m.example.net")
    assert second.url == "https://m.example.net/wk"

"""The well-known document: which bodies are valid (I-10), which redirects are followed (I-13)."""

from __future__ import annotations

import json

import pytest

from mxresolve import HostKind, HttpsGet, parse_server_name
from mxresolve._core.wellknown import (
    WELL_KNOWN_PATH,
    InvalidWellKnown,
    RedirectRefused,
    parse_well_known_body,
    redirect_request,
    well_known_request,
)

FIRST = well_known_request("example.org", 51200)


def body(document: object) -> bytes:
    return json.dumps(document).encode()


# --- the first request ------------------------------------------------------------------


def test_the_first_request_is_https_on_443_to_the_hostname() -> None:
    assert well_known_request("example.org", 51200) == HttpsGet(
        url="https://example.org/.well-known/matrix/server",
        host="example.org",
        port=443,
        target=WELL_KNOWN_PATH,
        host_header="example.org",
        max_body_bytes=51200,
    )


# --- parse_well_known_body -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "text", "kind", "port"),
    [
        (body({"m.server": "matrix.example.org"}), "matrix.example.org", HostKind.DNS, None),
        (body({"m.server": "matrix.example.org:443"}), "matrix.example.org:443", HostKind.DNS, 443),
        (body({"m.server": "192.0.2.1:8448"}), "192.0.2.1:8448", HostKind.IPV4, 8448),
        (body({"m.server": "[2001:db8::1]"}), "[2001:db8::1]", HostKind.IPV6, None),
        # Extra properties are allowed by the schema.
        (body({"m.server": "a.example", "x.other": [1, 2]}), "a.example", HostKind.DNS, None),
        # Whitespace and a UTF-8 BOM-free UTF-16 body are still JSON.
        (b'  {"m.server":"a.example"}\n', "a.example", HostKind.DNS, None),
        ('{"m.server":"a.example"}'.encode("utf-16"), "a.example", HostKind.DNS, None),
        # Duplicate keys: the last one wins, as in every JSON library that allows them.
        (b'{"m.server":"x:0","m.server":"a.example"}', "a.example", HostKind.DNS, None),
    ],
)
def test_a_valid_body_gives_the_delegated_server_name(
    raw: bytes, text: str, kind: HostKind, port: int | None
) -> None:
    delegated = parse_well_known_body(raw)
    assert delegated == parse_server_name(text)
    assert (delegated.kind, delegated.port) == (kind, port)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "the body is not JSON (JSONDecodeError)"),
        (b"<html>Not Found</html>", "the body is not JSON"),
        (b'{"m.server": "a.example"', "the body is not JSON"),
        (b"\xff\xfe\xfa", "the body is not JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "the body is not JSON (RecursionError)"),
        (b"[]", "the body is a JSON array, not an object"),
        (b'"a.example"', "the body is a JSON string, not an object"),
        (b"42", "the body is a JSON number, not an object"),
        (b"null", "the body is a JSON null, not an object"),
        (b"true", "the body is a JSON boolean, not an object"),
        (b"{}", "the JSON object has no m.server property"),
        (body({"m_server": "a.example"}), "no m.server property"),
        (body({"m": {"server": "a.example"}}), "no m.server property"),
        (body({"m.server": None}), "m.server is a JSON null, not a string"),
        (body({"m.server": 8448}), "m.server is a JSON number, not a string"),
        (body({"m.server": 1.5}), "m.server is a JSON number, not a string"),
        (body({"m.server": False}), "m.server is a JSON boolean, not a string"),
        (body({"m.server": ["a.example"]}), "m.server is a JSON array, not a string"),
        (body({"m.server": {"host": "a.example"}}), "m.server is a JSON object, not a string"),
        (body({"m.server": ""}), "m.server '' is not a valid server name: it is empty"),
        (
            body({"m.server": "https://a.example"}),
            "m.server 'https://a.example' is not a valid server name: "
            "'/' is not allowed in the port at offset 6",
        ),
        (
            body({"m.server": "a.example:0"}),
            "is not a valid server name: the port 0 is out of range 1-65535 at offset 10",
        ),
        (body({"m.server": "a.example/"}), "'/' is not allowed in a hostname"),
        (body({"m.server": "a.example/"}), "at offset 9"),
        (body({"m.server": "b\u00fccher.de"}), "IDNA A-label"),
    ],
)
def test_an_invalid_body_says_why(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidWellKnown) as caught:
        parse_well_known_body(raw)
    assert message in str(caught.value)


def test_an_invalid_body_is_not_mistaken_for_a_grammar_error() -> None:
    # The machine catches InvalidWellKnown to go to step 4; an InvalidServerName
    # escaping here would be treated as the caller's bad input instead.
    with pytest.raises(InvalidWellKnown) as caught:
        parse_well_known_body(body({"m.server": "::1"}))
    assert not isinstance(caught.value, ValueError)
    assert caught.value.__cause__ is None


# --- redirect_request -------------------------------------------------------------------


def test_a_relative_path_stays_on_the_same_authority() -> None:
    hop = redirect_request(FIRST, "/other/place")
    assert hop == HttpsGet(
        url="https://example.org/other/place",
        host="example.org",
        port=443,
        target="/other/place",
        host_header="example.org",
        max_body_bytes=51200,
    )


def test_a_relative_reference_resolves_against_the_current_url() -> None:
    assert redirect_request(FIRST, "client").url == "https://example.org/.well-known/matrix/client"
    assert redirect_request(FIRST, "../x").url == "https://example.org/.well-known/x"
    hop = redirect_request(FIRST, "//other.example/wk")
    assert (hop.url, hop.host) == ("https://other.example/wk", "other.example")


def test_an_absolute_https_url_moves_to_its_host() -> None:
    hop = redirect_request(FIRST, "https://delegate.example.net/.well-known/matrix/server")
    assert (hop.url, hop.host, hop.port, hop.host_header, hop.target) == (
        "https://delegate.example.net/.well-known/matrix/server",
        "delegate.example.net",
        443,
        "delegate.example.net",
        WELL_KNOWN_PATH,
    )


def test_an_explicit_port_is_used_and_sent_in_host() -> None:
    hop = redirect_request(FIRST, "https://delegate.example.net:8443/wk")
    assert (hop.host, hop.port, hop.host_header) == (
        "delegate.example.net",
        8443,
        "delegate.example.net:8443",
    )
    # A later relative hop keeps that authority.
    again = redirect_request(hop, "/next")
    assert (again.url, again.port, again.host_header) == (
        "https://delegate.example.net:8443/next",
        8443,
        "delegate.example.net:8443",
    )


def test_an_ip_literal_location() -> None:
    hop = redirect_request(FIRST, "https://[2001:DB8::1]:8443/wk")
    assert (hop.host, hop.port, hop.host_header) == ("2001:db8::1", 8443, "[2001:DB8::1]:8443")
    hop = redirect_request(FIRST, "https://192.0.2.1/wk")
    assert (hop.host, hop.port, hop.host_header) == ("192.0.2.1", 443, "192.0.2.1")


def test_the_query_is_kept_and_the_fragment_dropped() -> None:
    hop = redirect_request(FIRST, "/wk?a=1&b=2#section")
    assert (hop.url, hop.target) == ("https://example.org/wk?a=1&b=2", "/wk?a=1&b=2")
    bare = redirect_request(FIRST, "https://other.example?x")
    assert (bare.url, bare.target) == ("https://other.example/?x", "/?x")


def test_an_empty_path_becomes_slash() -> None:
    hop = redirect_request(FIRST, "https://other.example")
    assert (hop.url, hop.target) == ("https://other.example/", "/")


def test_scheme_and_host_case() -> None:
    # The scheme is case-insensitive; the host is connected to in lower case but
    # the Host header keeps the authority as written.
    hop = redirect_request(FIRST, "HTTPS://Other.Example/wk")
    assert (hop.host, hop.host_header) == ("other.example", "Other.Example")


def test_the_body_limit_is_carried_over() -> None:
    small = well_known_request("example.org", 10)
    assert redirect_request(small, "/x").max_body_bytes == 10


def test_surrounding_whitespace_in_location_is_ignored() -> None:
    assert redirect_request(FIRST, "  /x \t").url == "https://example.org/x"


@pytest.mark.parametrize(
    ("location", "message"),
    [
        (None, "the redirect has no Location header"),
        ("", "the redirect has no Location header"),
        ("   ", "the redirect has no Location header"),
        ("http://example.org/.well-known/matrix/server", "is not https"),
        ("HTTP://example.org/x", "is not https"),
        ("ftp://example.org/x", "is not https"),
        ("javascript:alert(1)", "is not https"),
        ("https://user:secret@example.org/x", "carries credentials"),
        ("https://user@example.org/x", "carries credentials"),
        ("https://exa_mple.org/x", "has an invalid host: '_' is not allowed in a hostname"),
        ("https://example.org:0/x", "has an invalid host: the port 0 is out of range"),
        ("https://example.org:99999/x", "has an invalid host"),
        ("https://example.org:https/x", "has an invalid host"),
        ("https://:443/x", "has an invalid host: the hostname is empty"),
        ("https://2001:db8::1/x", "has an invalid host"),
        ("https://[::1/x", "is not a valid URL"),
        ("/b\u00fccher", "characters a URL cannot contain"),
        ("/a b", "characters a URL cannot contain"),
        ("/a\x00b", "characters a URL cannot contain"),
        ("https://example.org/\r\nSet-Cookie: x", "characters a URL cannot contain"),
    ],
)
def test_a_redirect_that_is_refused_says_why(location: str | None, message: str) -> None:
    with pytest.raises(RedirectRefused) as caught:
        redirect_request(FIRST, location)
    assert message in str(caught.value)

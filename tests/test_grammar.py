"""The server-name grammar: what is accepted, what is rejected, and what the error says.

Every rejection is checked for its reason (the words a user sees) and its offset
(where the user should look), because both are part of the promise in
``parse_server_name``'s docstring and docs/interpretations.md (I-01 to I-09).
"""

from __future__ import annotations

import pytest

from mxresolve import (
    HostKind,
    InvalidServerName,
    ServerName,
    parse_server_name,
    server_name_advisories,
)

# Names at the DNS limits (I-07): 3 labels of 63 and one of 61 make 253 characters.
LABEL_63 = "a" * 63
NAME_253 = ".".join([LABEL_63, "b" * 63, "c" * 63, "d" * 61])
NAME_254 = NAME_253 + "d"
NAME_255 = NAME_254 + "d"
NAME_256 = NAME_255 + "d"
assert (len(NAME_253), len(NAME_254), len(NAME_256)) == (253, 254, 256)


# --- rejected names ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason", "offset"),
    [
        pytest.param("", "it is empty", None, id="empty"),
        # Ports (I-01): the offset points at the first digit of the port.
        pytest.param(
            "example.org:123456", "the port has 6 digits; the grammar allows at most 5", 12
        ),
        pytest.param("example.org:", "the port after ':' is empty", 12, id="empty-port"),
        pytest.param("example.org:0", "the port 0 is out of range 1-65535", 12),
        pytest.param("example.org:65536", "the port 65536 is out of range 1-65535", 12),
        pytest.param("example.org:99999", "the port 99999 is out of range 1-65535", 12),
        pytest.param("example.org:84a8", "'a' is not allowed in the port", 14),
        pytest.param("example.org:8a", "'a' is not allowed in the port", 13),
        pytest.param("example.org:-1", "'-' is not allowed in the port", 12),
        pytest.param("example.org:80:80", "':' is not allowed in the port", 14),
        pytest.param("[::1]:", "the port after ':' is empty", 6, id="ipv6-empty-port"),
        pytest.param("1.2.3.4:0", "the port 0 is out of range", 8),
        # IPv6 (I-09).
        pytest.param("2001:db8::1", "an IPv6 literal must be in brackets: [addr]", 0),
        pytest.param("1234:5678::abcd", "an IPv6 literal must be in brackets", 0),
        pytest.param("fe80::1:8448", "an IPv6 literal must be in brackets", 0),
        pytest.param("::1", "an IPv6 literal must be in brackets", 0),
        pytest.param("[2001:db8::1", "the IPv6 literal is missing its closing ']'", 12),
        pytest.param("[1234:5678::abcd", "missing its closing ']'", 16),
        pytest.param("[2001:db8::1:8448", "missing its closing ']'", 17),
        pytest.param("[fe80::1%eth0]", "a zone index ('%') is not allowed", 8),
        pytest.param("[2001:db8::g]", "'g' is not allowed", 11),
        pytest.param("[:]", "an IPv6 literal has 2 to 45 characters", 1),
        pytest.param("[]", "an IPv6 literal has 2 to 45 characters", 1),
        pytest.param("[1:2:3]", "'1:2:3' is not a valid IPv6 address", 1),
        pytest.param("[::1]x", "expected ':' and a port after the IPv6 literal, found 'x'", 5),
        pytest.param("[::1]]", "found ']'", 5),
        # Characters outside the grammar (I-08 for non-ASCII).
        pytest.param(
            "b\u00fccher.de",
            "is not ASCII; internationalised names must be written in their IDNA A-label form",
            1,
            id="non-ascii",
        ),
        pytest.param("exa_mple.org", "'_' is not allowed in a hostname", 3),
        pytest.param("my_server.example.org", "'_' is not allowed in a hostname", 2),
        pytest.param("example.org/path", "'/' is not allowed in a hostname", 11),
        pytest.param("example org", "' ' is not allowed in a hostname", 7),
        pytest.param("https://example.org", "'/' is not allowed", 6),
        pytest.param("https://matrix.example.org", "'/' is not allowed", 6),
        pytest.param("]example.org", "']' without a matching '['", 0),
        pytest.param(":8448", "the hostname is empty", 0),
        # All-numeric names must be IPv4 literals (I-03, I-04).
        pytest.param("256.1.1.1", "the IPv4 octet 256 is out of range 0-255", 0),
        pytest.param("1.2.3.256", "the IPv4 octet 256 is out of range 0-255", 6),
        pytest.param("1.2.3", "four decimal octets", 0),
        pytest.param("1.2.3.4.5", "four decimal octets", 0),
        pytest.param("1.2.3.4.", "four decimal octets", 0, id="ipv4-trailing-dot"),
        pytest.param("01.2.3.4", "the IPv4 octet '01' has a leading zero", 0),
        pytest.param("1.2.03.4", "the IPv4 octet '03' has a leading zero", 4),
        pytest.param("1..2.3", "an IPv4 octet has 1 to 3 digits", 2),
        pytest.param("1.2.3.1234", "an IPv4 octet has 1 to 3 digits", 6),
        # DNS names must fit in DNS (I-07).
        pytest.param("example..org", "a DNS name cannot have an empty label", 8),
        pytest.param("a..b", "a DNS name cannot have an empty label", 2),
        pytest.param(".example.org", "a DNS name cannot have an empty label", 0),
        pytest.param("example.org..", "a DNS name cannot have an empty label", 12),
        pytest.param("a" * 64 + ".org", "a DNS label has 64 characters; max 63", 0, id="label-64"),
        pytest.param(
            "example." + "a" * 64, "a DNS label has 64 characters; max 63", 8, id="label-64-last"
        ),
        pytest.param(NAME_254, "the DNS name has 254 characters; DNS allows at most 253", None),
        pytest.param(NAME_254 + ":8448", "the DNS name has 254 characters", None),
        pytest.param(NAME_256, "the DNS name has 256 characters; max 255", None),
        pytest.param("a" * 262, "it is 262 characters long", None, id="too-long"),
    ],
)
def test_an_invalid_name_says_what_is_wrong_and_where(
    text: str, reason: str, offset: int | None
) -> None:
    with pytest.raises(InvalidServerName) as caught:
        parse_server_name(text)
    error = caught.value
    assert reason in error.reason
    assert error.offset == offset
    assert error.text == text
    # The message names the input, so a log line is useful on its own.
    assert repr(text) in str(error)
    if offset is not None:
        assert f"(at offset {offset})" in str(error)


def test_non_ascii_points_at_the_idna_a_label_form() -> None:
    with pytest.raises(InvalidServerName) as caught:
        parse_server_name("matrix.b\u00fccher.de")
    assert "IDNA A-label" in caught.value.reason
    assert "xn--" in caught.value.reason
    assert caught.value.offset == 8


@pytest.mark.parametrize("text", ["::ffff:192.0.2.1", "::"])
def test_every_unbracketed_ipv6_address_gets_the_bracket_hint(text: str) -> None:
    # I-09: "An unbracketed IPv6 address cannot be a server name ... and the error
    # says to add brackets." Addresses starting with "::" are IPv6 addresses too
    # ("::1" is in the table above, with its offset).
    with pytest.raises(InvalidServerName) as caught:
        parse_server_name(text)
    assert "brackets" in caught.value.reason


@pytest.mark.parametrize(
    ("value", "type_name"),
    [(None, "NoneType"), (8448, "int"), (b"example.org", "bytes"), (["example.org"], "list")],
)
def test_a_non_string_is_an_invalid_server_name(value: object, type_name: str) -> None:
    with pytest.raises(InvalidServerName) as caught:
        parse_server_name(value)
    assert caught.value.reason == f"expected a string, got {type_name}"
    assert caught.value.offset is None
    assert caught.value.text == repr(value)


def test_invalid_server_name_is_a_value_error() -> None:
    # Callers that catch ValueError around parsing keep working.
    with pytest.raises(ValueError, match="it is empty"):
        parse_server_name("")


# --- accepted names ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "hostname", "host", "port"),
    [
        ("example.org", HostKind.DNS, "example.org", "example.org", None),
        ("example.org:8448", HostKind.DNS, "example.org", "example.org", 8448),
        ("example.org:1", HostKind.DNS, "example.org", "example.org", 1),
        ("example.org:65535", HostKind.DNS, "example.org", "example.org", 65535),
        # I-02: a leading zero in a port is accepted and means the number.
        ("example.org:08448", HostKind.DNS, "example.org", "example.org", 8448),
        # I-06: upper case is kept as written but connected to in lower case.
        ("Example.ORG", HostKind.DNS, "Example.ORG", "example.org", None),
        # I-05: the trailing dot is kept in hostname, dropped in host.
        ("example.org.", HostKind.DNS, "example.org.", "example.org", None),
        ("Example.ORG.", HostKind.DNS, "Example.ORG.", "example.org", None),
        ("example.org.:443", HostKind.DNS, "example.org.", "example.org", 443),
        ("localhost", HostKind.DNS, "localhost", "localhost", None),
        ("xn--bcher-kva.de", HostKind.DNS, "xn--bcher-kva.de", "xn--bcher-kva.de", None),
        ("123.example.org", HostKind.DNS, "123.example.org", "123.example.org", None),
        ("a-b--c.example", HostKind.DNS, "a-b--c.example", "a-b--c.example", None),
        ("1.2.3.4", HostKind.IPV4, "1.2.3.4", "1.2.3.4", None),
        ("1.2.3.4:443", HostKind.IPV4, "1.2.3.4", "1.2.3.4", 443),
        ("0.0.0.0", HostKind.IPV4, "0.0.0.0", "0.0.0.0", None),
        ("255.255.255.255", HostKind.IPV4, "255.255.255.255", "255.255.255.255", None),
        ("[2001:db8::1]", HostKind.IPV6, "[2001:db8::1]", "2001:db8::1", None),
        ("[::1]:8448", HostKind.IPV6, "[::1]", "::1", 8448),
        # I-09: any RFC 4291 form in, RFC 5952 form out.
        (
            "[2001:DB8:0:0:0:0:0:1]:8448",
            HostKind.IPV6,
            "[2001:DB8:0:0:0:0:0:1]",
            "2001:db8::1",
            8448,
        ),
        ("[2001:DB8:0::7]:8443", HostKind.IPV6, "[2001:DB8:0::7]", "2001:db8::7", 8443),
        ("[::ffff:192.0.2.1]", HostKind.IPV6, "[::ffff:192.0.2.1]", "::ffff:192.0.2.1", None),
        ("[::ffff:c000:201]", HostKind.IPV6, "[::ffff:c000:201]", "::ffff:192.0.2.1", None),
    ],
)
def test_a_valid_name_is_split_into_its_parts(
    text: str, kind: HostKind, hostname: str, host: str, port: int | None
) -> None:
    parsed = parse_server_name(text)
    assert (parsed.text, parsed.kind, parsed.hostname, parsed.host, parsed.port) == (
        text,
        kind,
        hostname,
        host,
        port,
    )
    assert str(parsed) == text
    assert parsed.is_ip_literal is (kind is not HostKind.DNS)


@pytest.mark.parametrize(
    ("text", "host"),
    [
        pytest.param(NAME_253, NAME_253, id="name-253"),
        pytest.param(NAME_253 + ".", NAME_253, id="name-253-trailing-dot"),
        pytest.param(NAME_253 + ":65535", NAME_253, id="name-253-with-port"),
        pytest.param(LABEL_63 + ".org", LABEL_63 + ".org", id="label-63"),
        pytest.param("org." + LABEL_63, "org." + LABEL_63, id="label-63-last"),
    ],
)
def test_names_at_the_dns_limits_are_accepted(text: str, host: str) -> None:
    parsed = parse_server_name(text)
    assert parsed.kind is HostKind.DNS
    assert parsed.host == host


@pytest.mark.parametrize(
    ("text", "fqdn"),
    [
        ("Matrix.Example.ORG:443", "matrix.example.org."),
        ("example.org.", "example.org."),
        ("Example.ORG.", "example.org."),
    ],
)
def test_fqdn_is_lower_case_and_absolute(text: str, fqdn: str) -> None:
    assert parse_server_name(text).fqdn == fqdn


@pytest.mark.parametrize("text", ["1.2.3.4", "192.0.2.1", "[2001:db8::1]:8448"])
def test_an_ip_literal_has_no_fqdn(text: str) -> None:
    with pytest.raises(ValueError, match="is an IP literal, not a DNS name"):
        _ = parse_server_name(text).fqdn


# --- identity ---------------------------------------------------------------------------


@pytest.mark.parametrize("other_case", ["Example.org", "EXAMPLE.org"])
def test_equality_is_case_sensitive_on_the_text(other_case: str) -> None:
    lower, upper = parse_server_name("example.org"), parse_server_name(other_case)
    # Same host to connect to, but two different server identities (spec appendices).
    assert lower.host == upper.host
    assert lower != upper
    assert lower == parse_server_name("example.org")
    assert hash(lower) == hash(parse_server_name("example.org"))
    assert len({lower, upper, parse_server_name("example.org")}) == 2


def test_equality_ignores_nothing_but_the_text() -> None:
    # Same host and port written differently are different identities.
    assert parse_server_name("example.org.") != parse_server_name("example.org")
    assert parse_server_name("example.org:08448") != parse_server_name("example.org:8448")
    assert parse_server_name("[::1]") != parse_server_name("[0::1]")
    text: object = "[::1]"
    assert parse_server_name("[::1]") != text  # a ServerName is not its string


def test_a_server_name_is_immutable() -> None:
    parsed = parse_server_name("example.org")
    with pytest.raises(AttributeError):
        parsed.text = "other.org"  # type: ignore[misc]
    assert isinstance(parsed, ServerName)


# --- advisories -------------------------------------------------------------------------


NAME_230 = ".".join(["a" * 56] * 4) + ".ab"
assert len(NAME_230) == 230


@pytest.mark.parametrize(
    "text",
    [
        "example.org",
        "example.org:8448",
        # Upper-case hex is normal in IPv6 literals: no upper-case advice for them.
        "[2001:DB8::1]",
        pytest.param(NAME_230, id="name-230"),
    ],
)
def test_a_plain_name_has_no_advisories(text: str) -> None:
    assert server_name_advisories(parse_server_name(text)) == ()


def test_upper_case_is_advised_against() -> None:
    (note,) = server_name_advisories(parse_server_name("Example.org"))
    assert "upper-case" in note


def test_a_trailing_dot_is_noted() -> None:
    (note,) = server_name_advisories(parse_server_name("example.org."))
    assert "trailing dot" in note


@pytest.mark.parametrize(
    ("text", "length"),
    [
        pytest.param(NAME_230 + "c", 231, id="name-231"),
        pytest.param(".".join(["a" * 60] * 4), 243, id="name-243"),
    ],
)
def test_names_over_230_characters_are_advised_against(text: str, length: int) -> None:
    (note,) = server_name_advisories(parse_server_name(text))
    assert f"{length} characters" in note
    assert "at most 230" in note


@pytest.mark.parametrize(
    ("text", "topics"),
    [
        ("Example.org.", ["upper-case", "trailing dot"]),
        (NAME_253.upper() + ".", ["upper-case", "254 characters", "trailing dot"]),
    ],
)
def test_advisories_add_up(text: str, topics: list[str]) -> None:
    notes = server_name_advisories(parse_server_name(text))
    assert len(notes) == len(topics)
    for topic in topics:
        assert any(topic in note for note in notes), topic

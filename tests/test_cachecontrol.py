"""Cache headers on a valid well-known response (I-15, RFC 9111).

``freshness_lifetime`` gives the response's own lifetime, before the floor and
cap of ``well_known_lifetime``; these tests pin the precedence between the
headers and the tolerance for malformed ones.
"""

from __future__ import annotations

from email.utils import formatdate

import pytest

from mxresolve import HttpsResponse
from mxresolve._core.cachecontrol import Freshness, freshness_lifetime, parse_cache_control

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def http_date(timestamp: float) -> str:
    return formatdate(timestamp, usegmt=True)


def fresh(*headers: tuple[str, str], now: float = NOW) -> Freshness:
    return freshness_lifetime(HttpsResponse(status=200, headers=headers), now)


# --- parse_cache_control ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", {}),
        ("max-age=60", {"max-age": "60"}),
        ("no-store", {"no-store": None}),
        ("max-age=60, no-store", {"max-age": "60", "no-store": None}),
        # Directive names are case-insensitive; arguments are kept as written.
        ("Max-Age=60, NO-CACHE", {"max-age": "60", "no-cache": None}),
        ("  max-age = 60 ,  private ", {"max-age": "60", "private": None}),
        # Quoted arguments lose their quotes (RFC 9111 5.2: both forms are accepted).
        ('max-age="60"', {"max-age": "60"}),
        ('max-age=""', {"max-age": ""}),
        # A lone quote is not a quoted string.
        ('max-age="', {"max-age": '"'}),
        # The first of duplicate directives wins.
        ("max-age=60, max-age=3600", {"max-age": "60"}),
        # Garbage is skipped, never raised on.
        (",,, ;;;", {}),
        ("=60", {}),
        ("bad directive, max-age=5", {"max-age": "5"}),
        ("max age=5, no-store", {"no-store": None}),
        ("x;y=1, public", {"public": None}),
        ("max-age=abc", {"max-age": "abc"}),
        (
            'max-age="60", No-Store, bad directive, =x, private',
            {"max-age": "60", "no-store": None, "private": None},
        ),
    ],
)
def test_parse_cache_control(value: str, expected: dict[str, str | None]) -> None:
    assert parse_cache_control(value) == expected


# --- freshness_lifetime ----------------------------------------------------------------


def test_no_cache_headers_leave_the_choice_to_the_caller() -> None:
    result = fresh()
    assert result.seconds is None
    assert result.source == "no cache headers"


def test_unrelated_headers_are_not_cache_headers() -> None:
    assert fresh(("Content-Type", "application/json"), ("Date", http_date(NOW))).seconds is None


def test_max_age() -> None:
    result = fresh(("Cache-Control", "max-age=3600"))
    assert result.seconds == 3600.0
    assert "max-age" in result.source


def test_header_names_are_case_insensitive() -> None:
    assert fresh(("CACHE-CONTROL", "max-age=10")).seconds == 10.0
    assert fresh(("cache-control", "max-age=10"), ("AGE", "4")).seconds == 6.0


def test_quoted_max_age() -> None:
    assert fresh(("Cache-Control", 'max-age="120"')).seconds == 120.0


def test_max_age_zero() -> None:
    assert fresh(("Cache-Control", "max-age=0")).seconds == 0.0


@pytest.mark.parametrize("directive", ["no-store", "no-cache", "No-Store"])
def test_no_store_and_no_cache_mean_zero(directive: str) -> None:
    result = fresh(("Cache-Control", directive))
    assert result.seconds == 0.0
    assert directive.lower() in result.source


@pytest.mark.parametrize(
    "headers",
    [
        (("Cache-Control", "max-age=3600, no-store"),),
        (("Cache-Control", "no-store, max-age=3600"),),
        (("Cache-Control", "max-age=3600"), ("Cache-Control", "no-cache")),
    ],
)
def test_no_store_beats_max_age_in_the_same_header_and_across_headers(
    headers: tuple[tuple[str, str], ...],
) -> None:
    assert fresh(*headers).seconds == 0.0


def test_no_store_beats_expires() -> None:
    expires = http_date(NOW + 3600)
    assert fresh(("Cache-Control", "no-store"), ("Expires", expires)).seconds == 0.0


def test_the_first_of_duplicate_max_age_headers_wins() -> None:
    assert fresh(("Cache-Control", "max-age=60"), ("Cache-Control", "max-age=3600")).seconds == 60
    assert fresh(("Cache-Control", "max-age=60, max-age=3600")).seconds == 60


def test_age_is_subtracted_from_max_age() -> None:
    assert fresh(("Cache-Control", "max-age=3600"), ("Age", "600")).seconds == 3000.0


def test_an_age_over_max_age_means_already_expired() -> None:
    assert fresh(("Cache-Control", "max-age=60"), ("Age", "61")).seconds == 0.0


@pytest.mark.parametrize("age", ["-5", "abc", "1.5", "", "\u0661\u0662"])
def test_an_invalid_age_is_ignored(age: str) -> None:
    # Arabic-Indic digits are digits to str.isdigit but not to RFC 9111's DIGIT.
    assert fresh(("Cache-Control", "max-age=100"), ("Age", age)).seconds == 100.0


def test_a_huge_max_age_saturates_instead_of_overflowing() -> None:
    result = fresh(("Cache-Control", "max-age=" + "9" * 400))
    assert result.seconds == float(2**31)


@pytest.mark.parametrize("value", ["-1", "abc", "1.5", "", "\u0663"])
def test_an_invalid_max_age_falls_through(value: str) -> None:
    assert fresh(("Cache-Control", f"max-age={value}")).seconds is None
    expires = http_date(NOW + 500)
    result = fresh(("Cache-Control", f"max-age={value}"), ("Expires", expires))
    assert result.seconds == 500.0
    assert result.source == "Expires"


def test_max_age_beats_expires() -> None:
    result = fresh(("Cache-Control", "max-age=60"), ("Expires", http_date(NOW + 7200)))
    assert result.seconds == 60.0


@pytest.mark.parametrize(
    ("expires", "date", "seconds"),
    [
        (http_date(NOW + 9000), http_date(NOW + 7200), 1800.0),
        ("Thu, 01 Jan 2026 02:00:00 GMT", "Thu, 01 Jan 2026 00:00:00 GMT", 7200.0),
    ],
)
def test_expires_is_relative_to_date(expires: str, date: str, seconds: float) -> None:
    # Date, not our clock, is the base: a server whose clock is ahead of ours
    # still gets the lifetime it meant.
    headers = (("Expires", expires), ("Date", date))
    assert fresh(*headers).seconds == seconds
    assert fresh(*headers, now=NOW + 100_000).seconds == seconds


def test_expires_without_date_is_relative_to_now() -> None:
    assert fresh(("Expires", http_date(NOW + 3600))).seconds == 3600.0
    assert fresh(("Expires", http_date(NOW + 3600)), now=NOW + 600).seconds == 3000.0


def test_expires_with_an_invalid_date_is_relative_to_now() -> None:
    result = fresh(("Expires", http_date(NOW + 3600)), ("Date", "yesterday"))
    assert result.seconds == 3600.0


def test_age_is_subtracted_from_expires() -> None:
    headers = (("Expires", http_date(NOW + 3600)), ("Date", http_date(NOW)), ("Age", "100"))
    assert fresh(*headers).seconds == 3500.0


def test_expires_in_the_past_means_already_expired() -> None:
    assert fresh(("Expires", http_date(NOW - 3600))).seconds == 0.0
    assert fresh(("Expires", http_date(NOW)), ("Date", http_date(NOW + 60))).seconds == 0.0


@pytest.mark.parametrize(
    "expires",
    [
        "0",
        "-1",
        "not a date",
        "",
        # RFC 9110 dates are GMT; a date without a zone is not one.
        "Thu, 01 Jan 2026 01:00:00",
        "Thu, 99 Foo 2026 01:00:00 GMT",
    ],
)
def test_an_invalid_expires_means_already_expired(expires: str) -> None:
    # RFC 9111 5.3: "A cache recipient MUST interpret invalid date formats,
    # especially the value "0", as representing a time in the past."
    result = fresh(("Expires", expires))
    assert result.seconds == 0.0
    assert "invalid" in result.source


def test_the_other_accepted_date_formats() -> None:
    # RFC 9110 5.6.7: recipients accept the obsolete RFC 850 and asctime forms.
    assert fresh(("Expires", "Thursday, 01-Jan-26 01:00:00 GMT")).seconds == 3600.0
    assert fresh(("Expires", "Thu, 01 Jan 2026 01:00:00 +0000")).seconds == 3600.0


def test_garbage_cache_control_falls_through_to_expires() -> None:
    result = fresh(("Cache-Control", "=,,;; bad directive"), ("Expires", http_date(NOW + 42)))
    assert result.seconds == 42.0


@pytest.mark.parametrize("value", ["s-maxage=60, public", "s-maxage=9"])
def test_s_maxage_and_public_do_not_apply_to_a_private_cache(value: str) -> None:
    assert fresh(("Cache-Control", value)).seconds is None

"""Signed requests: what is covered, what is refused, and why (for the log)."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from shared.protocol import (
    MAX_CLOCK_SKEW_SECONDS,
    NONCE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
)
from shared.tokens import sign_request, signed_string, verify_request

SECRET = "s3cret-metaserver-token-0123456789abcdef"
PATH = "/api/datastores/store1/heartbeat"
BODY = b'{"token":"abc"}'
NOW = 1_700_000_000
NONCE = "n0nce-0123456789abcdef"


def signed(**overrides: object) -> dict[str, str]:
    args: dict[str, object] = {
        "secret": SECRET,
        "method": "POST",
        "path_with_query": PATH,
        "body": BODY,
        "timestamp": NOW,
        "nonce": NONCE,
    } | overrides
    return sign_request(**args)  # type: ignore[arg-type]


def verify(headers: dict[str, str], **overrides: object) -> str | None:
    args: dict[str, object] = {
        "secret": SECRET,
        "method": "POST",
        "path_with_query": PATH,
        "body": BODY,
        "headers": headers,
        "now": NOW,
    } | overrides
    return verify_request(**args)  # type: ignore[arg-type]


def test_the_signature_is_hmac_sha256_over_the_documented_string() -> None:
    headers = signed()
    body_hash = hashlib.sha256(BODY).hexdigest()
    message = f"{NOW}\n{NONCE}\nPOST\n{PATH}\n{body_hash}"
    assert signed_string(NOW, NONCE, "post", PATH, BODY) == message
    expected = hmac.new(SECRET.encode(), message.encode(), hashlib.sha256).hexdigest()
    assert headers == {
        TIMESTAMP_HEADER: str(NOW),
        NONCE_HEADER: NONCE,
        SIGNATURE_HEADER: expected,
    }


def test_a_correctly_signed_request_verifies() -> None:
    assert verify(signed()) is None


def test_fresh_signatures_use_the_clock_and_a_new_nonce_each_time() -> None:
    first = sign_request(SECRET, "POST", PATH, BODY)
    second = sign_request(SECRET, "POST", PATH, BODY)
    assert first[NONCE_HEADER] != second[NONCE_HEADER]
    now = int(first[TIMESTAMP_HEADER])
    assert verify(first, now=now) is None


def test_header_names_are_matched_case_insensitively() -> None:
    headers = {name.lower(): value for name, value in signed().items()}
    assert verify(headers) is None


@pytest.mark.parametrize("missing", [TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER])
def test_a_missing_header_is_named_in_the_reason(missing: str) -> None:
    headers = signed()
    del headers[missing]
    assert verify(headers) == f"missing header {missing}"


def test_no_headers_at_all_names_all_three() -> None:
    reason = verify({})
    assert reason is not None
    assert reason.startswith("missing header")
    for name in (TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER):
        assert name in reason


@pytest.mark.parametrize(
    ("header", "value"),
    [
        (TIMESTAMP_HEADER, "soon"),
        (TIMESTAMP_HEADER, "-5"),
        (TIMESTAMP_HEADER, "\u0661\u0667" + "\u0660" * 8),  # int() would take it
        (TIMESTAMP_HEADER, "1" * 13),
        (NONCE_HEADER, "short"),
        (NONCE_HEADER, "has spaces in it, sixteen+"),
        (NONCE_HEADER, "n" * 65),
        (SIGNATURE_HEADER, "00"),
        (SIGNATURE_HEADER, "Z" * 64),
    ],
)
def test_malformed_headers_are_refused_by_name(header: str, value: str) -> None:
    headers = signed() | {header: value}
    assert verify(headers) == f"malformed {header}"


@pytest.mark.parametrize(
    "change",
    [
        {"secret": "another-datastores-token-0123456789"},
        {"method": "PUT"},
        {"path_with_query": "/api/datastores/store2/heartbeat"},
        {"path_with_query": PATH + "?x=1"},
        {"body": BODY + b" "},
        {"body": b""},
    ],
)
def test_any_change_after_signing_breaks_the_signature(
    change: dict[str, object],
) -> None:
    assert verify(signed(), **change) == "signature does not match"


def test_a_changed_timestamp_or_nonce_breaks_the_signature() -> None:
    assert verify(signed() | {TIMESTAMP_HEADER: str(NOW - 1)}) == (
        "signature does not match"
    )
    assert verify(signed() | {NONCE_HEADER: "another-nonce-0123456"}) == (
        "signature does not match"
    )


@pytest.mark.parametrize("offset", [-MAX_CLOCK_SKEW_SECONDS, 0, MAX_CLOCK_SKEW_SECONDS])
def test_timestamps_within_the_window_are_accepted(offset: int) -> None:
    assert verify(signed(timestamp=NOW + offset)) is None


@pytest.mark.parametrize("offset", [-120, -61, 61, 3600])
def test_timestamps_outside_the_window_are_refused(offset: int) -> None:
    reason = verify(signed(timestamp=NOW + offset))
    assert reason is not None
    assert "timestamp" in reason
    assert f"{-offset:+d} s" in reason


def test_the_window_can_be_narrowed() -> None:
    assert verify(signed(timestamp=NOW - 10), max_skew=5) is not None


def test_an_empty_secret_never_verifies_and_cannot_sign() -> None:
    forged = hmac.new(
        b"", signed_string(NOW, NONCE, "POST", PATH, BODY).encode(), hashlib.sha256
    ).hexdigest()
    headers = {
        TIMESTAMP_HEADER: str(NOW),
        NONCE_HEADER: NONCE,
        SIGNATURE_HEADER: forged,
    }
    assert verify(headers, secret="") == "no shared secret (not registered)"
    with pytest.raises(ValueError, match="empty secret"):
        sign_request("", "POST", PATH, BODY)


def test_reasons_never_contain_the_secret_or_the_signature() -> None:
    headers = signed()
    for reason in (
        verify(headers, secret="wrong-secret-0123456789"),
        verify(headers, now=NOW + 3600),
        verify(headers | {NONCE_HEADER: "bad"}),
    ):
        assert reason is not None
        assert SECRET not in reason
        assert headers[SIGNATURE_HEADER] not in reason


def test_signing_refuses_a_nonce_verification_would_refuse() -> None:
    with pytest.raises(ValueError, match="nonce"):
        sign_request(SECRET, "POST", PATH, BODY, nonce="short")

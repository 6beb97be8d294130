"""Users' emails: what counts as an address, and claims keyed with a secret."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from example_app.users import (
    EMAIL_CLAIM_KEY_ENV,
    RegisterUser,
    email_claim,
    email_claim_key,
    normalise_email,
)
from example_app.wiring import build_application
from framework import DomainError, DynamoDBEventStore


@pytest.mark.parametrize(
    ("email", "normalised"),
    [
        ("ann@example.com", "ann@example.com"),
        ("  Ann@Example.COM ", "ann@example.com"),
        ("first.last+tag@mail.example.org", "first.last+tag@mail.example.org"),
        ("o'neil@example.ie", "o'neil@example.ie"),
        ("x@bücher.de", "x@bücher.de"),
        ("a@b-c.io", "a@b-c.io"),
        ("a@b.c", "a@b.c"),
    ],
)
def test_addresses_are_normalised(email: str, normalised: str) -> None:
    assert normalise_email(email) == normalised


@pytest.mark.parametrize(
    "email",
    [
        "a@@b.c",
        "a@b@c.de",
        "@example.com",
        "ann@",
        "ann",
        "ann@example",
        "ann@.example.com",
        "ann@example.com.",
        "ann@example..com",
        "ann@-example.com",
        "ann@example-.com",
        "ann@exa_mple.com",
        "ann@example.123",
        "an n@example.com",
        "ann@exam ple.com",
        "ann\t@example.com",
        "ann\x00@example.com",
        ".ann@example.com",
        "ann.@example.com",
        "an..n@example.com",
        "a" * 65 + "@example.com",
        "ann@" + "e" * 64 + ".com",
        "ann@" + "e." * 130 + "com",
    ],
)
def test_malformed_addresses_are_refused(email: str) -> None:
    with pytest.raises(DomainError, match="is not an email address"):
        normalise_email(email)


def test_claims_are_keyed_with_the_configured_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    address = "ann@example.com"
    monkeypatch.setenv(EMAIL_CLAIM_KEY_ENV, "one secret")
    one = email_claim(address)
    assert one == hmac.new(b"one secret", address.encode(), hashlib.sha256).hexdigest()
    monkeypatch.setenv(EMAIL_CLAIM_KEY_ENV, "another secret")
    assert email_claim(address) != one
    # Not the bare hash that anyone can compute from a list of likely addresses.
    assert email_claim(address) != hashlib.sha256(address.encode()).hexdigest()


def test_without_configuration_the_development_key_is_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(EMAIL_CLAIM_KEY_ENV, raising=False)
    assert b"development" in email_claim_key()
    assert email_claim("a@b.co") != hashlib.sha256(b"a@b.co").hexdigest()


def test_the_stored_claim_is_the_keyed_hash(
    moto_store: DynamoDBEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(EMAIL_CLAIM_KEY_ENV, "a secret of the deployment")
    app = build_application(moto_store)
    app.handle(RegisterUser(user_id="u1", name="Ann", email="Ann@Example.com"))
    items = str(moto_store.client.scan(TableName=moto_store.tables.aggregates)["Items"])
    assert email_claim("ann@example.com") in items
    assert hashlib.sha256(b"ann@example.com").hexdigest() not in items
    assert "ann@example.com" not in items

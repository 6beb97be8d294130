"""The users domain: registration with an email unique across all users, email changes, and
"forget me".

The email's uniqueness is a unique-value claim written in the same transaction as the user's
events, not a look-up in a read model: two simultaneous registrations with one address cannot both
succeed. Emails are normalised (trimmed, lower-cased) and claimed by a keyed hash (HMAC-SHA256
with ``EXAMPLE_EMAIL_CLAIM_KEY``), so the claim items hold no address in clear, and nobody who
reads them can find an address by hashing a list of likely ones without the key.

Names and emails are personal data: stored encrypted with the user's own key. "Forget me" emits
``UserForgotten``, which deletes that key once committed: every copy of the user's name and email,
in events, snapshots and backups, becomes unreadable, and the stream still replays (the fields
read as erased).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re

from attrs import frozen

from framework import (
    Aggregate,
    Command,
    DomainError,
    Event,
    command_handler,
    event_handler,
)

EMAIL_SCOPE = "user-email"

EMAIL_CLAIM_KEY_ENV = "EXAMPLE_EMAIL_CLAIM_KEY"
"""The secret the email claims are keyed with: any string, best 32 random bytes in hex
(``python -c "import secrets; print(secrets.token_hex(32))"``). Keep it as long as the users'
claims: with another key, existing claims are no longer recognised."""

_DEVELOPMENT_CLAIM_KEY = b"example-app development email-claim key: never in production"
"""Used when ``EXAMPLE_EMAIL_CLAIM_KEY`` is not set: for development only. It is public (it is in
this file), so claims keyed with it are as reversible by a dictionary as a bare hash."""

MAX_EMAIL_LENGTH = 254
"""The longest address SMTP can carry (RFC 5321: a 256-octet path, less the angle brackets)."""

_LOCAL_PART = re.compile(r"[^\s@\x00-\x1f\x7f]{1,64}")
_DOMAIN_LABEL = re.compile(r"(?!-)[^\W_]([^\W_]|-){0,62}(?<!-)")


def normalise_email(email: str) -> str:
    """The form in which an email address is claimed and compared: trimmed, lower-cased.

    Refuses (``DomainError``) what is not an address: exactly one ``@``; a local part of 1 to 64
    characters with no whitespace or control characters, not starting, ending or doubling a dot;
    a domain of at least two dot-separated labels, each 1 to 63 letters, digits or inner
    hyphens, the last one not all digits; 254 characters at most in all.
    """
    normalised = email.strip().lower()
    if not _is_address(normalised):
        raise DomainError(f"{email!r} is not an email address")
    return normalised


def _is_address(address: str) -> bool:
    if len(address) > MAX_EMAIL_LENGTH or address.count("@") != 1:
        return False
    local, _, domain = address.partition("@")
    if not _LOCAL_PART.fullmatch(local) or ".." in local or local[0] == "." or local[-1] == ".":
        return False
    labels = domain.split(".")
    return (
        len(labels) >= 2
        and all(_DOMAIN_LABEL.fullmatch(label) for label in labels)
        and not labels[-1].isdigit()
    )


@frozen
class RegisterUser(Command, target="user_id"):
    user_id: str
    name: str
    email: str


@frozen
class ChangeEmail(Command, target="user_id"):
    user_id: str
    email: str


@frozen
class ForgetUser(Command, target="user_id"):
    user_id: str


def email_claim_key() -> bytes:
    """The email claims' key: ``EXAMPLE_EMAIL_CLAIM_KEY``, or the development one."""
    configured = os.environ.get(EMAIL_CLAIM_KEY_ENV)
    return configured.encode() if configured else _DEVELOPMENT_CLAIM_KEY


def email_claim(email: str) -> str:
    """The value claimed for an address: its HMAC-SHA256 under the claim key, so no claim item
    shows an address and none can be reversed by hashing candidate addresses without the key."""
    return hmac.new(email_claim_key(), email.encode(), hashlib.sha256).hexdigest()


@frozen
class UserRegistered(Event, personal=("name", "email")):
    name: str
    email: str


@frozen
class EmailChanged(Event, personal=("email",)):
    email: str


@frozen
class UserForgotten(Event, forgets_subject=True):
    """Personal data is erased for good (the user's key is deleted); the stream stays
    replayable."""


class User(Aggregate):
    name: str | None
    email: str | None
    forgotten: bool

    @command_handler(RegisterUser, creates=True)
    def register(self, command: RegisterUser) -> None:
        if not command.name.strip():
            raise DomainError("a user needs a name")
        email = normalise_email(command.email)
        self.claim_unique(EMAIL_SCOPE, email_claim(email))
        self.emit(UserRegistered(name=command.name.strip(), email=email))

    @command_handler(ChangeEmail)
    def change_email(self, command: ChangeEmail) -> None:
        self._require_known()
        email = normalise_email(command.email)
        if email == self.email:
            return
        if self.email is not None:
            self.release_unique(EMAIL_SCOPE, email_claim(self.email))
        self.claim_unique(EMAIL_SCOPE, email_claim(email))
        self.emit(EmailChanged(email=email))

    @command_handler(ForgetUser)
    def forget(self, command: ForgetUser) -> None:
        self._require_known()
        if self.email is not None:
            self.release_unique(EMAIL_SCOPE, email_claim(self.email))
        self.emit(UserForgotten())

    def _require_known(self) -> None:
        if self.forgotten:
            raise DomainError(f"user {self.id} was forgotten")

    @event_handler(UserRegistered)
    def _registered(self, event: UserRegistered) -> None:
        self.name, self.email, self.forgotten = event.name, event.email, False

    @event_handler(EmailChanged)
    def _email_changed(self, event: EmailChanged) -> None:
        self.email = event.email

    @event_handler(UserForgotten)
    def _forgotten(self, event: UserForgotten) -> None:
        self.name, self.email, self.forgotten = None, None, True

"""The users domain: registration with an email unique across all users, email changes, and
"forget me".

The email's uniqueness is a unique-value claim written in the same transaction as the user's
events, not a look-up in a read model: two simultaneous registrations with one address cannot both
succeed. Emails are normalised (trimmed, lower-cased) and claimed by their SHA-256, so the claim
items hold no address in clear.

Names and emails are personal data: stored encrypted with the user's own key. "Forget me" emits
``UserForgotten``, which deletes that key once committed: every copy of the user's name and email,
in events, snapshots and backups, becomes unreadable, and the stream still replays (the fields
read as erased).
"""

from __future__ import annotations

import hashlib

from attrs import frozen

from framework import (
    Aggregate,
    Command,
    DomainError,
    Event,
    command_handler,
    event_handler,
    personal,
    target_id,
)

EMAIL_SCOPE = "user-email"


def normalise_email(email: str) -> str:
    """The form in which an email address is claimed and compared."""
    normalised = email.strip().lower()
    local, at, domain = normalised.partition("@")
    if not local or not at or "." not in domain:
        raise DomainError(f"{email!r} is not an email address")
    return normalised


@frozen
class RegisterUser(Command):
    user_id: str = target_id()
    name: str
    email: str


@frozen
class ChangeEmail(Command):
    user_id: str = target_id()
    email: str


@frozen
class ForgetUser(Command):
    user_id: str = target_id()


def email_claim(email: str) -> str:
    """The value claimed for an address: its SHA-256, so no claim item shows an address."""
    return hashlib.sha256(email.encode()).hexdigest()


@frozen
class UserRegistered(Event):
    name: str = personal()
    email: str = personal()


@frozen
class EmailChanged(Event):
    email: str = personal()


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

"""The users domain: registration with an email unique across all users, email changes, and
"forget me".

The email's uniqueness is a unique-value claim written in the same transaction as the user's
events, not a look-up in a read model: two simultaneous registrations with one address cannot both
succeed. Emails are normalised (trimmed, lower-cased) before they are claimed.
"""

from __future__ import annotations

from attrs import frozen

from framework import (
    Aggregate,
    Command,
    DomainError,
    Event,
    command_handler,
    event_handler,
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


@frozen
class UserRegistered(Event):
    name: str
    email: str


@frozen
class EmailChanged(Event):
    email: str


@frozen
class UserForgotten(Event):
    """Personal data is no longer shown; the stream stays replayable."""


class User(Aggregate):
    name: str | None
    email: str | None
    forgotten: bool

    @command_handler(RegisterUser, creates=True)
    def register(self, command: RegisterUser) -> None:
        if not command.name.strip():
            raise DomainError("a user needs a name")
        email = normalise_email(command.email)
        self.claim_unique(EMAIL_SCOPE, email)
        self.emit(UserRegistered(name=command.name.strip(), email=email))

    @command_handler(ChangeEmail)
    def change_email(self, command: ChangeEmail) -> None:
        self._require_known()
        email = normalise_email(command.email)
        if email == self.email:
            return
        if self.email is not None:
            self.release_unique(EMAIL_SCOPE, self.email)
        self.claim_unique(EMAIL_SCOPE, email)
        self.emit(EmailChanged(email=email))

    @command_handler(ForgetUser)
    def forget(self, command: ForgetUser) -> None:
        self._require_known()
        if self.email is not None:
            self.release_unique(EMAIL_SCOPE, self.email)
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

"""Logs never carry payloads, personal data or credentials."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import structlog
from attrs import frozen

from example_app.users import ChangeEmail, RegisterUser
from example_app.wiring import build_application
from framework import (
    Aggregate,
    Application,
    Command,
    DomainError,
    DynamoDBEventStore,
    InMemoryEventStore,
    command_handler,
)
from framework.errors import UniqueConstraintViolated
from framework.logs import configure_logging, redact_sensitive


@pytest.fixture
def json_logs(capsys: pytest.CaptureFixture[str]) -> Iterator[pytest.CaptureFixture[str]]:
    configure_logging("DEBUG", json=True)
    try:
        yield capsys
    finally:
        structlog.reset_defaults()


def test_a_command_log_has_no_personal_data(json_logs: pytest.CaptureFixture[str]) -> None:
    app = build_application(InMemoryEventStore())
    app.handle(RegisterUser(user_id="u1", name="Grace Hopper", email="grace@navy.example"))
    app.handle(ChangeEmail(user_id="u1", email="g.hopper@navy.example"))
    with pytest.raises(UniqueConstraintViolated):
        app.handle(RegisterUser(user_id="u2", name="Impostor", email="G.Hopper@NAVY.example "))
    app.handle(RegisterUser(user_id="u3", name="Lovelace", email="grace@navy.example"))
    output = json_logs.readouterr().err
    lines = [json.loads(line) for line in output.splitlines()]
    assert [line["event"] for line in lines] == [
        "command.handled",
        "command.handled",
        "command.refused",
        "command.handled",
    ]
    for secret in (
        "grace",
        "hopper",
        "navy",
        "Grace Hopper",
        "Impostor",
        "Lovelace",
    ):  # no hex letters: ids cannot contain them by chance
        assert secret.lower() not in output.lower()
    assert "already taken" in lines[2]["reason"]  # the claim is a hash: no address to mask


@frozen
class SignUp(Command, target="member_id", personal=("email", "nickname")):
    member_id: str
    email: str
    nickname: str


class Member(Aggregate):
    @command_handler(SignUp, creates=True)
    def sign_up(self, command: SignUp) -> None:
        # Rules quote what they refuse, often normalised: the log must not carry it.
        raise DomainError(
            f"{command.email.strip().lower()!r} is no address and "
            f"{command.nickname.upper()} is taken"
        )


def test_refusals_withhold_what_the_command_declares_personal(
    json_logs: pytest.CaptureFixture[str],
) -> None:
    app = Application(store=InMemoryEventStore(), aggregates=[Member])
    with pytest.raises(DomainError) as refused:
        app.handle(SignUp(member_id="m1", email=" Jo@@Weird..Mail ", nickname="zorro"))
    assert "jo@@weird..mail" in str(refused.value)  # the caller still gets the full reason
    (line,) = [json.loads(x) for x in json_logs.readouterr().err.splitlines()]
    assert line["event"] == "command.refused"
    assert "weird" not in line["reason"].lower() and "zorro" not in line["reason"].lower()
    assert line["reason"] == "'[personal]' is no address and [personal] is taken"


def test_secrets_and_payloads_are_dropped_whatever_logs_them(
    json_logs: pytest.CaptureFixture[str],
) -> None:
    structlog.get_logger("app").info(
        "called",
        payload=b'{"email": "x@y.example"}',
        AWS_SECRET_ACCESS_KEY="abc",
        nested={"token": "t0k3n", "note": "mail me at me@example.org"},
        items=["a@b.example", 3],
    )
    line = json.loads(json_logs.readouterr().err)
    assert line["payload"] == "[redacted]" and line["AWS_SECRET_ACCESS_KEY"] == "[redacted]"
    assert line["nested"] == {"token": "[redacted]", "note": "mail me at <email>"}
    assert line["items"] == ["<email>", 3]


def test_the_store_never_logs_its_credentials(json_logs: pytest.CaptureFixture[str]) -> None:
    store = DynamoDBEventStore(endpoint_url="http://127.0.0.1:9", table_prefix="x")
    assert store.client is not None
    assert "local" not in json_logs.readouterr().err  # the dummy credentials of a local endpoint


def test_the_processor_leaves_ordinary_fields_alone() -> None:
    entry = {"event": "command.handled", "versions": {"User#u1": 2}, "duration_ms": 1.5}
    assert redact_sensitive(None, "info", dict(entry)) == entry

"""The conditions of a transaction plan: what DynamoDB is asked to check, and the same rule
evaluated by the in-memory store (the contract suite runs both against every store)."""

from __future__ import annotations

from framework.store.conditions import Absent, FreeOrOwnedBy, VersionIs, merged


def test_each_condition_says_the_same_rule_to_dynamodb_and_to_the_memory_store() -> None:
    at_three = {"pk": {"S": "Account#a"}, "version": {"N": "3"}}
    held = {"pk": {"S": "unique#email#x"}, "owner": {"S": "User#u1"}}
    assert Absent().expression() == {"ConditionExpression": "attribute_not_exists(pk)"}
    assert Absent("sk").expression() == {"ConditionExpression": "attribute_not_exists(sk)"}
    assert Absent().holds(None) and not Absent().holds(at_three)
    assert VersionIs(0).expression() == Absent().expression()
    assert VersionIs(0).holds(None) and not VersionIs(0).holds(at_three)
    assert VersionIs(3).holds(at_three) and not VersionIs(2).holds(at_three)
    assert not VersionIs(3).holds(None)
    assert VersionIs(3).expression()["ExpressionAttributeValues"] == {":expected": {"N": "3"}}
    assert FreeOrOwnedBy("User#u1").holds(None) and FreeOrOwnedBy("User#u1").holds(held)
    assert not FreeOrOwnedBy("User#u2").holds(held)


def test_a_condition_merges_into_a_request_without_losing_its_own_names_and_values() -> None:
    update = {
        "UpdateExpression": "SET #v = :v",
        "ExpressionAttributeNames": {"#v": "version"},
        "ExpressionAttributeValues": {":v": {"N": "4"}},
    }
    guarded = merged(update, VersionIs(3))
    assert guarded["ConditionExpression"] == "#v = :expected"
    assert guarded["ExpressionAttributeNames"] == {"#v": "version"}
    assert guarded["ExpressionAttributeValues"] == {":v": {"N": "4"}, ":expected": {"N": "3"}}
    assert "ExpressionAttributeValues" not in merged({"Item": {}}, Absent())

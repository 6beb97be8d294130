"""The SAM template: valid for CloudFormation (cfn-lint), with the tables the code creates."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode

from framework.store.tables import FEED_INDEX, TableNames, table_definitions

TEMPLATE = Path(__file__).resolve().parent.parent / "deploy" / "template.yaml"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    loaded, problems = decode(str(TEMPLATE))
    assert not problems, problems
    assert loaded is not None
    return dict(loaded)


def resource(template: dict[str, Any], name: str) -> dict[str, Any]:
    properties: dict[str, Any] = template["Resources"][name]["Properties"]
    return properties


def test_cfn_lint_finds_no_error() -> None:
    linted = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, cfnlint.runner; sys.exit(cfnlint.runner.main())",
            str(TEMPLATE),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr


@pytest.mark.parametrize(
    ("logical_id", "role"),
    [
        ("AggregatesTable", "aggregates"),
        ("EventsTable", "events"),
        ("SnapshotsTable", "snapshots"),
        ("PositionsTable", "positions"),
    ],
)
def test_tables_match_what_the_store_creates(
    template: dict[str, Any], logical_id: str, role: str
) -> None:
    names = TableNames("x")
    expected = next(d for d in table_definitions(names) if d["TableName"] == getattr(names, role))
    table = resource(template, logical_id)
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert sorted(table["AttributeDefinitions"], key=str) == sorted(
        expected["AttributeDefinitions"], key=str
    )
    assert table["KeySchema"] == expected["KeySchema"]
    assert table.get("GlobalSecondaryIndexes") == expected.get("GlobalSecondaryIndexes")
    if "StreamSpecification" in expected:
        assert table["StreamSpecification"]["StreamViewType"] == "NEW_IMAGE"
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


def test_the_events_table_has_its_stream_and_feed_index(template: dict[str, Any]) -> None:
    events = resource(template, "EventsTable")
    assert events["StreamSpecification"] == {"StreamViewType": "NEW_IMAGE"}
    (index,) = events["GlobalSecondaryIndexes"]
    assert index["IndexName"] == FEED_INDEX
    assert [k["AttributeName"] for k in index["KeySchema"]] == ["feed_pk", "feed_sk"]


def test_the_stream_mapping_never_blocks_a_shard_forever(template: dict[str, Any]) -> None:
    function = resource(template, "ProjectionFunction")
    assert function["Handler"] == "framework.projections.aws_lambda.handler"
    mapping = function["Events"]["EventsStream"]["Properties"]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BisectBatchOnFunctionError"] is True
    assert mapping["ParallelizationFactor"] == 1
    assert mapping["MaximumRecordAgeInSeconds"] == 86400
    assert "OnFailure" in mapping["DestinationConfig"]
    assert mapping["StartingPosition"] == "TRIM_HORIZON"


def test_the_function_role_is_least_privilege(template: dict[str, Any]) -> None:
    function = resource(template, "ProjectionFunction")
    statements = function["Policies"][0]["Statement"]
    actions = [action for statement in statements for action in statement["Action"]]
    assert all(not action.endswith("*") for action in actions)
    assert "dynamodb:TransactWriteItems" not in actions  # authorised through the item actions

"""The SAM template: valid for CloudFormation (cfn-lint), with the tables the code creates.

The settings checked here are the ones the framework relies on; docs/deploying-on-aws.md explains
each of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import lint
from cfnlint.decode import decode

from framework.projections.aws_lambda import handler, load_projectors, load_upcasters, make_handler
from framework.store import InMemoryEventStore, InMemoryPositionStore
from framework.store.dynamodb.tables import (
    COMMAND_TTL_ATTRIBUTE,
    FEED_INDEX,
    TableNames,
    table_definitions,
)

TEMPLATE = Path(__file__).resolve().parent.parent / "deploy" / "template.yaml"

TABLES = {
    "AggregatesTable": "aggregates",
    "EventsTable": "events",
    "SnapshotsTable": "snapshots",
    "PositionsTable": "positions",
}
EVENTS_STREAM = {"Fn::GetAtt": ["EventsTable", "StreamArn"]}
FAILURE_QUEUE = {"Fn::GetAtt": ["ProjectionFailures", "Arn"]}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    # cfn-lint's own loader understands the short forms (!Ref, !Sub, !GetAtt, !If).
    loaded, problems = decode(str(TEMPLATE))
    assert not problems, problems
    assert loaded is not None
    return dict(loaded)


LARGE_PAYLOADS = {"Fn::Sub": "${LargePayloadsBucket.Arn}/events/*"}
STORE_SETTINGS = {
    "PAYLOAD_BUCKET": {"Ref": "LargePayloadsBucket"},
    "KMS_KEY_ID": {"Fn::If": ["HasKmsKey", {"Ref": "KmsKeyArn"}, {"Ref": "AWS::NoValue"}]},
}
"""What every function needs of the settings beyond its tables: the store's payload bucket and
the KMS key of personal data, when there is one."""


def always_granted(statements: list[Any]) -> list[dict[str, Any]]:
    """The statements granted whatever the parameters (those under ``Fn::If`` left out)."""
    return [statement for statement in statements if "Fn::If" not in statement]


def granted_with_kms_key(statements: list[Any]) -> list[dict[str, Any]]:
    """The statements granted only when a KMS key is given."""
    return [
        statement["Fn::If"][1]
        for statement in statements
        if "Fn::If" in statement and statement["Fn::If"][0] == "HasKmsKey"
    ]


def properties(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    found: dict[str, Any] = template["Resources"][logical_id]["Properties"]
    return found


def stream_mappings(template: dict[str, Any]) -> list[dict[str, Any]]:
    """Every event source mapping of the template, written either way SAM allows.

    Explicit ``AWS::Lambda::EventSourceMapping`` resources carry CloudFormation's names
    (``EventSourceArn``); a function's ``Events`` entry of type ``DynamoDB`` carries SAM's
    (``Stream``, and ``Type`` in the destination). Both are returned with CloudFormation's.
    """
    mappings = []
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Lambda::EventSourceMapping":
            mappings.append(dict(resource["Properties"]))
        if resource["Type"] == "AWS::Serverless::Function":
            for event in resource["Properties"].get("Events", {}).values():
                if event["Type"] == "DynamoDB":
                    mapping = dict(event["Properties"])
                    mapping["EventSourceArn"] = mapping.pop("Stream")
                    mapping["FunctionName"] = {"Ref": "ProjectionFunction"}
                    mappings.append(mapping)
    return mappings


def test_cfn_lint_finds_no_error_and_no_warning() -> None:
    # Warnings are refused too: the template is small enough to have none, and cfn-lint's
    # warnings include runtimes about to be deprecated, which should fail here first.
    matches = lint(TEMPLATE.read_text())
    problems = [match for match in matches if match.rule.id[0] in "EW"]
    assert not problems, "\n".join(str(match) for match in problems)


@pytest.mark.parametrize(("logical_id", "role"), TABLES.items())
def test_tables_match_what_the_store_creates(
    template: dict[str, Any], logical_id: str, role: str
) -> None:
    names = TableNames("x")
    (expected,) = [d for d in table_definitions(names) if d["TableName"] == getattr(names, role)]
    table = properties(template, logical_id)
    assert table["TableName"] == {"Fn::Sub": "${TablePrefix}-" + role}
    assert table["BillingMode"] == expected["BillingMode"] == "PAY_PER_REQUEST"
    assert sorted(table["AttributeDefinitions"], key=str) == sorted(
        expected["AttributeDefinitions"], key=str
    )
    assert table["KeySchema"] == expected["KeySchema"]
    assert table.get("GlobalSecondaryIndexes") == expected.get("GlobalSecondaryIndexes")
    if "StreamSpecification" in expected:
        # CloudFormation has no StreamEnabled: a StreamSpecification turns the stream on.
        view_type = expected["StreamSpecification"]["StreamViewType"]
        assert table["StreamSpecification"] == {"StreamViewType": view_type}
    else:
        assert "StreamSpecification" not in table


@pytest.mark.parametrize("logical_id", TABLES)
def test_tables_are_protected(template: dict[str, Any], logical_id: str) -> None:
    table = properties(template, logical_id)
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["SSESpecification"] == {"SSEEnabled": True}
    resource = template["Resources"][logical_id]
    assert resource["DeletionPolicy"] == resource["UpdateReplacePolicy"] == "Retain"


def test_processed_commands_expire(template: dict[str, Any]) -> None:
    ttl = properties(template, "AggregatesTable")["TimeToLiveSpecification"]
    assert ttl == {"AttributeName": COMMAND_TTL_ATTRIBUTE, "Enabled": True}


def test_the_events_table_has_its_stream_and_feed_index(template: dict[str, Any]) -> None:
    events = properties(template, "EventsTable")
    assert events["StreamSpecification"] == {"StreamViewType": "NEW_IMAGE"}
    (index,) = events["GlobalSecondaryIndexes"]
    assert index["IndexName"] == FEED_INDEX
    assert index["KeySchema"] == [
        {"AttributeName": "feed_pk", "KeyType": "HASH"},
        {"AttributeName": "feed_sk", "KeyType": "RANGE"},
    ]
    assert index["Projection"] == {"ProjectionType": "ALL"}


def test_the_function_runs_the_framework_handler(template: dict[str, Any]) -> None:
    function = properties(template, "ProjectionFunction")
    assert function["Handler"] == "framework.projections.aws_lambda.handler"
    assert f"{handler.__module__}.{handler.__name__}" == function["Handler"]
    assert function["Environment"]["Variables"] == {
        "DYNAMO_TABLE_PREFIX": {"Ref": "TablePrefix"},
        "PROJECTORS": {"Ref": "Projectors"},
        "UPCASTERS": {"Ref": "Upcasters"},
        "APPLICATION": {"Ref": "Application"},
        **STORE_SETTINGS,
    }
    default_projectors = template["Parameters"]["Projectors"]["Default"]
    default_upcasters = template["Parameters"]["Upcasters"]["Default"]
    # The defaults start: the projectors' event classes can read every older version.
    store = InMemoryEventStore()
    make_handler(
        load_projectors(default_projectors),
        store,
        InMemoryPositionStore(),
        upcasters=load_upcasters(default_upcasters),
    )


@pytest.mark.parametrize("function", ["ProjectionFunction", "PublisherFunction"])
def test_the_stream_mapping_never_blocks_a_shard_forever(
    template: dict[str, Any], function: str
) -> None:
    mappings = stream_mappings(template)
    # DynamoDB Streams serves at most two readers a shard without throttling them.
    assert len(mappings) == 2
    (mapping,) = [m for m in mappings if m["FunctionName"] == {"Ref": function}]
    assert mapping["EventSourceArn"] == EVENTS_STREAM
    assert mapping["StartingPosition"] == "TRIM_HORIZON"
    assert mapping["BatchSize"] == {"Ref": "BatchSize"}
    assert mapping["MaximumBatchingWindowInSeconds"] == 1
    assert mapping["ParallelizationFactor"] == 1
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BisectBatchOnFunctionError"] is True
    assert mapping["MaximumRetryAttempts"] == {"Ref": "MaximumRetryAttempts"}
    assert mapping["MaximumRecordAgeInSeconds"] == 86400
    assert mapping["DestinationConfig"]["OnFailure"]["Destination"] == FAILURE_QUEUE


def test_the_failure_queue_keeps_messages_fourteen_days(template: dict[str, Any]) -> None:
    queue = template["Resources"]["ProjectionFailures"]
    assert queue["Type"] == "AWS::SQS::Queue"
    assert queue["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600


def test_the_function_role_is_least_privilege(template: dict[str, Any]) -> None:
    function = properties(template, "ProjectionFunction")
    # No Events entry of type DynamoDB: SAM would add a managed policy granting every stream.
    assert all(e["Type"] != "DynamoDB" for e in function.get("Events", {}).values())
    (policy,) = function["Policies"]
    statements = always_granted(policy["Statement"])
    actions = [action for statement in statements for action in statement["Action"]]
    assert all("*" not in action for action in actions)
    assert "dynamodb:TransactWriteItems" not in actions  # authorised through the item actions
    assert all(statement["Resource"] not in ("*", ["*"]) for statement in statements)

    def granted(resource: Any) -> set[str]:
        return {
            action
            for statement in statements
            if isinstance(statement["Resource"], list) and resource in statement["Resource"]
            for action in statement["Action"]
        }

    assert granted({"Fn::GetAtt": ["EventsTable", "Arn"]}) == {
        "dynamodb:Query",
        "dynamodb:GetItem",
    }
    assert granted(EVENTS_STREAM) == {
        "dynamodb:DescribeStream",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
    }
    assert granted({"Fn::Sub": "${EventsTable.Arn}/stream/*"}) == {"dynamodb:ListStreams"}
    assert granted({"Fn::GetAtt": ["PositionsTable", "Arn"]}) == {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:ConditionCheckItem",
    }
    assert granted(FAILURE_QUEUE) == {"sqs:SendMessage"}
    assert granted(LARGE_PAYLOADS) == {"s3:GetObject"}
    assert granted({"Fn::GetAtt": ["DeadlinesTable", "Arn"]}) == {
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:GetItem",
    }
    for table in ("AggregatesTable", "SnapshotsTable"):
        assert not granted({"Fn::GetAtt": [table, "Arn"]})


def test_the_example_process_manager_runs_with_the_projections(
    template: dict[str, Any],
) -> None:
    """On AWS the held withdrawals' releases are scheduled: the projection function runs the
    example's process manager, built (as the handler builds it) from APPLICATION."""
    from framework.projections import ProcessManager

    projectors = load_projectors(template["Parameters"]["Projectors"]["Default"])
    managers = [p for p in projectors if isinstance(p, ProcessManager)]
    assert [type(m).__name__ for m in managers] == ["WithdrawalHolds"]
    from example_app import wiring

    module, _, factory = template["Parameters"]["Application"]["Default"].partition(":")
    assert module == wiring.__name__ and callable(getattr(wiring, factory))


def test_read_model_tables_follow_the_prefix_by_default(template: dict[str, Any]) -> None:
    parameter = template["Parameters"]["ReadModelTableArns"]
    assert parameter["Type"] == "CommaDelimitedList"
    assert parameter["Default"] == ""
    statements = properties(template, "ProjectionFunction")["Policies"][0]["Statement"]
    (read_models,) = [s for s in always_granted(statements) if s["Sid"] == "WriteReadModels"]
    condition, default, given = read_models["Resource"]["Fn::If"]
    assert template["Conditions"][condition] == {
        "Fn::Equals": [{"Fn::Join": ["", {"Ref": "ReadModelTableArns"}]}, ""]
    }
    assert default == [
        {
            "Fn::Sub": "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}"
            ":table/${TablePrefix}-read-*"
        }
    ]
    assert given == {"Ref": "ReadModelTableArns"}


def test_outputs(template: dict[str, Any]) -> None:
    outputs = {name: output["Value"] for name, output in template["Outputs"].items()}
    assert outputs == {
        "AggregatesTableName": {"Ref": "AggregatesTable"},
        "EventsTableName": {"Ref": "EventsTable"},
        "SnapshotsTableName": {"Ref": "SnapshotsTable"},
        "PositionsTableName": {"Ref": "PositionsTable"},
        "DeadlinesTableName": {"Ref": "DeadlinesTable"},
        "DeadlineFunctionArn": {"Fn::GetAtt": ["DeadlineFunction", "Arn"]},
        "EventsStreamArn": EVENTS_STREAM,
        "ProjectionFunctionArn": {"Fn::GetAtt": ["ProjectionFunction", "Arn"]},
        "ProjectionFailuresQueueUrl": {"Ref": "ProjectionFailures"},
        "EventBusName": {"Ref": "EventBus"},
        "EventBusArn": {"Fn::GetAtt": ["EventBus", "Arn"]},
        "PublisherFunctionArn": {"Fn::GetAtt": ["PublisherFunction", "Arn"]},
        "PublishFailuresQueueUrl": {"Ref": "PublishFailures"},
        "ExampleSubscriberQueueUrl": {"Ref": "ExampleSubscriberQueue"},
        "LargePayloadsBucketName": {"Ref": "LargePayloadsBucket"},
    }


BUS = {"Fn::GetAtt": ["EventBus", "Arn"]}
PUBLISH_FAILURES = {"Fn::GetAtt": ["PublishFailures", "Arn"]}


def test_the_publisher_function_publishes_the_stream_to_the_bus(template: dict[str, Any]) -> None:
    from framework.projections.publisher import EventBridgePublisher

    function = properties(template, "PublisherFunction")
    assert function["Handler"] == "framework.projections.aws_lambda.handler"
    assert function["Environment"]["Variables"] == {
        "DYNAMO_TABLE_PREFIX": {"Ref": "TablePrefix"},
        "PROJECTORS": {"Ref": "Publisher"},
        "UPCASTERS": {"Ref": "Upcasters"},
        "EVENT_BUS_NAME": {"Ref": "EventBus"},
        "PUBLISH_DLQ_URL": {"Ref": "PublishFailures"},
        "PUBLISH_PAYLOAD_BUCKET": {"Ref": "LargePayloadsBucket"},
        **STORE_SETTINGS,
    }
    (publisher,) = load_projectors(template["Parameters"]["Publisher"]["Default"])
    assert isinstance(publisher, EventBridgePublisher)
    bus = properties(template, "EventBus")
    assert bus["Name"] == {"Fn::Sub": "${TablePrefix}-events"}
    archive = properties(template, "EventArchive")
    assert archive["SourceArn"] == BUS
    assert archive["RetentionDays"] == {"Ref": "ArchiveRetentionDays"}
    failures = template["Resources"]["PublishFailures"]
    assert failures["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600


def test_the_publisher_role_is_least_privilege(template: dict[str, Any]) -> None:
    function = properties(template, "PublisherFunction")
    assert all(e["Type"] != "DynamoDB" for e in function.get("Events", {}).values())
    (policy,) = function["Policies"]
    statements = always_granted(policy["Statement"])
    actions = [action for statement in statements for action in statement["Action"]]
    assert all("*" not in action for action in actions)
    assert all(statement["Resource"] not in ("*", ["*"]) for statement in statements)
    granted: dict[str, set[str]] = {}
    for statement in statements:
        for resource in statement["Resource"]:
            granted.setdefault(str(resource), set()).update(statement["Action"])
    assert granted == {
        str(BUS): {"events:PutEvents"},
        str(PUBLISH_FAILURES): {"sqs:SendMessage"},
        str(FAILURE_QUEUE): {"sqs:SendMessage"},
        str(LARGE_PAYLOADS): {"s3:GetObject"},
        str({"Fn::Sub": "${LargePayloadsBucket.Arn}/published/*"}): {"s3:PutObject"},
        str({"Fn::GetAtt": ["EventsTable", "Arn"]}): {"dynamodb:Query", "dynamodb:GetItem"},
        str(EVENTS_STREAM): {
            "dynamodb:DescribeStream",
            "dynamodb:GetRecords",
            "dynamodb:GetShardIterator",
        },
        str({"Fn::Sub": "${EventsTable.Arn}/stream/*"}): {"dynamodb:ListStreams"},
        str({"Fn::GetAtt": ["PositionsTable", "Arn"]}): {
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
            "dynamodb:ConditionCheckItem",
        },
    }


def test_the_example_rule_routes_to_a_queue_only_it_may_write(template: dict[str, Any]) -> None:
    rule = properties(template, "ExampleRule")
    assert rule["EventBusName"] == {"Ref": "EventBus"}
    assert rule["EventPattern"]["source"] == ["example-bank"]
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["ExampleSubscriberQueue", "Arn"]}
    (statement,) = properties(template, "ExampleSubscriberQueuePolicy")["PolicyDocument"][
        "Statement"
    ]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Condition"] == {
        "ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": ["ExampleRule", "Arn"]}}
    }


@pytest.mark.parametrize("function", ["ProjectionFunction", "PublisherFunction"])
def test_the_functions_read_large_payloads_and_personal_fields(
    template: dict[str, Any], function: str
) -> None:
    found = properties(template, function)
    variables = found["Environment"]["Variables"]
    assert {name: variables[name] for name in STORE_SETTINGS} == STORE_SETTINGS
    (policy,) = found["Policies"]
    with_key = granted_with_kms_key(policy["Statement"])
    assert [(s["Action"], s["Resource"]) for s in with_key] == [
        (["dynamodb:GetItem"], [{"Fn::GetAtt": ["AggregatesTable", "Arn"]}]),
        (["kms:Decrypt"], [{"Ref": "KmsKeyArn"}]),
    ]
    # Of the aggregates table, only the wrapped data keys: never claims or command records.
    assert with_key[0]["Condition"] == {
        "ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["key#*"]}
    }


def test_the_payload_bucket_is_private_encrypted_and_kept(template: dict[str, Any]) -> None:
    resource = template["Resources"]["LargePayloadsBucket"]
    assert resource["DeletionPolicy"] == resource["UpdateReplacePolicy"] == "Retain"
    bucket = resource["Properties"]
    assert set(bucket["PublicAccessBlockConfiguration"].values()) == {True}
    (rule,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    (deny,) = properties(template, "LargePayloadsBucketPolicy")["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_the_deadlines_table_matches_what_the_store_creates(template: dict[str, Any]) -> None:
    from framework.projections.dynamodb_deadlines import (
        TTL_ATTRIBUTE,
        deadlines_table_definition,
    )

    expected = deadlines_table_definition("x")
    table = properties(template, "DeadlinesTable")
    assert table["TableName"] == {"Fn::Sub": "${TablePrefix}-deadlines"}
    assert expected["TableName"] == "x-deadlines"
    assert sorted(table["AttributeDefinitions"], key=str) == sorted(
        expected["AttributeDefinitions"], key=str
    )
    assert table["KeySchema"] == expected["KeySchema"]
    assert table["GlobalSecondaryIndexes"] == expected["GlobalSecondaryIndexes"]
    assert table["TimeToLiveSpecification"] == {"AttributeName": TTL_ATTRIBUTE, "Enabled": True}
    assert table["SSESpecification"] == {"SSEEnabled": True}
    assert template["Resources"]["DeadlinesTable"]["DeletionPolicy"] == "Retain"


def test_the_deadline_function_runs_every_minute_with_least_privilege(
    template: dict[str, Any],
) -> None:
    from framework.projections.aws_lambda import deadlines_handler
    from framework.projections.process_managers import load_application

    function = properties(template, "DeadlineFunction")
    assert f"{deadlines_handler.__module__}.{deadlines_handler.__name__}" == function["Handler"]
    assert function["Events"] == {
        "EveryMinute": {"Type": "Schedule", "Properties": {"Schedule": "rate(1 minute)"}}
    }
    assert function["Environment"]["Variables"] == {
        "DYNAMO_TABLE_PREFIX": {"Ref": "TablePrefix"},
        "APPLICATION": {"Ref": "Application"},
        **STORE_SETTINGS,
    }
    load_application(template["Parameters"]["Application"]["Default"], InMemoryEventStore())
    (policy,) = function["Policies"]
    statements = always_granted(policy["Statement"])
    granted: dict[str, set[str]] = {}
    for statement in statements:
        assert statement["Resource"] not in ("*", ["*"])
        for resource in statement["Resource"]:
            granted.setdefault(str(resource), set()).update(statement["Action"])
    handling = {
        "dynamodb:GetItem",
        "dynamodb:Query",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:ConditionCheckItem",
    }
    assert granted == {
        str({"Fn::Sub": "${DeadlinesTable.Arn}/index/due"}): {"dynamodb:Query"},
        str({"Fn::GetAtt": ["DeadlinesTable", "Arn"]}): {"dynamodb:GetItem", "dynamodb:UpdateItem"},
        str({"Fn::GetAtt": ["AggregatesTable", "Arn"]}): handling,
        str({"Fn::GetAtt": ["EventsTable", "Arn"]}): handling,
        str({"Fn::GetAtt": ["SnapshotsTable", "Arn"]}): handling,
        str(LARGE_PAYLOADS): {"s3:GetObject", "s3:PutObject"},
    }
    assert [(s["Action"], s["Resource"]) for s in granted_with_kms_key(policy["Statement"])] == [
        (["kms:GenerateDataKey", "kms:Decrypt"], [{"Ref": "KmsKeyArn"}])
    ]

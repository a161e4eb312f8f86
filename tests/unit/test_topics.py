"""Topic settings at creation: what acks=all needs to mean "stored twice"."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from switchboard import clients, topics
from switchboard.topics import ALL_TOPICS, OUTBOUND_SENT, RAW, creation_config, read_limits


@pytest.mark.parametrize(("replicas", "in_sync"), [(1, "1"), (2, "2"), (3, "2"), (5, "2")])
def test_acks_all_needs_two_copies_wherever_there_can_be_two(replicas: int, in_sync: str) -> None:
    for spec in ALL_TOPICS:
        assert creation_config(spec, replicas)["min.insync.replicas"] == in_sync


def test_each_topics_own_settings_are_kept() -> None:
    assert creation_config(RAW, 3)["max.message.bytes"] == RAW.config["max.message.bytes"]
    assert creation_config(OUTBOUND_SENT, 3)["cleanup.policy"] == "compact,delete"


class _HangingAdmin:
    """An admin client whose start never ends, as against a broker that takes the connection
    and never answers; records whether it was closed."""

    closed: list[bool] = []

    def __init__(self, **options: Any) -> None:
        self.closed.clear()

    async def start(self) -> None:
        await asyncio.Event().wait()

    async def close(self) -> None:
        self.closed.append(True)


async def test_a_topic_check_given_up_while_connecting_closes_its_client(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # /readyz gives the check 5 s: cancelled inside start(), its client was never closed,
    # one more for each probe of a long outage.
    monkeypatch.setattr(clients, "AIOKafkaAdminClient", _HangingAdmin)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(topics.missing_topics("127.0.0.1:1"), 0.05)
    assert _HangingAdmin.closed == [True]


def test_a_topic_kafka_will_not_describe_is_named_not_passed_over() -> None:
    """On a cluster with ACLs, a user without DescribeConfigs got no line at all: the start-up
    check of max.message.bytes passed in silence, though it had not looked. A topic that does
    not exist is still left out (readiness says so)."""
    response = SimpleNamespace(resources=[
        (0, None, 2, "sb.raw", [("max.message.bytes", "2097152", False, False, False)]),
        (29, "Authorization failed.", 2, "sb.dead", []),
        (3, None, 2, "sb.absent", []),
        (0, None, 2, "other", [("max.message.bytes", "1", False, False, False)]),
    ])
    names = {"sb.raw": "raw", "sb.dead": "dead", "sb.absent": "absent"}
    limits, unreadable = read_limits([response], names)
    assert limits == {"raw": 2097152}
    assert unreadable == {"dead": "TopicAuthorizationFailedError: Authorization failed."}


async def test_the_start_up_check_says_which_topic_it_could_not_read(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    async def described(kafka: object, specs: object) -> tuple[dict[str, int], dict[str, str]]:
        return {}, {RAW.name: "TopicAuthorizationFailedError"}

    monkeypatch.setattr(topics, "max_message_bytes", described)
    await topics.warn_of_small_topics("127.0.0.1:1")
    [line] = [r.msg for r in caplog.records if isinstance(r.msg, dict)
              and str(r.msg.get("event", "")).startswith("could not check")]
    assert line["topic"] == RAW.name
    assert line["error"] == "TopicAuthorizationFailedError"


def test_a_refusal_names_kafkas_error_and_an_acl_refusal_says_what_to_grant() -> None:
    refused = topics.TopicsRefused([("a.raw", 29, "Authorization failed."),
                                    ("a.status", 29, "Authorization failed.")], 3)
    assert refused.error == "TOPIC_AUTHORIZATION_FAILED"
    assert str(refused) == (
        "Kafka refused to create topic a.raw (and 1 more): TOPIC_AUTHORIZATION_FAILED "
        "(Authorization failed.); the ACLs of its Kafka user do not allow creating topics: "
        "grant it Create, or create them yourself and set SWITCHBOARD_CREATE_TOPICS=false")


def test_a_refusal_kafka_gives_no_name_for_keeps_its_code() -> None:
    refused = topics.TopicsRefused([("a.raw", 9999, "")], 1)
    assert (refused.error, str(refused)) == (
        "error 9999", "Kafka refused to create topic a.raw: error 9999")

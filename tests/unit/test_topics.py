"""Topic settings at creation: what acks=all needs to mean "stored twice"."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from switchboard import topics
from switchboard.topics import ALL_TOPICS, OUTBOUND_SENT, RAW, creation_config


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
    monkeypatch.setattr(topics, "AIOKafkaAdminClient", _HangingAdmin)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(topics.missing_topics("127.0.0.1:1"), 0.05)
    assert _HangingAdmin.closed == [True]

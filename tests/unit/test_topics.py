"""Topic settings at creation: what acks=all needs to mean "stored twice"."""

from __future__ import annotations

import pytest

from switchboard.topics import ALL_TOPICS, OUTBOUND_SENT, RAW, creation_config


@pytest.mark.parametrize(("replicas", "in_sync"), [(1, "1"), (2, "2"), (3, "2"), (5, "2")])
def test_acks_all_needs_two_copies_wherever_there_can_be_two(replicas: int, in_sync: str) -> None:
    for spec in ALL_TOPICS:
        assert creation_config(spec, replicas)["min.insync.replicas"] == in_sync


def test_each_topics_own_settings_are_kept() -> None:
    assert creation_config(RAW, 3)["max.message.bytes"] == RAW.config["max.message.bytes"]
    assert creation_config(OUTBOUND_SENT, 3)["cleanup.policy"] == "compact,delete"

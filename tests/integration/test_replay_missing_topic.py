"""`switchboard replay` where Switchboard's topics are not: the error says what to check."""

from __future__ import annotations

import uuid

from tests.integration.processes import replay


async def test_replay_under_a_prefix_with_no_topics_says_what_to_check(
        kafka_bootstrap: str) -> None:
    # "topic … does not exist on this cluster" alone: a user could not tell a wrong broker
    # from a wrong prefix from topics never created. A prefix no install uses here.
    prefix = f"nowhere-{uuid.uuid4().hex[:8]}."
    code, lines, stderr = await replay(kafka_bootstrap, "--dry-run", since=None, prefix=prefix)
    assert code != 0 and lines == []
    assert (f"topic {prefix}switchboard.dead-letter.v1 does not exist on the cluster at "
            f"{kafka_bootstrap}") in stderr
    for cause in ("KAFKA_BOOTSTRAP_SERVERS", f"SWITCHBOARD_KAFKA_NAME_PREFIX ('{prefix}')",
                  "SWITCHBOARD_CREATE_TOPICS=false"):
        assert cause in stderr

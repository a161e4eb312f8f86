"""`switchboard replay` over a letter whose record Kafka refuses for what it is (larger than its
topic takes, as the cluster has it now, or a letter a foreign producer wrote): that letter is
reported failing, and the rest of the window is replayed, not stopped at it on every run."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime

from switchboard.records import dead_letter_record
from switchboard.topics import TopicSpec, ensure_topics
from tests.integration.processes import replay
from tests.kafka_helpers import TopicWatcher, publish

LIMIT = 20_000


def _letter(topic: str, stage: str, value: bytes) -> dict[str, object]:
    return {"topic": topic, "value_b64": base64.b64encode(value).decode(),
            "key_b64": base64.b64encode(b"conversation").decode(),
            "headers_b64": [["ce_type", base64.b64encode(b"dev.test.thing.v1").decode()]]}


async def test_a_letter_kafka_refuses_fails_alone_and_the_window_goes_on(
        kafka_bootstrap: str) -> None:
    topic = f"test.replay.refused.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, partitions=1, replication_factor=1, specs=(
        TopicSpec(topic, "test", {"max.message.bytes": str(LIMIT)}),))
    stage = f"bot-refused-{uuid.uuid4().hex[:8]}"
    values = [b'{"n": 1}', b'{"n": "' + b"x" * (2 * LIMIT) + b'"}', b'{"n": 3}']
    ids = [str(uuid.uuid4()) for _ in values]
    now = datetime.now(UTC)
    await publish(kafka_bootstrap, [dead_letter_record(
        dl_id=letter_id, stage=f"worker:{stage}", reason="a bug", provider="test",
        account="test", time=now, payload=_letter(topic, stage, value))
        for letter_id, value in zip(ids, values, strict=True)])

    async with TopicWatcher(kafka_bootstrap, (topic,)) as watcher:
        start = await watcher.snapshot()
        code, lines, err = await replay(kafka_bootstrap, "--stage", stage)
        back = (await watcher.records_since(start)).get(topic, [])

    assert code == 3, err
    outcomes = {line["id"]: line["outcome"] for line in lines}
    assert outcomes == {ids[0]: "replayed", ids[1]: "failing", ids[2]: "replayed"}, err
    [refused] = [line for line in lines if line["id"] == ids[1]]
    assert "MessageSizeTooLarge" in refused["reason"]
    assert "replayed 2 of 3 (2 records); 1 still fail, 0 skipped" in err
    # Its record is not on the topic; the others are, each at least once (a letter of the
    # chunk Kafka took before it refused the other may be there twice, with the same id).
    assert {record.value for record in back} == {values[0], values[2]}

"""aiokafka's lines for what it retries every 100 ms without end (a commit of a deleted topic, a
group coordinator it cannot find): each kind reaches the log once a minute, with a count of
those held back; the first always, and another error in the same words at once. Pure: records
made here, the filter's clock given."""

from __future__ import annotations

import logging

import orjson
import pytest

from switchboard.logs import RepeatFilter, configure_logging, register_secrets

COMMIT_FAILED = "OffsetCommit failed for group %s on partition %s with offset %s: %s"
NO_COORDINATOR = "Group Coordinator Request failed: %s"


def _record(template: str, *args: object, name: str = "aiokafka.consumer.group_coordinator",
            level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, template, args, None)


def _commit_failed(error: str, topic: str = "orders") -> logging.LogRecord:
    return _record(COMMIT_FAILED, "switchboard-sender", f"TopicPartition({topic!r}, 0)",
                   "OffsetAndMetadata(offset=7, metadata='')", error)


def test_a_line_retried_every_100_ms_is_shown_once_a_minute_with_a_count() -> None:
    clock = [0.0]
    repeats = RepeatFilter(("aiokafka",), clock=lambda: clock[0])
    shown: list[tuple[float, str]] = []
    for tick in range(1800):  # three minutes of retries
        clock[0] = tick / 10
        record = _commit_failed("UnknownTopicOrPartitionError")
        if repeats.filter(record):
            shown.append((clock[0], record.getMessage()))
    assert [at for at, _ in shown] == [0.0, 60.0, 120.0]
    first = shown[0][1]
    assert first.endswith("UnknownTopicOrPartitionError")  # the first, as aiokafka wrote it
    assert shown[1][1] == f"{first} (and 599 more like it in the 60s before)"
    assert shown[2][1] == f"{first} (and 599 more like it in the 60s before)"


def test_another_error_or_topic_in_the_same_words_is_not_held_back() -> None:
    # Told apart by template only, a second topic's refusal, or another error of the same
    # commit, was held back as a repeat of the first for the whole window.
    clock = [0.0]
    repeats = RepeatFilter(("aiokafka",), clock=lambda: clock[0])
    assert repeats.filter(_commit_failed("UnknownTopicOrPartitionError"))
    clock[0] += 0.1
    assert not repeats.filter(_commit_failed("UnknownTopicOrPartitionError"))
    assert repeats.filter(_commit_failed("UnknownTopicOrPartitionError", topic="invoices"))
    assert repeats.filter(_commit_failed("NotLeaderForPartitionError"))
    assert repeats.filter(_record(NO_COORDINATOR, "[Error 15] CoordinatorNotAvailableError"))
    assert repeats.filter(_record(NO_COORDINATOR, "[Error 15] CoordinatorNotAvailableError",
                                  level=logging.WARNING))
    # Not aiokafka's: never held back here.
    ours = _record("commit failed", name="consumers.runtime", level=logging.WARNING)
    assert all(repeats.filter(ours) for _ in range(3))


def test_kinds_past_the_limit_are_told_apart_by_template_and_old_ones_forgotten() -> None:
    clock = [0.0]
    repeats = RepeatFilter(("aiokafka",), max_kinds=3, clock=lambda: clock[0])
    assert all(repeats.filter(_commit_failed("E", topic=f"t{n}")) for n in range(3))
    # Full: a new kind's words are not kept, its template is; its repeats are held back.
    assert repeats.filter(_commit_failed("E", topic="t3"))
    assert not repeats.filter(_commit_failed("E", topic="t4"))
    clock[0] += 61  # the window of the first ones ended: forgotten, room again
    assert repeats.filter(_commit_failed("E", topic="t5"))
    assert repeats.filter(_commit_failed("E", topic="t6"))
    assert len(repeats._seen) <= 3 + 1  # the kinds, and the template


def test_arguments_that_do_not_fit_their_template_raise_nothing_in_the_library() -> None:
    repeats = RepeatFilter(("aiokafka",), clock=lambda: 0.0)
    assert repeats.filter(_record(COMMIT_FAILED, "only one argument"))
    assert not repeats.filter(_record(COMMIT_FAILED, "only one argument"))


def test_aiokafka_retrying_for_a_minute_logs_one_line_and_no_secret(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [5000.0]
    monkeypatch.setattr("switchboard.logs.time.monotonic", lambda: clock[0])
    configure_logging("INFO", "json")
    register_secrets(["kafka-pa55word-held"])
    coordinator = logging.getLogger("aiokafka.consumer.group_coordinator")
    for tick in range(600):  # a minute of retries, every 100 ms
        clock[0] = 5000.0 + tick / 10
        coordinator.error(COMMIT_FAILED, "g", "TopicPartition('gone', 0)", "offset 1",
                          "UnknownTopicOrPartitionError")
        coordinator.error(NO_COORDINATOR, "sasl password kafka-pa55word-held refused")
    clock[0] = 5060.0
    coordinator.error(COMMIT_FAILED, "g", "TopicPartition('gone', 0)", "offset 1",
                      "UnknownTopicOrPartitionError")
    err = capsys.readouterr().err
    events = [orjson.loads(line)["event"] for line in err.splitlines()]
    assert "kafka-pa55word-held" not in err
    assert [event.split(":")[0] for event in events] == [
        "OffsetCommit failed for group g on partition TopicPartition('gone', 0) with offset "
        "offset 1", "Group Coordinator Request failed",
        "OffsetCommit failed for group g on partition TopicPartition('gone', 0) with offset "
        "offset 1"]
    assert events[1] == "Group Coordinator Request failed: sasl password *** refused"
    assert events[2].endswith(
        "UnknownTopicOrPartitionError (and 599 more like it in the 60s before)")

"""`switchboard tail`: every record Kafka can hold is printed; no cluster is one line."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson
import pytest
from aiokafka import ConsumerRecord

from switchboard.clients import KafkaConnection
from switchboard.tail import _unknown, decode


def record(value: bytes | None, key: bytes | None = b"k",
           headers: list[tuple[str, bytes | None]] | None = None) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(topic="switchboard.opt-outs.v1", partition=1, offset=7, timestamp=0,
                          timestamp_type=0, key=key, value=value,
                          checksum=None, serialized_key_size=0, serialized_value_size=0,
                          headers=headers or [])


def test_a_tombstone_and_a_header_without_a_value_are_shown_as_null() -> None:
    shown = decode(record(None, headers=[("ce_type", b"dev.t.v1"), ("empty", None)]))
    assert shown == {"topic": "switchboard.opt-outs.v1", "partition": 1, "offset": 7,
                     "key": "k", "headers": {"ce_type": "dev.t.v1", "empty": None},
                     "value": None}


def test_values_and_keys_as_they_are() -> None:
    assert decode(record(b'{"a": 1}'))["value"] == {"a": 1}
    assert decode(record(b"\xffnot json"))["value"] == "\ufffdnot json"
    assert decode(record(b"{}", key=b""))["key"] == ""  # an empty key is not a missing one
    assert decode(record(b"{}", key=None))["key"] is None


def test_a_value_nested_deeper_than_json_can_be_written_is_shown_as_text() -> None:
    deep = b"[" * 300 + b"]" * 300  # read, but not written back, by orjson
    shown = decode(record(deep))
    assert shown["value"] == deep.decode()
    assert orjson.loads(orjson.dumps(shown))["value"] == deep.decode()


def test_a_cluster_it_cannot_reach_is_one_error_line() -> None:
    env = os.environ | {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}  # nothing listens there
    done = subprocess.run([sys.executable, "-m", "switchboard.cli", "tail"], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert "error: cannot reach Kafka at 127.0.0.1:1 (KafkaConnectionError: Unable to " \
           "bootstrap" in done.stderr
    assert "Unclosed AIOKafkaConsumer" not in done.stderr  # an error line of its own before


@pytest.mark.parametrize(("given", "suggested"), [
    ("raw", "switchboard.raw.v1"),
    ("dead-letter", "switchboard.dead-letter.v1"),
    ("results", "switchboard.outbound-results.v1"),  # a part of a part
    ("outbound", "switchboard.outbound.v1"),  # a whole part first: not also its results
    ("message", "switchboard.message.inbound.v1 or switchboard.message.status.v1"),
    ("switchboard.raw.v2", "switchboard.raw.v1"),  # a typo: the close match, as before
])
def test_a_part_of_one_of_switchboard_s_topic_names_suggests_it(given: str, suggested: str
                                                                 ) -> None:
    said = _unknown(KafkaConnection("unused:9092"), [given], {"other.topic"})
    assert said.endswith(f"; did you mean {suggested}?")


@pytest.mark.parametrize("given", ["out", "v1", "s"])
def test_a_part_of_too_many_of_them_suggests_none(given: str) -> None:
    said = _unknown(KafkaConnection("unused:9092"), [given], {"other.topic"})
    assert "did you mean" not in said

"""`switchboard tail`'s decoding of a record: every record Kafka can hold is printed."""

from __future__ import annotations

from aiokafka import ConsumerRecord

from switchboard.tail import decode


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

"""Our murmur2 is Kafka's: a key hashed otherwise lands in another partition than the Java
clients' (and than the records of its conversation written before)."""

from __future__ import annotations

import pytest
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given
from hypothesis import strategies as st

from switchboard.murmur2 import murmur2
from switchboard.producer import DurableProducer


def _signed(value: int) -> int:
    return value - (1 << 32) if value >= 1 << 31 else value


# Apache Kafka's UtilsTest.testMurmur2 (Java ints).
@pytest.mark.parametrize(("key", "expected"), [
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
])
def test_kafkas_own_vectors(key: bytes, expected: int) -> None:
    assert _signed(murmur2(key)) == expected


# The Java client's partitions of these keys among 1,000 (kafka-python's compatibility test):
# every tail length, the empty key and a zero byte.
@pytest.mark.parametrize(("key", "partition"), [
    (b"", 681), (b"a", 524), (b"ab", 434), (b"abc", 107), (b"123456789", 566),
    (b"\x00 ", 742),
])
def test_the_java_clients_partitions(key: bytes, partition: int) -> None:
    assert (murmur2(key) & 0x7FFFFFFF) % 1000 == partition


@given(st.binary(max_size=600))
def test_the_same_as_aiokafkas_for_any_key(key: bytes) -> None:
    assert murmur2(key) == aiokafka_murmur2(key)


def test_high_bytes_and_long_keys_as_aiokafka() -> None:
    for key in (b"\xff" * 7, bytes(range(256)) * 3, "provider|account|+41 79 ü".encode()):
        assert murmur2(key) == aiokafka_murmur2(key)


def test_every_length_about_the_cached_readers_bound_as_aiokafka() -> None:
    """Up to 64 words a cached reader reads the key, beyond it a format built each time: the
    lengths on both sides of that bound, each tail among them, high bytes and low."""
    for length in range(4 * 64 - 8, 4 * 64 + 9):
        for key in (b"\xff" * length, bytes((0x80 + 7 * i) % 256 for i in range(length))):
            assert murmur2(key) == aiokafka_murmur2(key)


def test_the_producer_partitions_with_it() -> None:
    producer = DurableProducer("127.0.0.1:9")
    key = b"infobip|bench-infobip|+41790000001"
    assert producer._partition(key, 6) == (aiokafka_murmur2(key) & 0x7FFFFFFF) % 6

"""CompactedTable taking on partitions added to its topic while it runs (the real broker:
tests/integration/test_table_new_partitions.py). What the reader's assign() forgets of the
partitions it had, their positions and a pause, is put back."""

from __future__ import annotations

from aiokafka import TopicPartition

from consumers.table import CompactedTable


def tp(partition: int) -> TopicPartition:
    return TopicPartition("topic", partition)


class Reader:
    """As aiokafka's consumer: assign() replaces the assignment, its positions and pauses."""

    def __init__(self, listed: set[int], positions: dict[TopicPartition, int]) -> None:
        self.listed = listed  # the partitions its metadata names
        self.positions = positions
        self.paused_tps: set[TopicPartition] = set()
        self.assigned: list[list[TopicPartition]] = []
        self.from_start: list[TopicPartition] = []

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        assert topic == "topic"
        return self.listed or None  # None: the topic is not in its metadata

    async def position(self, partition: TopicPartition) -> int:
        return self.positions[partition]

    def paused(self) -> set[TopicPartition]:
        return set(self.paused_tps)

    def pause(self, *partitions: TopicPartition) -> None:
        self.paused_tps.update(partitions)

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.assigned.append(list(partitions))
        self.positions, self.paused_tps = {}, set()

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.positions[partition] = offset

    async def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        self.from_start.extend(partitions)
        self.positions.update(dict.fromkeys(partitions, 0))


def table_reading(reader: Reader, *partitions: TopicPartition) -> CompactedTable[int]:
    table = CompactedTable("unused:9092", "topic", int)
    table._consumer = reader
    table._partitions = list(partitions)
    return table


async def test_new_partitions_are_read_from_their_start_the_others_from_where_they_were(
        ) -> None:
    reader = Reader({0, 1, 2, 3}, {tp(0): 41, tp(1): 7})
    reader.pause(tp(1))  # at a record it cannot read: its partition is followed no further
    table = table_reading(reader, tp(0), tp(1))

    await table._read_new_partitions()

    assert table._partitions == [tp(0), tp(1), tp(2), tp(3)]
    assert reader.assigned == [[tp(0), tp(1), tp(2), tp(3)]]
    assert reader.from_start == [tp(2), tp(3)]
    assert reader.positions == {tp(0): 41, tp(1): 7, tp(2): 0, tp(3): 0}
    assert reader.paused_tps == {tp(1)}


async def test_nothing_changes_while_the_topic_keeps_its_partitions() -> None:
    reader = Reader({0, 1}, {tp(0): 3, tp(1): 4})
    table = table_reading(reader, tp(0), tp(1))
    await table._read_new_partitions()
    reader.listed = set()  # a metadata answer without the topic (deleted, say): kept as read
    await table._read_new_partitions()
    assert reader.assigned == [] and table._partitions == [tp(0), tp(1)]


async def test_partitions_catch_up_found_are_taken_before_the_metadata_lists_them() -> None:
    reader = Reader({0}, {tp(0): 3})
    table = table_reading(reader, tp(0))
    table._found = {tp(1)}  # catch_up() asked the cluster: it must not wait for the refresh
    await table._read_new_partitions()
    assert table._partitions == [tp(0), tp(1)] and reader.from_start == [tp(1)]
    assert table._found == set()

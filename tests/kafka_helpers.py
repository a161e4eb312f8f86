"""Kafka for tests: reading back what a test caused on the topics, exactly (from offsets taken
before to the end), and writing records as a test (or another client library) needs them."""

from __future__ import annotations

import asyncio
import base64
import secrets
import shutil
import subprocess
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import trustme
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, RecordsToDelete
from aiokafka.record.default_records import _DefaultRecordBatchBuilderPy

from switchboard.clients import KafkaTarget
from switchboard.localkafka import BrokerError
from switchboard.producer import DurableProducer
from switchboard.records import OutRecord, dead_letter_record, raw_body
from switchboard.topics import ALL_TOPICS, RAW, TopicSpec, ensure_topics, partitions_of

Offsets = dict[TopicPartition, int]


class TopicWatcher:
    def __init__(self, bootstrap: str, topics: tuple[str, ...] | None = None) -> None:
        self.bootstrap = bootstrap
        self.topics = topics or tuple(spec.name for spec in ALL_TOPICS)
        self._consumer: AIOKafkaConsumer | None = None
        self.partitions: list[TopicPartition] = []

    async def __aenter__(self) -> TopicWatcher:
        self._consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap,
                                          enable_auto_commit=False)
        await self._consumer.start()
        for topic in self.topics:
            for partition in await partitions_of(self.bootstrap, topic):
                self.partitions.append(TopicPartition(topic, partition))
        if not self.partitions:
            await self._consumer.stop()
            raise AssertionError(f"no partitions found for {self.topics}")
        self._consumer.assign(self.partitions)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._consumer is not None
        await self._consumer.stop()

    async def snapshot(self) -> Offsets:
        assert self._consumer is not None
        ends: Offsets = await self._consumer.end_offsets(self.partitions)
        return ends

    async def beginning(self) -> Offsets:
        """The first offset still kept in each partition: `records_since` it reads them all."""
        assert self._consumer is not None
        starts: Offsets = await self._consumer.beginning_offsets(self.partitions)
        return starts

    async def records_since(self, before: Offsets, timeout_s: float = 20.0
                            ) -> dict[str, list[Any]]:
        """Every record appended after `before`, by topic, in partition order."""
        assert self._consumer is not None
        after = await self.snapshot()
        found: dict[str, list[Any]] = defaultdict(list)
        for tp in self.partitions:
            if after[tp] > before[tp]:
                self._consumer.seek(tp, before[tp])
        wanted = {tp: after[tp] for tp in self.partitions if after[tp] > before[tp]}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while wanted and loop.time() < deadline:
            batch = await self._consumer.getmany(*wanted, timeout_ms=500)
            for tp, records in batch.items():
                for record in records:
                    if record.offset < wanted.get(tp, -1):
                        found[tp.topic].append(record)
                if records and records[-1].offset + 1 >= wanted.get(tp, 0):
                    wanted.pop(tp, None)
        assert not wanted, f"records not readable in {timeout_s}s: {wanted}"
        return dict(found)


async def collect_until(watcher: TopicWatcher, before: Offsets,
                        done: Callable[[dict[str, list[Any]]], bool],
                        timeout_s: float = 45.0) -> dict[str, list[Any]]:
    """Re-read everything since `before` until `done` says enough (bounded in time)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    found: dict[str, list[Any]] = {}
    while loop.time() < deadline:
        found = await watcher.records_since(before)
        if done(found):
            return found
        await asyncio.sleep(0.3)
    raise AssertionError(f"condition not met in {timeout_s}s; saw "
                         f"{ {topic: len(records) for topic, records in found.items()} }")


async def raw_message_ids(bootstrap: str) -> set[str]:
    """The Infobip message ids of every raw record on the topic, read up to the end it had
    when asked (bounded in time by `records_since`)."""
    async with TopicWatcher(bootstrap, (RAW.name,)) as watcher:
        found = await watcher.records_since(await watcher.beginning(), timeout_s=60)
    ids: set[str] = set()
    for record in found.get(RAW.name, []):
        body = orjson.loads(raw_body(orjson.loads(record.value)))
        ids.update(r["messageId"] for r in body["results"])
    return ids


async def publish(kafka: KafkaTarget, records: list[OutRecord]) -> None:
    producer = DurableProducer(kafka, timeout_s=15)
    await producer.start()
    try:
        await producer.publish(records)
    finally:
        await producer.stop()


async def publish_worker_letters(bootstrap: str, topic: str, stage: str, count: int) -> None:
    """`count` dead letters of the worker stage `stage` (now), each holding the same record for
    `topic`: a window for replay to work through."""
    payload = {"topic": topic, "value_b64": base64.b64encode(b'{"n": 1}').decode(),
               "key_b64": None, "headers_b64": [["ce_type", base64.b64encode(b"t").decode()]]}
    now = datetime.now(UTC)
    await publish(bootstrap, [dead_letter_record(
        dl_id=str(uuid.uuid4()), stage=f"worker:{stage}", reason="a bug", provider="test",
        account="test", time=now, payload=payload) for _ in range(count)])


async def committed_offset(bootstrap: str, group: str, tp: TopicPartition) -> int | None:
    """The offset `group` has committed for `tp`, None if none: asked of Kafka, not a member."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return offsets[tp].offset if tp in offsets else None


async def new_topic(bootstrap: str, name: str, partitions: int, *,
                    compacted: bool = False) -> str:
    """A topic of one test's own (`test.<name>.<8 random hex>`), created with `partitions`."""
    topic = f"test.{name}.{uuid.uuid4().hex[:8]}"
    config = {"cleanup.policy": "compact"} if compacted else {}
    await ensure_topics(bootstrap, partitions=partitions, replication_factor=1,
                        specs=(TopicSpec(topic, "test", config),))
    return topic


async def add_partitions(bootstrap: str, topic: str, total: int) -> None:
    """What kafka-topics.sh --alter --partitions does."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_partitions({topic: NewPartitions(total_count=total)})
    finally:
        await admin.close()


async def delete_topic(bootstrap: str, topic: str) -> None:
    """What kafka-topics.sh --delete does; a client that knew the topic keeps it in its
    metadata until it refreshes (how a partition without a leader is had with one broker)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([topic])
        # The controller deletes it in a moment: a record sent before that would be stored.
        for _ in range(100):
            if topic not in await admin.list_topics():
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"topic {topic} still listed 10 s after its deletion")
    finally:
        await admin.close()


async def delete_records_below(bootstrap: str, tp: TopicPartition, offset: int) -> None:
    """What kafka-delete-records.sh does, and retention does to a topic's oldest records."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_records({tp: RecordsToDelete(before_offset=offset)})
    finally:
        await admin.close()


async def produce_to_partition(bootstrap: str, topic: str, partition: int,
                               *records: tuple[bytes, bytes]) -> None:
    """(key, value) records, in order, to one partition (a fresh producer sees every one)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(topic, value, key=key, partition=partition)
    finally:
        await producer.stop()


class NotUtf8(str):
    """A header key aiokafka's Python record builder writes as bytes that are not UTF-8, as
    librdkafka or sarama write whatever bytes they are given."""

    def encode(self, *args: Any, **kwargs: Any) -> bytes:
        return b"\xff\xfe"


async def send_python_batch(producer: AIOKafkaProducer, topic: str, partition: int,
                            records: Iterable[tuple[bytes, bytes, list[tuple[str, bytes]]]]
                            ) -> None:
    """(key, value, headers) records as one producer batch, built by aiokafka's Python record
    builder: the one that takes a NotUtf8 header key."""
    batch = producer.create_batch()
    batch._builder = _DefaultRecordBatchBuilderPy(
        2, 0, is_transactional=0, producer_id=-1, producer_epoch=-1, base_sequence=0,
        batch_size=16384)
    for key, value, headers in records:
        batch.append(timestamp=None, key=key, value=value, headers=headers)
    batch.close()
    await (await producer.send_batch(batch, topic, partition=partition))


async def produce_unreadable_to_partition_1(bootstrap: str, topic: str) -> None:
    """Offset 0 alone; then one producer batch of offsets 1, 2 (its header key not UTF-8)
    and 3; then offset 4 alone."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"0", key=b"k", partition=1)
        await send_python_batch(producer, topic, 1, [
            (b"k", str(n).encode(), [(NotUtf8("ce_type") if n == 2 else "ce_type", b"v")])
            for n in (1, 2, 3)])
        await producer.send_and_wait(topic, b"4", key=b"k", partition=1)
    finally:
        await producer.stop()


# --- a broker listener that needs TLS + SASL (LocalKafka's SecuredListener) -------------------


@dataclass(frozen=True)
class ClientCertificate:
    """A client's certificate and key (PEM), and the CA (PEM) that signed it."""

    ca: Path
    certfile: Path
    keyfile: Path


def make_client_certificate(directory: Path) -> ClientCertificate:
    """A throwaway CA and a client certificate it signed (trustme)."""
    directory.mkdir(parents=True, exist_ok=True)
    authority = trustme.CA()
    issued = authority.issue_cert("switchboard-test-client")
    paths = ClientCertificate(directory / "client-ca.pem", directory / "client.pem",
                              directory / "client.key")
    authority.cert_pem.write_to_path(str(paths.ca))
    issued.cert_chain_pems[0].write_to_path(str(paths.certfile))
    issued.private_key_pem.write_to_path(str(paths.keyfile))
    return paths


@dataclass(frozen=True)
class SecuredKafka:
    """How a client reaches the SASL_SSL listener (`bootstrap`) and the listener that wants a
    client certificate (`mtls_bootstrap`): `cafile` verifies the broker's certificate."""

    bootstrap: str
    cafile: Path
    username: str
    password: str
    mtls_bootstrap: str
    client: ClientCertificate


@dataclass(frozen=True)
class BrokerCertificate:
    keystore: Path  # PKCS12: the broker's key and certificate
    keystore_password: str
    cafile: Path  # PEM: the same certificate, for the client to trust


def _keytool() -> str:
    # Prefer the JDK that runs the broker: it must be able to read the keystore keytool writes.
    java = shutil.which("java")
    beside_java = Path(java).resolve().parent / "keytool" if java else None
    if beside_java is not None and beside_java.is_file():
        return str(beside_java)
    keytool = shutil.which("keytool")
    if keytool is None:
        raise BrokerError("keytool (from the JDK that has java) is needed for the TLS test "
                          "listener")
    return keytool


def make_broker_certificate(directory: Path) -> BrokerCertificate:
    """A throwaway self-signed certificate for 127.0.0.1, valid for two days.

    Python's ssl accepts a self-signed leaf as its own trust anchor (checked with OpenSSL 3.0,
    also with VERIFY_X509_STRICT), so no separate CA is needed. The IP subjectAltName is what
    the client's hostname check matches. Two keytool calls, about 0.45 s each (JVM start-up).
    """
    directory.mkdir(parents=True, exist_ok=True)
    keytool = _keytool()
    keystore, cafile = directory / "broker.p12", directory / "ca.pem"
    password = secrets.token_urlsafe(16)
    store = ["-alias", "broker", "-keystore", str(keystore), "-storetype", "PKCS12",
             "-storepass", password]
    for command in (
        ["-genkeypair", *store, "-keyalg", "EC", "-groupname", "secp256r1", "-validity", "2",
         "-dname", "CN=127.0.0.1", "-ext", "san=ip:127.0.0.1"],
        ["-exportcert", *store, "-rfc", "-file", str(cafile)],
    ):
        result = subprocess.run([keytool, *command], capture_output=True, text=True,
                                timeout=60, check=False)
        if result.returncode != 0:
            raise BrokerError(f"keytool {command[0]} failed:\n{result.stdout}{result.stderr}")
    return BrokerCertificate(keystore, password, cafile)

"""One node of three killed (kill -9) mid-traffic, as users run Kafka (3 nodes, each a broker
and a controller, replication factor 3, min.insync.replicas 2): a broker, then the active
controller. Ingest answers only 200 or 503, each within a bound, never 2xx for a webhook Kafka
does not keep; it stores again once the partitions have new leaders, and after the node is
back (in every ISR again).

It also measures, and prints, for how long requests got 503s (or were stored only slowly):
those writing a partition whose leader died, and the others; and, for comparison, how long a
bare aiokafka client's acks=all records waited, in partitions of both kinds. Kafka's settings
are its defaults (a dead broker is fenced, its partitions get new leaders and it leaves every
ISR, after broker.session.timeout.ms, 9 s; the controller's loss adds the election of
another), as is ingest's produce timeout (5 s), so the window printed is what a provider would
see."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2

from switchboard.accounts import parse_accounts
from switchboard.records import conversation_key, raw_body
from switchboard.topics import MESSAGE_STATUS, RAW, TopicSpec, ensure_topics
from tests.integration.conftest import TEST_ACCOUNTS, start_ingest
from tests.integration.processes import LocalCluster, own_cluster
from tests.integration.webhooks import basic
from tests.kafka_helpers import TopicWatcher

PARTITIONS = 6
PRODUCE_TIMEOUT_S = 5.0  # ingest's default
# A request every PERIOD_S, whether the earlier ones are answered or not, as providers send.
PERIOD_S = 0.05
# An answer slower than this is one Kafka kept waiting (they take milliseconds otherwise).
SLOW_S = 1.0
# Bounds, not timings: generous for a noisy 2-core machine.
RECOVERY_BOUND_S = 60.0
ANSWER_BOUND_S = 3 * PRODUCE_TIMEOUT_S
# Stored again: this many requests of each kind answered 200 in a row.
IN_A_ROW = 20

Partition = tuple[str, int]
PROBE = TopicSpec("switchboard.test.acks.v1", "a bare client's records, for comparison")


@pytest.fixture(scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LocalCluster]:
    async with own_cluster(tmp_path_factory.mktemp("cluster"), partitions=PARTITIONS) as nodes:
        yield nodes


def _partition(key: bytes) -> int:
    """The partition DurableProducer (as Java's default partitioner) writes `key` to."""
    return (murmur2(key) & 0x7FFFFFFF) % PARTITIONS


def _accounts() -> list[str]:
    """Infobip accounts whose raw records (keyed by account) go to every raw partition."""
    by_partition: dict[int, str] = {}
    for n in itertools.count():
        name = f"it-cluster-{n}"
        by_partition.setdefault(_partition(f"infobip|{name}".encode()), name)
        if len(by_partition) == PARTITIONS:
            return sorted(by_partition.values())
    raise AssertionError("unreachable")


ACCOUNTS = _accounts()
CONTACTS = [f"4179{n:07d}" for n in range(200)]  # a status event is keyed by its conversation


@dataclass
class Answer:
    message_id: str
    written: tuple[Partition, Partition]  # raw, status
    started: float
    ended: float
    status: int | None  # None: no answer (the client's timeout or a broken connection)
    error: str | None = None  # what the client said instead of an answer


def _report(message_id: str, to: str) -> bytes:
    return orjson.dumps({"results": [{
        "messageId": message_id, "to": to, "sender": "InfoSMS",
        "doneAt": "2026-01-01T10:00:00.000+0000", "messageCount": 1,
        "status": {"groupId": 3, "groupName": "DELIVERED", "id": 5,
                   "name": "DELIVERED_TO_HANDSET", "description": "delivered"},
        "error": {"groupId": 0, "groupName": "OK", "id": 0, "name": "NO_ERROR",
                  "description": "No Error", "permanent": False}}]})


class Providers:
    """Delivery reports posted every PERIOD_S until stopped, each with its own message id,
    spread over the accounts (raw partitions) and conversations (status partitions)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.run = uuid.uuid4().hex[:8]  # the message ids of one test, among the session's
        self.answers: list[Answer] = []
        # Idle connections dropped after 1 s, before uvicorn's keep-alive (5 s) closes them:
        # a request sent on a connection the server is closing at that moment gets no answer
        # (CI saw one after the outage had opened a connection per waiting request), which is
        # the client's race, not ingest's, and a provider's retry covers it.
        self._client = httpx.AsyncClient(
            timeout=2 * ANSWER_BOUND_S,
            limits=httpx.Limits(max_connections=None, keepalive_expiry=1.0))
        self._sending: set[asyncio.Task[None]] = set()
        self._ticker: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Providers:
        self._ticker = asyncio.create_task(self._tick())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._ticker is not None
        self._ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._ticker
        await asyncio.gather(*self._sending)  # each bounded by the client's timeout
        await self._client.aclose()

    async def _tick(self) -> None:
        for n in itertools.count():
            task = asyncio.create_task(self._send(n))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)
            await asyncio.sleep(PERIOD_S)

    async def _send(self, n: int) -> None:
        account, to = ACCOUNTS[n % len(ACCOUNTS)], CONTACTS[(n * 7919) % len(CONTACTS)]
        message_id = f"lost-{self.run}-{n}"
        written = ((RAW.name, _partition(f"infobip|{account}".encode())),
                   (MESSAGE_STATUS.name,
                    _partition(conversation_key("infobip", account, f"+{to}"))))
        started = time.monotonic()
        status: int | None = None
        error: str | None = None
        try:
            status = (await self._client.post(f"{self.base_url}/webhooks/infobip/{account}",
                                              content=_report(message_id, to),
                                              headers=basic())).status_code
        except httpx.TransportError as exc:
            error = repr(exc)
        self.answers.append(Answer(message_id, written, started, time.monotonic(), status,
                                   error))

    def since(self, moment: float, which: Callable[[Answer], bool]) -> list[Answer]:
        """The answers to requests started after `moment`, of the kind `which`, by start."""
        return sorted((a for a in self.answers if a.started > moment and which(a)),
                      key=lambda a: a.started)

    async def stored_again(self, moment: float, kinds: dict[str, Callable[[Answer], bool]]
                           ) -> None:
        """Return once the last IN_A_ROW requests of each kind started after `moment` were
        answered 200; fail after RECOVERY_BOUND_S."""
        deadline = moment + RECOVERY_BOUND_S
        while time.monotonic() < deadline:
            lasts = {name: self.since(moment, which)[-IN_A_ROW:]
                     for name, which in kinds.items()}
            if all(len(last) == IN_A_ROW and {a.status for a in last} == {200}
                   for last in lasts.values()):
                return
            await asyncio.sleep(0.5)
        raise AssertionError(f"not stored again within {RECOVERY_BOUND_S:.0f}s: " + ", ".join(
            f"{name}: {[a.status for a in self.since(moment, which)[-IN_A_ROW:]]}"
            for name, which in kinds.items()))


async def _bare_acks(bootstrap: str, partitions: list[int], stop: asyncio.Event
                     ) -> dict[int, list[tuple[float, float]]]:
    """When a bare aiokafka client (acks=all) writing one record at a time to each of
    `partitions` of PROBE had each acknowledged (or failed): Kafka's own wait, whatever
    DurableProducer makes of it."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                request_timeout_ms=int(2 * RECOVERY_BOUND_S * 1000))
    await producer.start()
    times: dict[int, list[tuple[float, float]]] = {partition: [] for partition in partitions}

    async def write(partition: int) -> None:
        while not stop.is_set():
            started = time.monotonic()
            with contextlib.suppress(KafkaError):
                await producer.send_and_wait(PROBE.name, b"probe", partition=partition)
            times[partition].append((started, time.monotonic()))
            await asyncio.sleep(PERIOD_S)

    try:
        await asyncio.gather(*(write(partition) for partition in partitions))
    finally:
        await producer.stop()
    return times


async def _leaders(bootstrap: str) -> dict[Partition, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([RAW.name, MESSAGE_STATUS.name, PROBE.name])
    finally:
        await admin.close()
    return {(topic["topic"], p["partition"]): p["leader"]
            for topic in described for p in topic["partitions"]}


def _active_controller(cluster: LocalCluster) -> int:
    """The node leading the controller quorum: the newest leader (by epoch) the nodes know of,
    as each last wrote it down."""
    states = [orjson.loads((broker.data_dir / "logs" / "__cluster_metadata-0" /
                            "quorum-state").read_bytes()) for broker in cluster.brokers.values()]
    leader: int = max(states, key=lambda state: state["leaderEpoch"])["leaderId"]
    return leader


def _victim(cluster: LocalCluster, leaders: dict[Partition, int], controller: bool) -> int:
    """The active controller, or a node that is not (whose loss costs a broker's session
    timeout, not a controller election too) leading the most partitions; either leading some
    raw and probe partitions, not all, so that requests of both kinds are seen."""
    active = _active_controller(cluster)
    led = defaultdict(set)
    for partition, leader in leaders.items():
        led[leader].add(partition)
    candidates = [node for node in cluster.brokers if (node == active) == controller
                  and 0 < len({p for p in led[node] if p[0] == RAW.name}) < PARTITIONS
                  and 0 < len({p for p in led[node] if p[0] == PROBE.name}) < PARTITIONS]
    assert candidates, f"no node to kill: controller {active}, leaders {leaders}"
    return max(candidates, key=lambda node: len(led[node]))


async def _in_sync(bootstrap: str, nodes: set[int]) -> None:
    """Return once every replica of the partitions written is in sync again (bounded)."""
    isr: dict[Partition, set[int]] = {}
    deadline = time.monotonic() + RECOVERY_BOUND_S
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        while time.monotonic() < deadline:
            described = await admin.describe_topics([RAW.name, MESSAGE_STATUS.name, PROBE.name])
            isr = {(topic["topic"], p["partition"]): set(p["isr"])
                   for topic in described for p in topic["partitions"]}
            if all(replicas == nodes for replicas in isr.values()):
                return
            await asyncio.sleep(0.5)
    finally:
        await admin.close()
    raise AssertionError(f"not all in sync within {RECOVERY_BOUND_S:.0f}s: {isr}")


async def _stored(bootstrap: str) -> dict[str, dict[str, int]]:
    """Message id -> topic -> the partition its record is in, of every raw and status record."""
    async with TopicWatcher(bootstrap, (RAW.name, MESSAGE_STATUS.name)) as watcher:
        found = await watcher.records_since(await watcher.beginning(), timeout_s=60)
    stored: dict[str, dict[str, int]] = defaultdict(dict)
    for record in found.get(RAW.name, []):
        for result in orjson.loads(raw_body(orjson.loads(record.value)))["results"]:
            stored[result["messageId"]][RAW.name] = record.partition
    for record in found.get(MESSAGE_STATUS.name, []):
        stored[orjson.loads(record.value)["message_id"]][MESSAGE_STATUS.name] = record.partition
    return stored


def _window(name: str, answers: list[Answer], killed_at: float) -> str:
    """How the requests of one kind answered after the kill fared, in seconds from the kill:
    those answered 503, those stored but slowly, and from when all were stored promptly."""
    def span(some: list[Answer]) -> str:
        if not some:
            return "none"
        return (f"{len(some)}, started {min(a.started for a in some) - killed_at:+.1f}"
                f"..{max(a.started for a in some) - killed_at:+.1f}s, answered "
                f"{min(a.ended for a in some) - killed_at:+.1f}"
                f"..{max(a.ended for a in some) - killed_at:+.1f}s")
    refused = [a for a in answers if a.status == 503]
    slow = [a for a in answers if a.status == 200 and a.ended - a.started > SLOW_S]
    troubled = [a.started for a in answers if a.status != 200 or a.ended - a.started > SLOW_S]
    prompt = [a.started for a in answers if troubled and a.started > max(troubled)]
    again = f"{min(prompt) - killed_at:+.1f}s" if prompt else "never"
    return (f"{name}: {len(answers)} requests; 503: {span(refused)}; stored in over "
            f"{SLOW_S:.0f}s: {span(slow)}; all stored promptly from those started {again}")


def _waits(name: str, times: list[tuple[float, float]], killed_at: float) -> str:
    """The longest a bare client's record waited after the kill."""
    started, ended = max(times, key=lambda wait: wait[1] - wait[0] if wait[1] > killed_at
                         else 0)
    return (f"bare acks=all client, partition that {name}: waited at most "
            f"{ended - started:.1f}s (started {started - killed_at:+.1f}s)")


def _said(caplog: pytest.LogCaptureFixture, event: str) -> int:
    return sum(isinstance(r.msg, dict) and r.msg.get("event") == event for r in caplog.records)


@pytest.mark.parametrize("controller", [False, True], ids=["broker", "controller"])
async def test_a_node_killed_gives_503s_then_stores_again_without_loss(
        cluster: LocalCluster, controller: bool, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    accounts = parse_accounts({"accounts": {
        name: TEST_ACCOUNTS["it-infobip"] for name in ACCOUNTS}})
    for node in cluster.brokers.values():  # one an earlier test failed before restarting
        if node.process is None or node.process.poll() is not None:
            node.stop()
            await asyncio.to_thread(node.start)
    await ensure_topics(cluster.bootstrap_servers, partitions=PARTITIONS,
                        replication_factor=len(cluster.brokers), specs=(PROBE,))
    await _in_sync(cluster.bootstrap_servers, set(cluster.brokers))  # after an earlier kill
    leaders = await _leaders(cluster.bootstrap_servers)
    victim = _victim(cluster, leaders, controller)
    broker = cluster.brokers[victim]
    assert broker.process is not None
    probed = {name: min(p for (topic, p), leader in leaders.items()
                        if topic == PROBE.name and (leader == victim) == lost)
              for name, lost in (("lost its leader", True), ("kept its leader", False))}

    def lost_leader(answer: Answer) -> bool:
        return any(leaders[p] == victim for p in answer.written)

    kinds = {"lost its leader": lost_leader,
             "kept its leader": lambda answer: not lost_leader(answer)}
    server, task = await start_ingest(cluster.bootstrap_servers, accounts,
                                      produce_timeout_s=PRODUCE_TIMEOUT_S)
    probing = asyncio.Event()
    bare = asyncio.create_task(_bare_acks(cluster.bootstrap_servers, list(probed.values()),
                                          probing))
    try:
        async with Providers(server.base_url) as providers:
            await asyncio.sleep(3)
            before = list(providers.answers)
            killed_at = time.monotonic()
            os.kill(broker.process.pid, signal.SIGKILL)
            await asyncio.to_thread(broker.process.wait)
            broker.stop()  # reaped: lets its data dir go, for the restart
            await providers.stored_again(killed_at, kinds)
            probing.set()
            acks = await bare

            restarted_at = time.monotonic()
            await asyncio.to_thread(broker.start)
            started_at = time.monotonic()
            await providers.stored_again(started_at, {"all": lambda answer: True})
    finally:
        probing.set()
        await asyncio.gather(bare, return_exceptions=True)
        server.server.should_exit = True
        await task

    answers = providers.answers
    after_kill = [a for a in answers if a.ended > killed_at and a.started < restarted_at]
    slowest = max(answers, key=lambda a: a.ended - a.started)
    lines = [f"{'controller' if controller else 'broker'} {victim} of {len(cluster.brokers)} "
             "killed; leader of "
             f"{sorted(p for p, leader in leaders.items() if leader == victim)}",
             *(_window(name, [a for a in after_kill if which(a)], killed_at)
               for name, which in kinds.items()),
             *(_waits(name, acks[partition], killed_at) for name, partition in probed.items()),
             f"ingest logged: {_said(caplog, 'kafka is not taking records')} outage, "
             f"{_said(caplog, 'replacing the kafka client')} client replacements",
             f"slowest answer {slowest.ended - slowest.started:.1f}s; "
             f"restart took {started_at - restarted_at:.1f}s; "
             f"{sum(a.status == 503 for a in answers if a.ended > restarted_at)} requests "
             f"answered 503 since"]
    with capsys.disabled():
        print("\n" + "\n".join(f"broker lost: {line}" for line in lines))

    assert {a.status for a in before} == {200}, "the cluster was not taking webhooks"
    assert {a.status for a in answers} <= {200, 503}, \
        f"only success or retry-later: {[a for a in answers if a.status not in (200, 503)]}"
    assert slowest.ended - slowest.started < ANSWER_BOUND_S, slowest
    for name, which in kinds.items():
        assert any(which(a) for a in after_kill), f"no request that {name}"

    stored = await _stored(cluster.bootstrap_servers)
    acknowledged = [a for a in answers if a.status == 200]
    missing = [a.message_id for a in acknowledged
               if set(stored.get(a.message_id, {})) != {RAW.name, MESSAGE_STATUS.name}]
    assert not missing, f"2xx but not in Kafka: {missing}"
    # The partitions each request was counted by are the ones its records are in.
    assert all(stored[a.message_id] == dict(a.written) for a in acknowledged)
    await _in_sync(cluster.bootstrap_servers, set(cluster.brokers))  # the node caught up

"""What a worker's /readyz and log say of commits that fail, by what Kafka answered them with.
A refusal (an ACL revoked, a commit Kafka will not take) is its answer, to fix in Kafka: said by
aiokafka's error class, not as `Kafka unreachable`, which sent the operator to the network. No
answer stays `Kafka unreachable`. A commit refused because the group rebalanced is normal and
an answer: neither. Over a consumer stand-in raising aiokafka's errors (no broker)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from aiokafka.errors import (
    CommitFailedError,
    GroupAuthorizationFailedError,
    GroupCoordinatorNotAvailableError,
    IllegalGenerationError,
    IllegalStateError,
    InvalidCommitOffsetSizeError,
    KafkaConnectionError,
    OffsetMetadataTooLargeError,
    RebalanceInProgressError,
    TopicAuthorizationFailedError,
    UnknownMemberIdError,
)

from consumers.health import WorkerHealth, serve_worker_http
from consumers.runtime import WorkerRuntime
from switchboard.localkafka import free_port
from tests.unit.fake_consumers import Group
from tests.unit.test_runtime_kafka_silent_log import _said
from tests.unit.test_runtime_readiness import (
    SILENT_S,
    TP,
    _problems_for,
    _ready_again,
    _running,
    _worker,
    group,  # noqa: F401 - the fixture
)


def _failing_commits(consumer: Group, runtime: WorkerRuntime, error: Exception) -> None:
    """Records done and to be committed, the partition paused (every slot busy: no fetch
    tells of Kafka), each commit failing with `error`."""
    consumer.answer()
    consumer.pause(TP)
    consumer.commit_error = error
    runtime._fetched[TP] = 5


@pytest.mark.parametrize("refusal", [
    GroupAuthorizationFailedError("switchboard-test"),  # the group's ACL revoked
    TopicAuthorizationFailedError({"t"}),
    OffsetMetadataTooLargeError(),
    InvalidCommitOffsetSizeError(),
], ids=lambda refusal: type(refusal).__name__)
async def test_commits_kafka_refuses_are_said_as_its_answer(
        group: Group, caplog: pytest.LogCaptureFixture,  # noqa: F811
        refusal: Exception) -> None:
    caplog.set_level("INFO")
    async with _worker(group) as runtime:
        await group.assign({TP})
        _failing_commits(group, runtime, refusal)
        await asyncio.sleep(SILENT_S + 0.2)
        problem = runtime.problem() or ""
        name = type(refusal).__name__
        assert problem.startswith(f"Kafka refused the commits: {name} (for "), problem
        said = _said(caplog, "kafka refuses the worker's commits")
        assert len(said) == 1 and said[0]["reason"] == problem, said
        assert not _said(caplog, "kafka is not answering the worker")
        group.commit_error = None  # the ACL granted again
        await _ready_again(runtime)
        assert len(_said(caplog, "kafka takes the worker's commits again")) == 1
        assert not _said(caplog, "kafka answers the worker again")


async def test_the_probe_says_the_refusal_by_its_class_name_only(
        group: Group) -> None:  # noqa: F811
    # Served as a worker serves it: the group's name, in aiokafka's text of the error, is not
    # for whoever reaches the port.
    runtime, running = await _running(group)
    health = WorkerHealth()
    health.readiness = runtime.problem
    port = free_port()
    server = serve_worker_http(health, "127.0.0.1", port)
    try:
        await group.assign({TP})
        _failing_commits(group, runtime, GroupAuthorizationFailedError("switchboard-secret-group"))
        await asyncio.sleep(SILENT_S + 0.2)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            answer = await client.get("/readyz")
        assert answer.status_code == 503
        reason = answer.json()["reason"]
        assert reason.startswith("Kafka refused the commits: GroupAuthorizationFailedError"), (
            reason)
        assert "secret" not in reason
    finally:
        server.shutdown()
        server.server_close()
        runtime.stop()
        await asyncio.wait_for(running, 5)


@pytest.mark.parametrize("unanswered", [
    TimeoutError(),  # aiokafka retried it until our time limit (consumers.commits)
    KafkaConnectionError("connection closed"),
    GroupCoordinatorNotAvailableError(),
], ids=lambda error: type(error).__name__)
async def test_commits_kafka_does_not_answer_are_said_as_kafka_unreachable(
        group: Group, caplog: pytest.LogCaptureFixture,  # noqa: F811
        unanswered: Exception) -> None:
    caplog.set_level("INFO")
    async with _worker(group) as runtime:
        await group.assign({TP})
        _failing_commits(group, runtime, unanswered)
        await asyncio.sleep(SILENT_S + 0.2)
        problem = runtime.problem() or ""
        assert problem.startswith("Kafka unreachable: commits failing for "), problem
        assert len(_said(caplog, "kafka is not answering the worker")) == 1


async def test_a_refusal_then_silence_is_said_each_time_without_turning_ready_between(
        group: Group, caplog: pytest.LogCaptureFixture) -> None:  # noqa: F811
    caplog.set_level("INFO")
    async with _worker(group) as runtime:
        await group.assign({TP})
        _failing_commits(group, runtime, TopicAuthorizationFailedError({"t"}))
        await asyncio.sleep(SILENT_S + 0.2)
        group.commit_error = TimeoutError()  # the broker then goes silent
        seen = await _problems_for(runtime, SILENT_S)
        assert None not in seen, seen
        assert (runtime.problem() or "").startswith("Kafka unreachable: commits failing for ")
        assert len(_said(caplog, "kafka refuses the worker's commits")) == 1
        assert len(_said(caplog, "kafka is not answering the worker")) == 1


@pytest.mark.parametrize("rebalanced", [
    CommitFailedError(),  # aiokafka's for the next three
    RebalanceInProgressError(),
    IllegalGenerationError(),
    UnknownMemberIdError(),
    IllegalStateError("Partition t-0 is not assigned"),  # taken away before it was sent
], ids=lambda error: type(error).__name__)
async def test_commits_refused_for_a_rebalance_leave_a_worker_ready(
        group: Group, caplog: pytest.LogCaptureFixture,  # noqa: F811
        rebalanced: Exception) -> None:
    # Kafka answered: the group moved on, the records come back to their next owner. They
    # counted as commits failing, said `Kafka unreachable` once they had lasted 30 s; a running
    # worker was spared it by the rebalance that follows (its revoke leaves nothing to commit,
    # which ends the count: the next test), not because they were told apart.
    caplog.set_level("INFO")
    async with _worker(group) as runtime:
        await group.assign({TP})
        _failing_commits(group, runtime, rebalanced)
        assert await _problems_for(runtime, 3 * SILENT_S) == {None}
        assert not _said(caplog, "kafka is not answering the worker")
        assert _said(caplog, "commit failed")  # the log still says each kind


async def test_a_rebalance_longer_than_the_silence_after_a_refused_commit_stays_ready(
        group: Group) -> None:  # noqa: F811
    # The commit of the partitions taken away refused (the group moved on without this
    # member), the rebalance then lasting longer than KAFKA_SILENT_AFTER_S: ready throughout,
    # and once it ends.
    async with _worker(group) as runtime:
        await group.assign({TP})
        assert group.listener is not None
        group.answer()
        runtime._fetched[TP] = 5
        group.commit_error = CommitFailedError()
        await group.listener.on_partitions_revoked([TP])
        group.assigned = set()
        assert await _problems_for(runtime, 2 * SILENT_S) == {None}
        group.commit_error = None
        group.assigned = {TP}
        await group.listener.on_partitions_assigned([TP])
        assert runtime._kafka_unanswered(group) is None
        assert await _problems_for(runtime, 2 * SILENT_S, group) == {None}

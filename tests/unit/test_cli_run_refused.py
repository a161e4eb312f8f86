"""`switchboard run` on a cluster of the user's whose ACLs refuse its workers their group or a
topic: one error line and exit 1, as `worker` says it, not a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import GroupAuthorizationFailedError, TopicAuthorizationFailedError

from switchboard.cli.run import _prepare, _run_services
from switchboard.settings import Settings

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("refusal", [
    GroupAuthorizationFailedError("switchboard-sender"),
    TopicAuthorizationFailedError({"switchboard.outbound.v1"}),
], ids=["group", "topic"])
def test_kafka_refusing_run_s_workers_is_one_error_line(
        refusal: Exception, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # What a worker's start raises when an ACL is missing (run_all raises what a worker
    # failed with): it went out as an unexpected error, level critical, with its traceback.
    async def refused(*args: Any, **kwargs: Any) -> None:
        raise refusal

    monkeypatch.setattr("switchboard.runall.run_all", refused)
    monkeypatch.chdir(REPO)  # the demo accounts
    demo = _prepare(Settings())
    assert demo is not None
    assert _run_services(demo, "127.0.0.1:9092", None) == 1
    captured = capsys.readouterr()
    assert captured.err == (f"error: Kafka refused run's workers: {refusal} (the ACLs of its "
                            "Kafka user do not allow it)\n")

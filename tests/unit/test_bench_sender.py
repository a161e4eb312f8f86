"""The consume rates the sender benchmark compares: both sides timed the same way."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from bench.sender import Throughput, result_statuses
from switchboard.commands import OutboundResult, ResultStatus


def test_the_rate_runs_from_the_first_record_to_the_last() -> None:
    throughput = Throughput()
    throughput.add(0, 5.0)  # the group join: nothing yet, and not timed
    throughput.add(500, 10.0)
    throughput.add(500, 10.5)
    throughput.add(0, 11.0)
    throughput.add(1000, 12.0)
    assert throughput.seen == 2000
    assert throughput.rate() == 750.0  # the 1,500 after the first batch, in 2 s


def test_one_record_at_a_time_as_a_handler_counts_them() -> None:
    throughput = Throughput()
    for n in range(11):
        throughput.add(1, 100.0 + n / 10)
    assert math.isclose(throughput.rate(), 10.0)


def test_too_few_batches_give_no_rate() -> None:
    assert math.isnan(Throughput().rate())
    once = Throughput()
    once.add(3000, 1.0)
    assert math.isnan(once.rate())


def test_results_are_told_apart_by_status() -> None:
    now = datetime.now(UTC)
    results = [OutboundResult(command_id=f"c{n}", account="bench-infobip", provider="infobip",
                              to="+41790000000", status=status, attempts=1, completed_at=now)
               for n, status in enumerate([ResultStatus.ACCEPTED, ResultStatus.FAILED,
                                           ResultStatus.ACCEPTED])]
    assert result_statuses(r.to_json() for r in results) == {"accepted": 2, "failed": 1}

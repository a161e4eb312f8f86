"""How the ingest benchmark starts and stops its servers (the measuring is in loadgen)."""

from __future__ import annotations

import math
import signal
import subprocess
import sys

from bench.ingest import ceiling_command, throughput_ratio
from bench.loadgen import LoadResult
from switchboard.localkafka import stop_process


def test_the_ceiling_runs_as_many_processes_as_ingest() -> None:
    command = ceiling_command(8000, 2)
    assert command[command.index("--workers") + 1] == "2"
    assert "--no-access-log" in command
    assert command[command.index("--host") + 1] == "127.0.0.1"


def test_a_server_that_ignores_sigterm_is_killed() -> None:
    stubborn = subprocess.Popen(
        [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, "
         "signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE)
    try:
        assert stubborn.stdout is not None
        assert stubborn.stdout.readline() == b"ready\n"
        stop_process(stubborn, 0.2)
        assert stubborn.returncode == -signal.SIGKILL
    finally:
        stubborn.kill()
        stubborn.wait()
        if stubborn.stdout is not None:
            stubborn.stdout.close()


def test_the_ratio_is_full_over_ceiling_in_2xx_answers() -> None:
    full = LoadResult(statuses={200: 1000, 503: 1000}, duration_s=1.0)
    ceiling = LoadResult(statuses={200: 4000}, duration_s=1.0)
    assert throughput_ratio(full, ceiling) == 0.25


def test_a_ceiling_without_2xx_answers_gives_no_ratio() -> None:
    full = LoadResult(statuses={200: 1000}, duration_s=1.0)
    assert math.isnan(throughput_ratio(full, LoadResult(statuses={404: 10}, duration_s=1.0)))

"""With `serve --workers N`, /readyz speaks for every process, not only for the one asked.

Each probe reaches one process at random; a process that had connected to Kafka would say
"ready" while its sibling is still connecting and answers webhooks with 503. So processes
mark themselves connected with a file in the directory they already share for metrics, and
any of them answers for all.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from switchboard.serving import MULTIPROCESS_DIR_ENV

# In that directory: how many processes `serve` started, and a file per connected process.
PROCESS_COUNT_FILE = "ingest-processes"
CONNECTED_PREFIX = "ingest-connected-"


class SiblingProcesses:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._mark = directory / f"{CONNECTED_PREFIX}{os.getpid()}"

    @classmethod
    def from_environment(cls) -> SiblingProcesses | None:
        """Set up by `serve` only when it starts several processes."""
        directory = os.environ.get(MULTIPROCESS_DIR_ENV)
        if not directory or not (Path(directory) / PROCESS_COUNT_FILE).is_file():
            return None
        return cls(Path(directory))

    def connected(self) -> None:
        self._mark.touch()

    def disconnected(self) -> None:
        self._mark.unlink(missing_ok=True)

    def problem(self) -> str | None:
        try:
            expected = int((self.directory / PROCESS_COUNT_FILE).read_text())
        except (OSError, ValueError):
            return "cannot read how many ingest processes there are"
        connected = sum(1 for mark in self.directory.glob(f"{CONNECTED_PREFIX}*")
                        if _alive(mark.name.removeprefix(CONNECTED_PREFIX)))
        if connected < expected:
            return f"{connected} of {expected} ingest processes connected to Kafka"
        return None


def _alive(pid: str) -> bool:
    """Marks of processes that died (and were replaced) are left behind: skip them."""
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, only not ours to signal
        pass
    return True


def write_process_count(directory: Path, count: int) -> None:
    (directory / PROCESS_COUNT_FILE).write_text(str(count))
    for mark in directory.glob(f"{CONNECTED_PREFIX}*"):  # a reused directory's old marks
        with contextlib.suppress(OSError):
            mark.unlink()

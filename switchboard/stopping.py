"""The signals that stop a long-running command cleanly, as Ctrl-C does."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable

from switchboard.logs import get_logger

log = get_logger(__name__)

# SIGHUP too: it comes when the terminal (or ssh session) a command runs in is closed, and by
# default ends the process as a kill would, with nothing finished or said.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def stop_signals() -> list[signal.Signals]:
    """STOP_SIGNALS, without SIGHUP when it is ignored: started under `nohup`, which asks for
    the command to run on once its terminal is gone. Ask before taking SIGHUP over."""
    hup_ignored = signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    return [signum for signum in STOP_SIGNALS if not (hup_ignored and signum == signal.SIGHUP)]


class StopThenForce:
    """A stop signal's handler: the first asks for a clean stop (what started is finished and
    committed), a second ends the process at once, as people expect of a second Ctrl-C. A
    clean stop can take long (a handler in flight, a commit Kafka does not answer, leaving a
    group whose coordinator is gone) and only SIGKILL ended it. Ended so, what was not
    committed is handled again at the next start, as after a crash."""

    def __init__(self, stop: Callable[[], None], *, worker: str,
                 end: Callable[[int], object] = os._exit) -> None:
        self._stop = stop
        self._worker = worker
        self._end = end
        self._asked = False

    def __call__(self, signum: int) -> None:
        if not self._asked:
            self._asked = True
            self._stop()
            return
        log.warning("second stop signal: exiting now, not finishing or committing what "
                    "started (handled again at the next start)", worker=self._worker,
                    signal=signal.Signals(signum).name)
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        self._end(128 + signum)

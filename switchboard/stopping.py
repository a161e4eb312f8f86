"""The signals that stop a long-running command cleanly, as Ctrl-C does."""

from __future__ import annotations

import signal

# SIGHUP too: it comes when the terminal (or ssh session) a command runs in is closed, and by
# default ends the process as a kill would, with nothing finished or said.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def stop_signals() -> list[signal.Signals]:
    """STOP_SIGNALS, without SIGHUP when it is ignored: started under `nohup`, which asks for
    the command to run on once its terminal is gone. Ask before anything takes SIGHUP over
    (the keyword bot does as it starts, to reload its rules)."""
    hup_ignored = signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    return [signum for signum in STOP_SIGNALS if not (hup_ignored and signum == signal.SIGHUP)]

"""What a command run in the test's own event loop (`switchboard tail`) printed, kept line by
line: `capsys.readouterr()` hands over only what came since its last call, and a test that
waits for a line reads many times."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest


@dataclass
class Printed:
    """stdout and stderr so far, as lists of lines."""

    capsys: pytest.CaptureFixture[str]
    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)

    def read(self) -> None:
        """Adds what was printed since the last read."""
        captured = self.capsys.readouterr()
        self.out.extend(captured.out.splitlines())
        self.err.extend(captured.err.splitlines())

    def said(self, start: str) -> list[str]:
        """The stderr lines read so far that begin with `start`."""
        return [line for line in self.err if line.startswith(start)]

    def has_said(self, start: str) -> bool:
        """Reads, then whether a stderr line begins with `start`: a check for `until`."""
        self.read()
        return bool(self.said(start))

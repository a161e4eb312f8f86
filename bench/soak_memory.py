"""What a soak (bench.soak) reads of each process it runs: RSS and CPU from /proc every
SAMPLE_S, and, for the processes SOAK_TRACEMALLOC names, tracemalloc snapshots at the quarter
mark and at the end and the allocation sites that grew between; each printed as the run ends.
Kept apart from the soak itself, which runs the system, offers the load and checks that
nothing was lost: this knows nothing of Switchboard, only of processes by their pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from bench.served import _cpu_s

SAMPLE_S = 15.0
TRACE_ENV = "SOAK_TRACEMALLOC"
# Imported by the traced children (PYTHONPATH): SIGUSR2 dumps a tracemalloc snapshot.
SITECUSTOMIZE = """
import os, signal, tracemalloc
if tracemalloc.is_tracing() and os.environ.get("SOAK_SNAPSHOT_DIR"):
    _taken = [0]
    def _dump(signum, frame):
        _taken[0] += 1
        path = os.path.join(os.environ["SOAK_SNAPSHOT_DIR"], f"{os.getpid()}-{_taken[0]}")
        tracemalloc.take_snapshot().dump(path + ".part")
        os.rename(path + ".part", path)
    signal.signal(signal.SIGUSR2, _dump)
"""


class Offering(Protocol):
    """The load as Samples reads it (bench.soak.Offered): the requests offered so far."""

    requests: int


def status_kb(pid: int | str, field: str) -> int | None:
    """A size field of /proc/PID/status (VmRSS: resident now; VmHWM: its peak) in KiB; None
    once the process is gone. `pid` may be "self"."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_mb(pid: int) -> float | None:
    kb = status_kb(pid, "VmRSS")
    return None if kb is None else kb / 1024


def broker_pid(workdir: Path) -> int | None:
    """The local broker's JVM (its command line names our work directory), if we started it."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"kafka.Kafka" in cmdline and str(workdir).encode() in cmdline:
                return int(entry.name)
    return None


def cpu_s(pid: int) -> float | None:
    try:
        return _cpu_s(pid)
    except OSError:
        return None


@dataclass
class Samples:
    """RSS (MB) of each process every SAMPLE_S, with the requests offered by then; and the
    CPU seconds each had used, and when (which process is short of CPU, at this rate?)."""

    pids: dict[str, int]
    rows: list[tuple[int, dict[str, float | None]]] = field(default_factory=list)
    cpu: list[tuple[float, dict[str, float | None]]] = field(default_factory=list)

    def take(self, offered: Offering) -> None:
        self.rows.append((offered.requests, {name: rss_mb(pid) for name, pid in
                                             self.pids.items()}))
        self.cpu.append((time.monotonic(), {name: cpu_s(pid) for name, pid in
                                            self.pids.items()}))

    async def every(self, offered: Offering, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.take(offered)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SAMPLE_S)

    def table(self, quarter: int) -> str:
        """Per process: RSS at the quarter mark (row index) and at the end, the growth."""
        (start_n, first), (end_n, last) = self.rows[quarter], self.rows[-1]
        (began, cpu_first), (ended, cpu_last) = self.cpu[quarter], self.cpu[-1]
        lines = [f"{'process':10} {'RSS 1/4':>8} {'RSS end':>8} {'growth':>7} "
                 f"{'MB/10k req':>10} {'CPU %':>5}   RSS every {SAMPLE_S:.0f} s (MB)"]
        for name in self.pids:
            a, b = first[name], last[name]
            used, was = cpu_last[name], cpu_first[name]
            busy = (used - was) / max(ended - began, 1e-9) * 100 if used and was else 0.0
            series = " ".join("-" if row[name] is None else f"{row[name]:.0f}"
                              for _, row in self.rows)
            if a is None or b is None:
                lines.append(f"{name:10} {'gone':>8}   {series}")
                continue
            per_10k = (b - a) / max(end_n - start_n, 1) * 10_000
            lines.append(f"{name:10} {a:8.1f} {b:8.1f} {b - a:+7.1f} {per_10k:+10.2f} "
                         f"{busy:5.0f}   {series}")
        return "\n".join(lines)


class Tracer:
    """SOAK_TRACEMALLOC's processes: run with tracemalloc, snapshots on SIGUSR2."""

    def __init__(self, workdir: Path) -> None:
        self.names = {n.strip() for n in os.environ.get(TRACE_ENV, "").split(",") if n.strip()}
        self.dir = workdir / "snapshots"
        self.dir.mkdir()
        (self.dir / "sitecustomize.py").write_text(SITECUSTOMIZE)

    def env(self, name: str) -> dict[str, str]:
        if name not in self.names:
            return {}
        path = os.pathsep.join(filter(None, [str(self.dir), os.environ.get("PYTHONPATH")]))
        return {"PYTHONTRACEMALLOC": "1", "PYTHONPATH": path,
                "SOAK_SNAPSHOT_DIR": str(self.dir)}

    async def snapshot(self, pids: dict[str, int], number: int) -> None:
        traced = [pid for name, pid in pids.items() if name in self.names]
        for pid in traced:
            os.kill(pid, signal.SIGUSR2)
        for _ in range(120):  # a large heap takes a while to snapshot
            if all((self.dir / f"{pid}-{number}").exists() for pid in traced):
                return
            await asyncio.sleep(1)

    def report(self, pids: dict[str, int], requests: int) -> None:
        skip = (tracemalloc.Filter(False, tracemalloc.__file__),
                tracemalloc.Filter(False, "<frozen importlib._bootstrap*>"))
        for name, pid in pids.items():
            paths = [self.dir / f"{pid}-{n}" for n in (1, 2)]
            if name not in self.names or not all(p.exists() for p in paths):
                continue
            first, last = (tracemalloc.Snapshot.load(str(p)).filter_traces(skip) for p in paths)
            print(f"\n{name}: allocation sites grown from the quarter mark to the end "
                  f"({requests} requests offered between; a traced process's RSS is no "
                  "measure: tracemalloc and its snapshots take memory)")
            for stat in last.compare_to(first, "lineno")[:12]:
                frame = stat.traceback[0]
                where = "/".join(Path(frame.filename).parts[-2:])
                print(f"  {stat.size_diff / 1e6:+7.2f} MB {stat.count_diff:+8d} blocks "
                      f"({stat.size_diff / max(requests, 1):+6.0f} B/request)  "
                      f"{where}:{frame.lineno}")

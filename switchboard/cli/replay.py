"""`switchboard replay`: publish again what dead letters (or raw requests) stand for."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from switchboard.cli.replay_options import (
    continuing,
    parse_after,
    parse_reasons,
    parse_stages,
    parse_window,
)
from switchboard.cli.startup import (
    NoAnswer,
    cannot_reach_kafka,
    drop_stdout,
    named_cluster,
    reach_kafka,
)
from switchboard.settings import Settings
from switchboard.stopping import stop_signals

# How often replay looks whether the reader of its output has gone (tail: once a second).
READER_CHECK_S = 0.5


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    """Exit 0 when every selected letter was replayed, 3 when some still fail, were skipped
    or an asked-for id was not found, 1 when Kafka failed, 2 for bad arguments, 128 + the
    signal when stopped (Ctrl-C, SIGTERM, SIGHUP) before the end of the window, 141 (as for
    SIGPIPE) when the reader of its output went away before it."""
    from aiokafka.errors import KafkaConnectionError, KafkaError

    from ingest.kept import Selection
    from ingest.replay import Summary, replay
    from ingest.replayer import ReplayError

    bootstrap = named_cluster(settings)
    if bootstrap is None:
        return 2
    try:
        since_ms, until_ms = parse_window(args)
        stages = parse_stages(args.stage)
        reasons = parse_reasons(args.reason, args.source)
        after = parse_after(args.after)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    selection = Selection(providers=frozenset(args.provider), accounts=frozenset(args.account),
                          stages=stages, ids=frozenset(args.id), reasons=reasons)

    stopped_by: list[signal.Signals] = []
    stop = asyncio.Event()
    output = _Output(stop)
    # Where it got to in each partition, kept up to date as letters are reported: what the
    # line saying how to continue gives `--after` when it stops before the end of the window.
    settled = dict(after)

    def to_continue() -> None:
        """Said once it got somewhere: before that, the command as given continues it."""
        if settled != after and not args.dry_run:
            print("to continue where it stopped, without publishing again what it published: "
                  f"{continuing(args, since_ms, until_ms, settled)}", file=sys.stderr)

    async def until_stopped() -> Summary:
        loop = asyncio.get_running_loop()
        # Ctrl-C, a supervisor's stop, the terminal closing (unless under `nohup`: a long
        # replay left to run on after logging out): each stops it after the letters in hand.
        signals = stop_signals()

        def stopping(signum: signal.Signals) -> None:
            stopped_by.append(signum)
            stop.set()
            for each in signals:  # a second one stops at once (Ctrl-C: KeyboardInterrupt)
                loop.remove_signal_handler(each)

        for signum in signals:
            loop.add_signal_handler(signum, stopping, signum)
        watching = asyncio.create_task(output.watch())
        try:
            if not await _reached(settings, stop):
                return Summary(stopped=True)  # nothing read, nothing published
            return await replay(
                settings.kafka_connection(), source=args.source, since_ms=since_ms,
                until_ms=until_ms, selection=selection, dry_run=args.dry_run,
                include_old=args.include_old, emit=output.emit, stop=stop,
                progress=_reading, after=after, settled=settled)
        finally:
            watching.cancel()
            if not stopped_by:
                for signum in signals:
                    loop.remove_signal_handler(signum)

    try:
        summary = asyncio.run(until_stopped())
    except (KafkaConnectionError, NoAnswer) as exc:
        print(cannot_reach_kafka(bootstrap, exc), file=sys.stderr)
        to_continue()
        return 1
    except (KafkaError, ReplayError) as exc:
        print(f"error: {exc or type(exc).__name__}", file=sys.stderr)
        to_continue()
        return 1
    except KeyboardInterrupt:
        print(_interrupted(output.written, dry_run=args.dry_run), file=sys.stderr)
        to_continue()
        return 130
    counts = summary.counts
    done = counts.get("replayed", 0) + counts.get("replayable", 0)
    total = sum(counts.values())
    verb = "would replay" if args.dry_run else "replayed"
    print(f"{verb} {done} of {total} ({summary.records} records); "
          f"{counts.get('failing', 0)} still fail, {counts.get('skipped', 0)} skipped",
          file=sys.stderr)
    if total == 0 and summary.unselected:
        print(none_selected(summary.unselected, summary.unselected_accounts), file=sys.stderr)
    if summary.unreadable:
        print(f"{summary.unreadable} records in the window could not be read as "
              f"{args.source} records and were left alone", file=sys.stderr)
    lost = output.lost(stopped=summary.stopped)
    if stopped_by:
        print(_stopped(stopped_by[0], dry_run=args.dry_run), file=sys.stderr)
    if lost:  # after a signal's line: only what became of the lines
        print(output.gone_after(stopped=summary.stopped and not stopped_by,
                                dry_run=args.dry_run), file=sys.stderr)
    if summary.stopped:
        to_continue()
    if stopped_by:
        return 128 + stopped_by[0]
    if lost:
        return 128 + signal.SIGPIPE  # as tail, and as a tool SIGPIPE killed
    if summary.ids_left_out:
        print(_left_out(summary.ids_left_out), file=sys.stderr)
    if summary.ids_not_found:
        print(f"not found in the window: {', '.join(summary.ids_not_found)}", file=sys.stderr)
        print(_which_id(args.source), file=sys.stderr)
    missed = summary.ids_not_found or summary.ids_left_out
    return 0 if done == total and not missed else 3


def _left_out(ids: dict[str, list[str]]) -> str:
    """An --id whose letter the other filters left out is in the window: said so, with the
    filters, not "not found" and a hint about ids that sent one looking for another id."""
    named = ", ".join(f"{kept_id} (by {', '.join(f'--{name}' for name in filters)})"
                      for kept_id, filters in ids.items())
    return f"in the window, but left out by the other filters: {named}"


def _which_id(source: str) -> str:
    """Ingest logs two ids for a webhook it dead-letters, and the events carry a raw_id: the
    other one, given to --id, was "not found" with nothing said of why."""
    if source == "raw":
        return ("hint: with --source raw, --id takes a raw_id; a dead letter's "
                "dead_letter_id is replayed without --source raw")
    return ("hint: --id takes a dead letter's dead_letter_id (its log line's); a raw_id "
            "(ingest's line's raw_id, an event's) needs --source raw and a --since before it")


# A window may hold letters of many accounts: the most frequent are named, then how many more.
SHOWN_ACCOUNTS = 10
EMPTY_NAME = '""'


def none_selected(stages: dict[str, int], accounts: dict[str, int]) -> str:
    """Said when the filters matched no letter of a window that has some: a stage or account
    misspelt reads otherwise as a clean "0 of 0". Every stage is named (an install has a few:
    normalize, one per worker); accounts may be many, so the most frequent ones."""
    return (f"no letter matched the filters; the window holds {sum(stages.values())} "
            f"other letters, by stage: {_by_count(stages)}; by account: "
            f"{_by_count(accounts, most=SHOWN_ACCOUNTS)}")


def _by_count(counts: dict[str, int], most: int | None = None) -> str:
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    # An empty name (a letter written without an account) shown as such, not as nothing.
    shown = ", ".join(f"{_printable(name) or EMPTY_NAME} ({count})"
                      for name, count in ranked[:most])
    if most is not None and len(ranked) > most:
        shown += f" and {len(ranked) - most} more"
    return shown


def _printable(name: str) -> str:
    """A name a letter gives, escaped where it is not printable: a sender's letter takes its
    account from the command's headers, which the command's producer wrote, and an escape
    sequence written as it is would clear or retitle the operator's terminal."""
    return name if name.isprintable() else repr(name)[1:-1]


class _Output:
    """Where the letters' lines go: stdout, until its reader goes away (`replay | head`).
    Then replay stops as it does on a signal, and what it published is said on stderr: the
    lines are the only report of what was replayed, and replaying a letter again publishes
    it twice."""

    def __init__(self, stop: asyncio.Event) -> None:
        self._stop = stop
        self.reported = 0  # letters done (published, unless a dry run): each given a line
        self.written = 0  # of those lines, the ones that reached the reader
        self.gone = False

    def emit(self, line: bytes) -> None:
        self.reported += 1
        if self.gone:
            return
        try:
            sys.stdout.buffer.write(line + b"\n")
            sys.stdout.flush()
        except BrokenPipeError:
            self._lost()
            return
        self.written += 1

    async def watch(self) -> None:
        """Polled, as tail does: a reader may go while replay reads a long window in which
        nothing matches, and with no line to write it would read (and publish) on for
        nobody."""
        from switchboard.tail import reader_gone

        while not self.gone:
            if reader_gone():
                self._lost()
                return
            await asyncio.sleep(READER_CHECK_S)

    def _lost(self) -> None:
        self.gone = True
        drop_stdout()
        self._stop.set()

    def lost(self, *, stopped: bool) -> bool:
        """Whether its reader's going cost anything: lines, or the rest of the window."""
        return self.gone and (stopped or self.written < self.reported)

    def gone_after(self, *, stopped: bool, dry_run: bool) -> str:
        """What became of the letters whose lines could not be written, and of the rest."""
        said = (f"{'stopped: ' if stopped else ''}the reader of its output has gone, after "
                f"{self.written} of its lines")
        if dry_run:
            return f"{said}; nothing was published"
        if unseen := self.reported - self.written:
            said += (f"; the {unseen} letters after them were replayed all the same (counted "
                     "above)")
        if not stopped:
            return said
        return (f"{said}{', and no other was' if unseen else '; no other letter was'} "
                "published")


async def _reached(settings: Settings, stop: asyncio.Event) -> bool:
    """Whether Kafka answered before a stop: Ctrl-C while connecting ends replay at once,
    not once the connect timeout is over."""
    reaching = asyncio.ensure_future(reach_kafka(settings.kafka_connection(), "replay"))
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([reaching, stopping], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not reaching.done():
            reaching.cancel()
            await asyncio.wait([reaching])  # its client closed
    if reaching.cancelled():
        return False
    reaching.result()  # raises what it met
    return True


def _reading(records: int) -> None:
    """Said on stderr while a long window is read: the lines on stdout are only its letters."""
    print(f"reading the window: {records} records read so far", file=sys.stderr)


def _stopped(signum: signal.Signals, *, dry_run: bool) -> str:
    """What a stop leaves behind: the letters reported, each stored, and none other."""
    if dry_run:
        return f"stopped by {signum.name} before the end of the window; nothing was published"
    return (f"stopped by {signum.name} before the end of the window: the letters reported "
            "replayed above are stored, and no other was published")


def _interrupted(reported: int, *, dry_run: bool) -> str:
    """What a second Ctrl-C leaves behind. The records of the letters being published then
    were handed to Kafka and may land (the producer sends them on the way out), but have no
    line: a second replay of the window would publish them twice."""
    from ingest.replay import CHUNK_LETTERS

    if dry_run:
        return f"interrupted after {reported} letters; nothing was published"
    return (f"interrupted: the {reported} letters reported above are stored; those being "
            "published when interrupted (up to the next "
            f"{CHUNK_LETTERS} letters) may be stored too, without a line, and are published "
            "again by continuing")

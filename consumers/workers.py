"""The workers `switchboard worker NAME` runs, each built from settings and accounts."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from contextlib import AbstractAsyncContextManager

import httpx
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError, KafkaError

from consumers.bots.compiled import RuleSet
from consumers.bots.handler import (
    Answer,
    AutoReply,
    BotHandler,
    RulesSource,
    custom_answer,
    keywords_answer,
)
from consumers.bots.optouts import OptOutList, decode_opt_out
from consumers.bots.sdk import load_bot
from consumers.handling import MustNotSkip
from consumers.health import WorkerHealth, serve_worker_http
from consumers.ledger import LEDGER_ARCHIVING, decode_ledger, ledger_stands
from consumers.outbound.transport import ShardedTransport
from consumers.runtime import UnreadableRecord, WorkerRuntime
from consumers.sender import SENDER_CONCURRENCY, Sender
from consumers.sender_metrics import initialize as initialize_sender_metrics
from consumers.table import CompactedTable, MissingTopic
from switchboard import heap
from switchboard.accounts import Accounts
from switchboard.clients import KafkaConnection
from switchboard.logs import get_logger
from switchboard.producer import PublishError
from switchboard.settings import Settings
from switchboard.stopping import StopThenForce
from switchboard.topics import (
    LEDGER_RETENTION_DAYS,
    MESSAGE_INBOUND,
    MESSAGE_STATUS,
    OPT_OUTS,
    OUTBOUND,
    OUTBOUND_SENT,
    ensure_topics,
)
from switchboard.urls import origin

log = get_logger(__name__)


class MetricsPortError(RuntimeError):
    """SWITCHBOARD_METRICS_PORT cannot be served (taken, or not ours to bind)."""


WorkerFactory = Callable[[Settings, Accounts], AbstractAsyncContextManager[WorkerRuntime]]


@contextlib.asynccontextmanager
async def _opt_out_list(kafka: KafkaConnection) -> AsyncIterator[OptOutList]:
    table = CompactedTable(kafka, OPT_OUTS.name, decode_opt_out)
    await table.start()
    try:
        yield OptOutList(table)
    finally:
        await table.stop()


@contextlib.asynccontextmanager
async def sender_worker(settings: Settings, accounts: Accounts) -> AsyncIterator[WorkerRuntime]:
    kafka = settings.kafka_connection()
    if settings.public_url is None:
        log.warning("SWITCHBOARD_PUBLIC_URL is not set: sends ask providers to report status "
                    "to this default, which they may not reach", url=settings.ingest_url)
    # First: a proxy variable it cannot use stops the start before Kafka is asked anything.
    transport = ShardedTransport()
    # Read at start and on rebalance (catch_up); between them the follower need not hurry.
    ledger = CompactedTable(kafka, OUTBOUND_SENT.name, decode_ledger, relaxed_follow=True,
                            stands=ledger_stands, max_age_s=LEDGER_RETENTION_DAYS * 86_400,
                            archiving=LEDGER_ARCHIVING)
    await ledger.start()
    try:
        async with _opt_out_list(kafka) as opt_outs, httpx.AsyncClient(
                transport=transport) as http:
            sender = Sender(accounts, ledger, http, public_url=settings.ingest_url,
                            opt_outs=opt_outs)
            sender.check_outbound()
            initialize_sender_metrics(accounts)  # alerted counts scraped at 0 from the start
            runtime = WorkerRuntime(name="sender", kafka=kafka,
                                    topics=[OUTBOUND.name], handler=sender.handle,
                                    max_concurrency=SENDER_CONCURRENCY)

            async def caught_up(assigned: list[TopicPartition]) -> None:
                # A partition may come from another sender: see what it marked as sent, and
                # every opt-out written before (also those written only to the opt-out topic).
                await ledger.catch_up()
                await opt_outs.table.catch_up()

            runtime.on_assigned.append(caught_up)
            # A table partition it can no longer follow stops it (README, Troubleshooting).
            ledger.on_failure(runtime.stop_because)
            opt_outs.table.on_failure(runtime.stop_because)
            # No catch-up of the opt-out list per fetch: the bots put each change on the
            # outbound topic too, ordered with the commands to that contact.
            try:
                yield runtime
            finally:
                sender.retry_log.flush()  # the retries counted since its last line, not lost
    finally:
        await ledger.stop()


def _no_auto_reply(rules: RuleSet, accounts: Collection[str]) -> str | None:
    """Of the accounts file's accounts, as messages are answered (their own section, else
    "*"'s): an auto_reply only in a section for no account (`[accounts.acmee]`) counted, and
    the worker started without a word, answering no one."""
    if any((ruled := rules.for_account(name)) is not None and ruled.config.auto_reply
           for name in accounts):
        return None
    return "no account has auto_reply in the rules file: only STOP/START/HELP are answered"


def _bot_factory(name: str, answer: Callable[[], Answer],
                 idle_with: Callable[[RuleSet, Collection[str]], str | None] | None = None
                 ) -> WorkerFactory:
    """`idle_with` says why the rules leave this bot nothing to do (logged at start: a bot
    that silently never answers looks broken)."""
    @contextlib.asynccontextmanager
    async def factory(settings: Settings, accounts: Accounts) -> AsyncIterator[WorkerRuntime]:
        kafka = settings.kafka_connection()
        names = [account.name for account in accounts]
        rules = RulesSource(settings.rules_file, accounts=names)
        if settings.rules_file is None:
            log.warning("no rules file (SWITCHBOARD_RULES_FILE): only STOP/START/HELP are "
                        "answered, with the default texts", worker=name)
        elif idle_with is not None and (reason := idle_with(rules.current, names)):
            log.warning(reason, worker=name, rules_file=str(settings.rules_file))
        async with _opt_out_list(kafka) as opt_outs:
            handler = BotHandler(name, rules, opt_outs, answer(), accounts=names)
            runtime = WorkerRuntime(name=name, kafka=kafka,
                                    topics=[MESSAGE_INBOUND.name, MESSAGE_STATUS.name],
                                    handler=handler.handle, start_from="latest",
                                    handler_timeout_s=settings.bot_timeout_s)
            opt_outs.table.on_failure(runtime.stop_because)

            async def caught_up(assigned: list[TopicPartition]) -> None:
                # A partition may come from another bot worker: every opt-out it wrote (a
                # contact's STOP just handled) is in the list before the contact's next message
                # is, which its follower might not have read yet. The sender still refuses an
                # opted-out contact; this keeps the bot from making the command at all.
                await opt_outs.table.catch_up()

            runtime.on_assigned.append(caught_up)
            runtime.on_hang_up = rules.request_reload  # read at once at the next check (2 s)
            watching = asyncio.create_task(rules.watch())
            try:
                yield runtime
            finally:
                watching.cancel()

    return factory


def custom_bot_worker(spec: str) -> WorkerFactory:
    """`switchboard worker bot --bot module:function`: a user's bot function as a worker."""
    bot = load_bot(spec)
    return _bot_factory(f"bot-{spec.replace(':', '-')}", lambda: custom_answer(bot))


WORKERS: dict[str, WorkerFactory] = {
    "sender": sender_worker,
    "keywords": _bot_factory("keywords", lambda: keywords_answer),
    "autoreply": _bot_factory("autoreply", AutoReply, idle_with=_no_auto_reply),
}
# Those of `switchboard worker NAME` that read SWITCHBOARD_RULES_FILE: the bots (`bot` too).
RULES_WORKERS = frozenset({"keywords", "autoreply", "bot"})


async def _ensure_topics(settings: Settings) -> None:
    try:
        await ensure_topics(settings.kafka_connection(), partitions=settings.topic_partitions,
                            replication_factor=settings.topic_replication_factor)
    except KafkaConnectionError:
        raise  # said as every command says it
    except (KafkaError, RuntimeError, TimeoutError) as exc:  # refused (ACLs), or no answer
        raise MissingTopic(f"cannot create the missing topics: {exc or type(exc).__name__} "
                           "(or set SWITCHBOARD_CREATE_TOPICS=false and create them "
                           "yourself)") from exc


def stopped_short(exc: BaseException) -> str | None:
    """The one line to say when a worker stopped short of a record it could neither handle nor
    keep (WorkerRuntime.run raises what that record failed with) or read, or None for other
    errors: the record is not lost, which is what an operator reading it wants to know
    first."""
    if isinstance(exc, UnreadableRecord):
        return str(exc)
    if isinstance(exc, MustNotSkip):  # an opt-out change Kafka would not store
        what = str(exc)
    elif isinstance(exc, PublishError):  # a dead letter Kafka would not take
        what = f"dead letter not stored: {exc}"
    else:
        return None
    return (f"a record could be neither handled nor kept ({what}); it was not committed, and "
            "is handled again once the worker restarts (the log names it)")


async def run_worker(factory: WorkerFactory, settings: Settings, accounts: Accounts, *,
                     reach: Callable[[], Awaitable[None]] | None = None,
                     terminal_closed: Callable[[], bool] | None = None) -> None:
    """Run one worker until SIGINT/SIGTERM, then finish in-flight work and commit. `reach`
    (the command's check that Kafka answers at all) is awaited before Kafka is asked anything,
    once the metrics port is known to be free. SIGHUP stops it so too where
    `terminal_closed()` says it came from the terminal it wrote to being closed; any other
    (`kill -HUP`, a process manager's reload) does not stop a worker: the bots reload their
    rules on it (WorkerRuntime.on_hang_up), the sender has nothing to reload."""
    loop = asyncio.get_running_loop()
    starting = asyncio.current_task()
    stopped_by: list[str] = []
    running: list[WorkerRuntime] = []
    forcing: list[StopThenForce] = []  # once consuming: a stop, then a second signal's exit

    def stop(signum: int) -> None:
        if forcing:
            forcing[0](signum)
            return
        # Before it consumes (Kafka not answering yet, the sender reading its ledger) the
        # start is cancelled, which closes what it opened: by default SIGTERM and SIGHUP
        # killed the process, its connections cut and nothing said.
        stopped_by.append(signal.Signals(signum).name)
        if starting is not None:
            starting.cancel()

    def hung_up() -> None:
        if terminal_closed is not None and terminal_closed():
            stop(signal.SIGHUP)  # nobody is left to stop it otherwise
            return
        runtime = running[0] if running else None
        if runtime is not None and runtime.on_hang_up is not None:
            runtime.on_hang_up()
        elif runtime is not None:
            log.info("SIGHUP ignored: this worker has nothing to reload (SIGTERM or Ctrl-C "
                     "stops it)", worker=runtime.name)
        else:
            log.info("SIGHUP ignored while the worker starts: its files are read as it "
                     "starts (SIGTERM or Ctrl-C stops it)")

    # Taken before the metrics line, which tells a test they are. Under `nohup` too: started
    # so, its outputs are no terminal, and SIGHUP is a reload or nothing.
    hup_before = signal.getsignal(signal.SIGHUP)
    loop.add_signal_handler(signal.SIGTERM, stop, signal.SIGTERM)
    loop.add_signal_handler(signal.SIGHUP, hung_up)
    try:
        await _run(factory, settings, accounts, reach, running, forcing)
    except asyncio.CancelledError:
        if not stopped_by or starting is None or starting.uncancel() > 0:
            raise  # not (only) our signal: Ctrl-C, or a cancellation from outside
        log.info(f"worker stopped before it started ({stopped_by[0]})")
    finally:  # a loop that runs on (a test session's) must not keep them for a run gone
        loop.remove_signal_handler(signal.SIGTERM)
        loop.remove_signal_handler(signal.SIGHUP)
        if hup_before is not None:
            signal.signal(signal.SIGHUP, hup_before)


async def _run(factory: WorkerFactory, settings: Settings, accounts: Accounts,
               reach: Callable[[], Awaitable[None]] | None, running: list[WorkerRuntime],
               forcing: list[StopThenForce]) -> None:
    health = WorkerHealth()
    if settings.metrics_port:
        try:
            serve_worker_http(health, settings.http_host, settings.metrics_port)
        except OSError as exc:
            # Worded as `serve`'s and `run`'s port errors: the setting that moves it named.
            hint = ("set SWITCHBOARD_METRICS_PORT to choose another port"
                    if exc.errno == errno.EADDRINUSE else "check the host "
                    "(SWITCHBOARD_HTTP_HOST) and the port (SWITCHBOARD_METRICS_PORT)")
            raise MetricsPortError(f"cannot serve metrics on {settings.http_host}:"
                                   f"{settings.metrics_port}: {exc.strerror} ({hint})") from None
        log.info("metrics and probes served",
                 url=f"{origin(settings.http_host, settings.metrics_port)}/metrics",
                 probes=["/healthz", "/readyz"])
    ticking = asyncio.create_task(health.tick())
    try:
        if reach is not None:
            await reach()
        if settings.create_topics:
            # As ingest does: workers started first (a Kubernetes rollout, compose on a fresh
            # volume) would otherwise stop for want of a topic. Nothing to do once they exist.
            await _ensure_topics(settings)
        async with factory(settings, accounts) as runtime:
            health.readiness = runtime.problem
            heap.settle()
            loop = asyncio.get_running_loop()
            running.append(runtime)
            forcing.append(StopThenForce(runtime.stop, worker=runtime.name))
            loop.add_signal_handler(signal.SIGINT, forcing[0], signal.SIGINT)
            await runtime.run()
    finally:
        ticking.cancel()

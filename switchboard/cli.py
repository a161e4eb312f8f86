"""`switchboard`: one command, a subcommand per job."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import uvicorn

from switchboard.localkafka import BrokerError, LocalKafka
from switchboard.logs import configure_logging
from switchboard.serving import MULTIPROCESS_DIR_ENV, shutdown_grace_s

if TYPE_CHECKING:
    from switchboard.accounts import Accounts
from switchboard.settings import Settings, SettingsError, get_settings

Command = Callable[[argparse.Namespace, Settings], int]
T = TypeVar("T")
DEMO_ACCOUNTS = Path("examples/accounts.toml")
DEMO_RULES = Path("examples/rules.toml")


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on uvloop when it is installed (uvicorn[standard] brings it on Linux).

    The workers are mostly socket I/O (Kafka, provider HTTP); uvloop does that with
    noticeably less CPU than the default loop, which is what ingest already gets from uvicorn.
    """
    try:
        import uvloop
    except ImportError:  # e.g. Windows: the standard loop works, only slower
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def local_broker(settings: Settings) -> LocalKafka:
    """The broker the run command and `switchboard kafka` share (persistent data dir)."""
    return LocalKafka(
        settings.data_dir / "kafka",
        cache_dir=settings.cache_dir,
        port=settings.kafka_port,
        controller_port=settings.kafka_controller_port,
        heap=settings.kafka_heap,
    )


def start_kafka(settings: Settings) -> tuple[LocalKafka | None, str]:
    """The cluster to use: KAFKA_BOOTSTRAP_SERVERS if set, else a local broker started here.

    Either way the topics exist when this returns.
    """
    from switchboard.topics import ensure_topics

    broker: LocalKafka | None = None
    bootstrap = settings.kafka_bootstrap_servers
    if not bootstrap:
        broker = local_broker(settings)
        try:
            broker.start()
            asyncio.run(broker.wait_ready())
        except BaseException:
            broker.stop()
            raise
        bootstrap = broker.bootstrap_servers
    if settings.create_topics:
        asyncio.run(ensure_topics(bootstrap, partitions=settings.topic_partitions,
                                  replication_factor=settings.topic_replication_factor))
    return broker, bootstrap


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def cmd_kafka(args: argparse.Namespace, settings: Settings) -> int:
    """Run a local broker in the foreground until Ctrl-C."""
    if settings.kafka_bootstrap_servers:
        print(f"KAFKA_BOOTSTRAP_SERVERS={settings.kafka_bootstrap_servers} is set: "
              "using that cluster, starting nothing.")
        return 0
    args.kafka_only = True
    return cmd_run(args, settings)


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    """Start Kafka (unless KAFKA_BOOTSTRAP_SERVERS is set), the topics and ingest, until Ctrl-C."""
    signal.signal(signal.SIGTERM, _interrupt)  # a supervisor's stop is a Ctrl-C: clean shutdown
    started = time.monotonic()
    try:
        broker, bootstrap = start_kafka(settings)
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    where = f"data: {broker.data_dir}, log: {broker.log_path}" if broker else "external cluster"
    print(f"Kafka {bootstrap} ready in {time.monotonic() - started:.1f}s ({where}).", flush=True)
    try:
        if args.kafka_only:
            print("Ctrl-C stops it.", flush=True)
            if broker is None or broker.process is None:
                signal.pause()
                return 0
            broker.process.wait()
            print(f"error: Kafka exited unexpectedly:\n{broker.tail()}", file=sys.stderr)
            return 1
        return _run_services(settings, bootstrap)
    except KeyboardInterrupt:
        print("stopping…", flush=True)
        return 0
    finally:
        if broker is not None:
            broker.stop()


def run_banner(*, base: str, sim: str, bootstrap: str, accounts: int, accounts_file: Path,
               rules_file: Path | None) -> str:
    """What `run` prints: where things are, and commands to paste (tested as shell input).
    The examples use the demo accounts' credentials, so they are shown only for those."""
    examples = f"""Send a delivery report as a provider would:
  curl -u infobip:demo-infobip-password -H 'content-type: application/json' \\
       -d @examples/webhooks/infobip-delivery.json {base}/webhooks/infobip/demo-infobip
Make an end user text the demo Infobip number (the keyword bot answers through the sender):
  curl -H 'content-type: application/json' \\
       -d '{{"account": "demo-infobip", "from": "+41790000001", "text": "HELP"}}' \\
       {sim}/_sim/inbound
  curl '{sim}/_sim/sends?account=demo-infobip'""" if accounts_file == DEMO_ACCOUNTS else \
        f"""Providers call {base}/webhooks/<provider>/<account> with the account's credentials
(README: Authentication). Make an end user text one of your accounts:
  curl -H 'content-type: application/json' \\
       -d '{{"account": "<account>", "from": "+41790000001", "text": "HELP"}}' \\
       {sim}/_sim/inbound"""
    return f"""Ingest:    {base}/webhooks/<provider>/<account>  ({accounts} accounts from \
{accounts_file})
Simulator: {sim}  (the accounts' providers; it calls ingest back)
Workers:   sender, keywords (rules: {rules_file or 'none: STOP/START/HELP only'})

{examples}
Watch the events: KAFKA_BOOTSTRAP_SERVERS={bootstrap} .venv/bin/switchboard tail
Ctrl-C stops everything."""


def _warn_if_sending_past_the_simulator(accounts: Accounts, simulator_port: int) -> None:
    """The demo accounts send to the simulator's default port: moved, they reach nothing."""
    default = Settings.model_fields["simulator_port"].default
    stale = [account.name for account in accounts
             if str(account.outbound.get("base_url", "")).startswith(f"http://127.0.0.1:{default}/")]
    if simulator_port != default and stale:
        print(f"warning: the simulator is on port {simulator_port}, but {', '.join(stale)} "
              f"send to port {default} (their outbound.base_url): change them too",
              file=sys.stderr, flush=True)


def _run_services(settings: Settings, bootstrap: str) -> int:
    """Ingest, the simulator and the workers in this process, on the given cluster."""
    from consumers.bots.rules import RulesError
    from switchboard.runall import run_all

    accounts_file = settings.accounts_file or DEMO_ACCOUNTS
    rules_file = settings.rules_file or (DEMO_RULES if DEMO_RULES.exists() else None)
    base = f"http://{settings.http_host}:{settings.http_port}"
    settings = settings.model_copy(update={"kafka_bootstrap_servers": bootstrap,
                                           "accounts_file": accounts_file,
                                           "rules_file": rules_file,
                                           "public_url": settings.ingest_url})
    accounts = _accounts_or_exit(settings, demo=True)
    if accounts is None:
        return 2
    sim = f"http://{settings.http_host}:{settings.simulator_port}"
    _warn_if_sending_past_the_simulator(accounts, settings.simulator_port)
    banner = run_banner(base=base, sim=sim, bootstrap=bootstrap, accounts=len(accounts),
                        accounts_file=accounts_file, rules_file=rules_file)
    try:
        run_loop(run_all(settings, accounts, workers=("sender", "keywords"), simulator=True,
                         on_ready=lambda: print(banner, flush=True)))
    except RulesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    """Run the provider simulator alone (send APIs + webhooks back to ingest)."""
    from simulator.app import create_simulator_app

    accounts = _accounts_or_exit(settings, demo=True)
    if accounts is None:
        return 2
    ingest_url = args.ingest_url or settings.ingest_url
    app = create_simulator_app(accounts, ingest_url)
    port = args.port or settings.simulator_port
    print(f"Simulator on http://{settings.http_host}:{port}, calling ingest at {ingest_url} "
          f"({len(accounts)} accounts from {settings.accounts_file or DEMO_ACCOUNTS})",
          flush=True)
    uvicorn.run(app, host=settings.http_host, port=port, log_config=None, access_log=False)
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    """Run the ingest HTTP service against an existing Kafka cluster."""
    if not settings.kafka_bootstrap_servers:
        print("error: serve needs KAFKA_BOOTSTRAP_SERVERS (`switchboard run` also starts a "
              "local Kafka)", file=sys.stderr)
        return 2
    if _accounts_or_exit(settings, demo=False) is None:  # the factory loads them again
        return 2
    workers = args.workers or settings.http_workers
    with _shared_metrics(workers):
        uvicorn.run("ingest.app:app_from_environment", factory=True,
                    host=args.host or settings.http_host,
                    port=args.port or settings.http_port, workers=workers, proxy_headers=True,
                    timeout_graceful_shutdown=shutdown_grace_s(settings.produce_timeout_s),
                    log_config=None, access_log=False)
    return 0


@contextlib.contextmanager
def _shared_metrics(workers: int) -> Iterator[None]:
    """Worker processes of one `serve` sum their metrics, and answer /readyz for each other,
    through a directory (set before they start: prometheus-client reads it at import)."""
    from ingest.siblings import write_process_count

    if workers < 2:
        yield
        return
    if given := os.environ.get(MULTIPROCESS_DIR_ENV):
        write_process_count(Path(given), workers)
        yield
        return
    with tempfile.TemporaryDirectory(prefix="switchboard-metrics-") as directory:
        os.environ[MULTIPROCESS_DIR_ENV] = directory
        write_process_count(Path(directory), workers)
        try:
            yield
        finally:
            del os.environ[MULTIPROCESS_DIR_ENV]


def _accounts_or_exit(settings: Settings, *, demo: bool) -> Accounts | None:
    """The accounts, or None once the problem is printed. Only demo tools (`run`, `simulate`)
    fall back to the example accounts: a service must not quietly run on demo credentials."""
    from switchboard.accounts import AccountsError, load_accounts

    path = settings.accounts_file or (DEMO_ACCOUNTS if demo else None)
    if path is None:
        print("error: set SWITCHBOARD_ACCOUNTS_FILE (see examples/accounts.toml)",
              file=sys.stderr)
        return None
    try:
        return load_accounts(path)
    except AccountsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    """Run one worker (consumer group member) until SIGTERM/Ctrl-C."""
    from consumers.bots.rules import RulesError
    from consumers.workers import WORKERS, MetricsPortError, custom_bot_worker, run_worker

    if args.name == "bot":
        if not args.bot:
            print("error: `worker bot` needs --bot module:function", file=sys.stderr)
            return 2
        sys.path.insert(0, str(Path.cwd()))  # bots are the user's modules, run from their dir
        try:
            factory = custom_bot_worker(args.bot)
        except (ImportError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    elif args.name in WORKERS:
        factory = WORKERS[args.name]
    else:
        print(f"error: unknown worker {args.name!r}; known: {', '.join(WORKERS)}, bot",
              file=sys.stderr)
        return 2
    if not settings.kafka_bootstrap_servers:
        print("error: set KAFKA_BOOTSTRAP_SERVERS", file=sys.stderr)
        return 2
    accounts = _accounts_or_exit(settings, demo=False)
    if accounts is None:
        return 2
    try:
        run_loop(run_worker(factory, settings, accounts))
    except (RulesError, MetricsPortError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _as_received(query: str) -> str:
    """A typed query as ingest hands it on: its bytes (UTF-8 here) read as Latin-1, which
    the normalizers turn back into bytes before decoding them as UTF-8."""
    return query.encode("utf-8").decode("latin-1")


def cmd_tail(args: argparse.Namespace, settings: Settings) -> int:
    """Print records of the event topics as they arrive (JSON lines), until Ctrl-C."""
    from switchboard.tail import UnknownTopic, tail

    if not settings.kafka_bootstrap_servers:
        print("error: set KAFKA_BOOTSTRAP_SERVERS (the run command prints it)", file=sys.stderr)
        return 2
    from aiokafka.errors import KafkaConnectionError

    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(tail(settings.kafka_bootstrap_servers, args.topic,
                             from_beginning=args.all, limit=args.limit))
    except KafkaConnectionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except UnknownTopic as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_normalize(args: argparse.Namespace, settings: Settings) -> int:
    """Print the events of one captured webhook as JSON lines (exit 2 with the reason if bad)."""
    from normalizers import NormalizeError, WebhookRequest, normalize

    if args.file in (None, "-"):
        body = sys.stdin.buffer.read()
    else:
        try:
            body = Path(args.file).read_bytes()
        except OSError as exc:
            print(f"error: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
            return 2
    content_type = args.content_type or _guess_content_type(args.file, body)
    method = args.method or ("GET" if not body.strip() and args.query else "POST")
    request = WebhookRequest(
        provider=args.provider, account=args.account, body=body, received_at=datetime.now(UTC),
        raw_id="cli", content_type=content_type, query=_as_received(args.query or ""),
        method=method,
    )
    try:
        events = normalize(request)
    except NormalizeError as exc:
        print(f"error: {exc.reason}", file=sys.stderr)
        return 2
    for event in events:
        sys.stdout.buffer.write(event.to_json() + b"\n")
    return 0


def cmd_schema(args: argparse.Namespace, settings: Settings) -> int:
    """Print a JSON Schema: the message event, or with --outbound the commands and results."""
    from switchboard.commands import json_schemas
    from switchboard.events import json_schema

    sys.stdout.buffer.write(json_schemas() if args.outbound else json_schema())
    return 0


def _guess_content_type(name: str | None, body: bytes) -> str:
    start = body.lstrip()[:1]
    if (name or "").endswith(".xml") or start == b"<":
        return "application/xml"
    if start in (b"{", b"["):
        return "application/json"
    if b"=" in body:
        return "application/x-www-form-urlencoded"
    return "application/json"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="switchboard", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="start everything: Kafka, ingest, simulator, workers")
    run.set_defaults(handler=cmd_run, kafka_only=False)

    kafka = sub.add_parser("kafka", help="run a local single-node Kafka broker in the foreground")
    kafka.set_defaults(handler=cmd_kafka)

    serve = sub.add_parser("serve", help="run the ingest HTTP service")
    serve.add_argument("--host", help="default: SWITCHBOARD_HTTP_HOST")
    serve.add_argument("--port", type=int, help="default: SWITCHBOARD_HTTP_PORT")
    serve.add_argument("--workers", type=int, help="default: SWITCHBOARD_HTTP_WORKERS")
    serve.set_defaults(handler=cmd_serve)

    worker = sub.add_parser("worker", help="run a worker: sender, keywords, autoreply, bot")
    worker.add_argument("name", help="sender | keywords | autoreply | bot")
    worker.add_argument("--bot", help="with `bot`: your bot function, as module:function")
    worker.set_defaults(handler=cmd_worker)

    simulate = sub.add_parser("simulate", help="run the provider simulator")
    simulate.add_argument("--port", type=int, help="default: SWITCHBOARD_SIMULATOR_PORT")
    simulate.add_argument("--ingest-url", help="default: SWITCHBOARD_PUBLIC_URL")
    simulate.set_defaults(handler=cmd_simulate)

    tail = sub.add_parser("tail", help="print decoded records from Kafka as they arrive")
    tail.add_argument("--topic", action="append",
                      help="topic (repeatable); default: the inbound and status event topics")
    tail.add_argument("--all", action="store_true", help="start from the oldest record")
    tail.add_argument("--limit", type=int, help="stop after this many records")
    tail.set_defaults(handler=cmd_tail)

    norm = sub.add_parser("normalize", help="print the events of one captured webhook")
    norm.add_argument("--provider", required=True, help="infobip, infobip-omnichat, bird, ...")
    norm.add_argument("--content-type", help="default: guessed from the body")
    norm.add_argument("--query", help="the raw query string, e.g. for GET status reports")
    norm.add_argument("--method", choices=["GET", "POST"], help="default: GET if only a query")
    norm.add_argument("--account", default="cli", help="account name put in the events")
    norm.add_argument("file", nargs="?", help="the body; '-' or nothing reads stdin")
    norm.set_defaults(handler=cmd_normalize)

    schema = sub.add_parser("schema", help="print the JSON Schema of the message event")
    schema.add_argument("--outbound", action="store_true",
                        help="the outbound command and result schema instead")
    schema.set_defaults(handler=cmd_schema)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = get_settings()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    handler: Command = args.handler
    return handler(args, settings)


if __name__ == "__main__":
    sys.exit(main())

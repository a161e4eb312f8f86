"""`switchboard`: one command, a subcommand per job."""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import TYPE_CHECKING

from switchboard import __version__
from switchboard.providers import PROVIDERS

if TYPE_CHECKING:
    from switchboard.settings import Settings

# Only the standard library and the two modules above are imported with this one: each command's
# modules (aiokafka, starlette, pydantic...) are imported when it runs, inside main(). Imported
# here, they cost `--help` 0.6 s of its 0.7 s, and a Ctrl-C meanwhile was a KeyboardInterrupt
# traceback, raised where main() could not catch it.
Command = Callable[[argparse.Namespace, "Settings"], int]


def _command(module: str, name: str) -> Command:
    """The handler `name` of switchboard.cli.<module>, imported when the command runs."""
    def handler(args: argparse.Namespace, settings: Settings) -> int:
        command: Command = getattr(importlib.import_module(f"switchboard.cli.{module}"), name)
        return command(args, settings)
    return handler


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {number}")
    return number


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not 0 <= seconds <= 3600:
        raise argparse.ArgumentTypeError(f"must be 0-3600 seconds, not {value}")
    return seconds


def _port(value: str) -> int:
    port = _positive(value)
    if port > 65535:
        raise argparse.ArgumentTypeError(f"a port is 1-65535, not {port}")
    return port


def _http_url(value: str) -> str:
    """Checked as SWITCHBOARD_PUBLIC_URL is: otherwise every webhook sent to it fails later."""
    from switchboard.urls import http_url  # imports httpx: only when the option is given

    try:
        http_url(value, "http://127.0.0.1:8080")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def _media_url(value: str) -> str:
    """What a provider fetches: a local path (`--media photo.jpg`) was published as it was, and
    failed at the provider, or went out as a link that leads nowhere."""
    from switchboard.urls import http_url

    try:
        http_url(value, "https://example.com/photo.jpg")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (the provider fetches it; not a local file)") \
            from None
    return value


def _version() -> str:
    try:
        return metadata.version("switchboard")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="switchboard", description=__doc__)
    # For a bug report or an upgrade: what is installed, which the image's tag may not say.
    parser.add_argument("--version", action="version", version=f"switchboard {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run", help="start everything: Kafka, ingest, simulator, workers",
        description="In one process, on 127.0.0.1: a local Kafka broker (none with "
                    "KAFKA_BOOTSTRAP_SERVERS set), ingest on SWITCHBOARD_HTTP_PORT (8080), "
                    "the provider simulator on SWITCHBOARD_SIMULATOR_PORT (8090), the sender "
                    "and the keyword bot, with examples/accounts.toml and examples/rules.toml "
                    "unless SWITCHBOARD_ACCOUNTS_FILE and SWITCHBOARD_RULES_FILE name others. "
                    "Once started, it prints commands to try.",
        epilog="Exit 0 once stopped (Ctrl-C, SIGTERM, SIGHUP), 1 when Kafka cannot be used "
               "or exits, a port is taken or a worker stopped short of a record, 2 for bad "
               "settings (the accounts, the rules, a proxy variable, one port given to two "
               "listeners), 130 for Ctrl-C before Kafka was ready.")
    run.set_defaults(handler=_command("run", "cmd_run"), kafka_only=False)

    kafka = sub.add_parser(
        "kafka", help="run a local single-node Kafka broker in the foreground",
        description="The broker `run` starts, alone: on SWITCHBOARD_KAFKA_PORT (9092), its data "
                    "under SWITCHBOARD_DATA_DIR (.switchboard/kafka), kept across restarts.",
        epilog="Exit 0 once stopped (Ctrl-C, SIGTERM, SIGHUP), or at once when "
               "KAFKA_BOOTSTRAP_SERVERS "
               "is set (nothing is started); 1 when the broker cannot be fetched or started "
               "(a port or its data directory in use) or exits; 2 when SWITCHBOARD_KAFKA_PORT "
               "and SWITCHBOARD_KAFKA_CONTROLLER_PORT are one port; 130 for Ctrl-C before it "
               "was ready.")
    kafka.set_defaults(handler=_command("run", "cmd_kafka"))

    serve = sub.add_parser(
        "serve", help="run the ingest HTTP service",
        description="Webhooks on /webhooks/<provider>/<account>, stored in Kafka. Needs "
                    "KAFKA_BOOTSTRAP_SERVERS and SWITCHBOARD_ACCOUNTS_FILE (`run` starts a "
                    "broker and uses the demo accounts).",
        epilog="Exit 0 once stopped (Ctrl-C, SIGTERM, SIGHUP: in-flight requests answered, "
               "Kafka flushed), 1 when a port is taken, 2 for bad settings (the accounts, "
               "KAFKA_BOOTSTRAP_SERVERS), 3 when the app failed to start, 130 for Ctrl-C "
               "before it served.")
    serve.add_argument("--host", help="default: SWITCHBOARD_HTTP_HOST")
    serve.add_argument("--port", type=_port, help="default: SWITCHBOARD_HTTP_PORT")
    serve.add_argument("--workers", type=_positive, help="default: SWITCHBOARD_HTTP_WORKERS")
    serve.set_defaults(handler=_command("serve", "cmd_serve"))

    worker = sub.add_parser(
        "worker", help="run a worker: sender, keywords, autoreply, bot",
        description="One member of the worker's consumer group. Needs KAFKA_BOOTSTRAP_SERVERS "
                    "and SWITCHBOARD_ACCOUNTS_FILE; the bots read SWITCHBOARD_RULES_FILE; "
                    "metrics and probes on SWITCHBOARD_METRICS_PORT when set.",
        epilog="Exit 0 once stopped (SIGTERM, also while it starts; Ctrl-C; SIGHUP from its "
               "terminal closing: any other SIGHUP stops no worker, the bots reload their "
               "rules on it), 1 when Kafka cannot be reached, refuses it (ACLs, its group's "
               "session timeout) or ends its start otherwise, a topic is "
               "missing or a record stopped it (the error "
               "line says which), 2 for bad arguments or settings (the accounts, the rules, "
               "the metrics port, a proxy variable), 130 for Ctrl-C before it started; a "
               "second stop signal ends it at once: 130 (Ctrl-C), 143 (SIGTERM).")
    # Named in the usage line: `worker` alone said only "the following arguments are
    # required: name".
    worker.add_argument("name", metavar="{sender,keywords,autoreply,bot}",
                        help="which worker: `bot` also needs --bot")
    worker.add_argument("--bot", help="with `bot`: your bot function, as module:function, "
                                      "imported from the current directory or PYTHONPATH")
    worker.set_defaults(handler=_command("worker", "cmd_worker"))

    simulate = sub.add_parser(
        "simulate", help="run the provider simulator",
        description="The accounts' providers' send APIs, which send their webhooks to ingest "
                    "at --ingest-url; the accounts of SWITCHBOARD_ACCOUNTS_FILE "
                    "(examples/accounts.toml when unset). A sender reaches it at its accounts' "
                    "outbound base_url (the demo accounts': 127.0.0.1:8090): on another port, "
                    "give the sender accounts that name it.",
        epilog="Exit 0 once stopped (Ctrl-C, SIGTERM, SIGHUP; not under nohup), 1 when its "
               "port is taken, 2 for bad settings (the accounts), 3 when it failed to start, "
               "130 for Ctrl-C before it served.")
    simulate.add_argument("--port", type=_port, help="default: SWITCHBOARD_SIMULATOR_PORT")
    simulate.add_argument("--ingest-url", type=_http_url,
                          help="default: SWITCHBOARD_PUBLIC_URL, else http://"
                               "SWITCHBOARD_HTTP_HOST:SWITCHBOARD_HTTP_PORT (127.0.0.1:8080)")
    simulate.set_defaults(handler=_command("simulate", "cmd_simulate"))

    tail = sub.add_parser(
        "tail", help="print decoded records from Kafka as they arrive",
        description="Print each record of the topics as one JSON line (topic, partition, "
                    "offset, key, headers, value) as it arrives, from the newest: records "
                    "already there are shown only with --all. Runs until Ctrl-C or --limit.",
        epilog="Exit 0 after --limit records, 130 on Ctrl-C, 1 when Kafka cannot be reached "
               "or reading fails, 2 for a topic that does not exist (one of Switchboard's own is "
               "waited for), 141 once the reader of its output has gone (`| head`), 129 "
               "when its terminal is closed (SIGHUP; not under nohup).")
    tail.add_argument("--topic", action="append",
                      help="as Switchboard names it, e.g. switchboard.dead-letter.v1 "
                           "(without SWITCHBOARD_KAFKA_NAME_PREFIX); repeatable; default: "
                           "the inbound and status event topics")
    tail.add_argument("--all", action="store_true", help="start from the oldest record")
    tail.add_argument("--limit", type=_positive, help="stop after this many records")
    tail.set_defaults(handler=_command("tail", "cmd_tail"))

    replay = sub.add_parser(
        "replay", help="publish again what dead letters (or raw requests) stand for",
        description="Read the dead letters of a time window and publish again what each stands "
                    "for: the events its webhook gives now, or the record a worker gave up on, "
                    "put back on its topic. Prints one JSON line per letter.",
        epilog="Exit 0 when every selected letter was replayed, 3 when some still fail, were "
               "skipped or an --id was not found, 1 when Kafka failed (the lines printed are "
               "stored), 2 for bad arguments, 128 + the signal when stopped early, 141 when "
               "the reader of its output went away (`| head`: stderr says what was "
               "published).")
    replay.add_argument("--source", choices=["dead-letter", "raw"], default="dead-letter",
                        help="raw: every webhook request of the window (needs --since)")
    replay.add_argument("--since", help="30m, 2h, 7d or an ISO time; default: the oldest kept")
    replay.add_argument("--until", help="same forms; default: now")
    replay.add_argument("--provider", action="append", default=[], choices=sorted(PROVIDERS),
                        help="repeatable")
    replay.add_argument("--account", action="append", default=[], help="repeatable")
    replay.add_argument("--stage", action="append", default=[],
                        help="normalize, or a worker: sender, keywords, autoreply, "
                             "bot-<module>-<function>; repeatable")
    replay.add_argument("--id", action="append", default=[],
                        help="a dead letter's id, as its log line's dead_letter_id (with "
                             "--source raw, a raw_id); repeatable")
    replay.add_argument("--reason", action="append", default=[], metavar="TEXT",
                        help="a text the letter's reason holds, in any case: the reason it was "
                             "kept with, masked of secrets, as each line's letter_reason "
                             "prints it (--dry-run lists them); repeatable: any one matches; "
                             "not with --source raw (a raw request has no reason)")
    replay.add_argument("--dry-run", action="store_true",
                        help="say what would be published, publish nothing")
    replay.add_argument("--include-old", action="store_true",
                        help="also put back records over 7 days old, which bots may answer "
                             "twice (the sender forgets sent ids after 8)")
    replay.add_argument("--after", metavar="PARTITION:OFFSET,...",
                        help="start each partition named past that offset: what a replay "
                             "stopped before the end of its window prints to continue it")
    replay.set_defaults(handler=_command("replay", "cmd_replay"))

    send = sub.add_parser(
        "send", help="send one message through the sender (an outbound command)",
        description="Put one outbound command on the outbound topic, as your services would; "
                    "a running sender (`worker sender`, or `run`) sends it. Prints the command "
                    "id, or with --wait the sender's result (JSON).",
        epilog="Exit 0 when published (with --wait: accepted by the provider), 1 when Kafka "
               "or the send failed, 2 for bad arguments, 3 when no result came within --wait, "
               "130 on Ctrl-C, saying whether the command was published (Kafka has it: the "
               "sender sends it, its result not waited for), may have been published (Kafka "
               "had not acknowledged it yet) or was not published, 129 when its terminal is "
               "closed (SIGHUP; not under nohup).")
    send.add_argument("account", help="an account of the accounts file (default: the demo "
                                      "accounts, as `run` uses)")
    send.add_argument("to", help="E.164 number (a national one is refused on a phone channel), "
                                  "or the provider's user id")
    send.add_argument("--text", help="the message text")
    send.add_argument("--media", action="append", default=[], metavar="URL", type=_media_url,
                      help="the http(s) URL of a file to send, which the provider fetches "
                           "(repeatable)")
    send.add_argument("--channel", help="default: the account's outbound channel")
    send.add_argument("--id", help="the command id (idempotency key); default: a new UUID")
    send.add_argument("--wait", type=_seconds, default=0.0, metavar="SECONDS",
                      help="wait this long for the result; exit 0 only if accepted")
    send.set_defaults(handler=_command("send", "cmd_send"))

    norm = sub.add_parser(
        "normalize", help="print the events of one captured webhook",
        description="Read one captured webhook body (a file, or stdin) and print the events "
                    "ingest would store for it, as JSON lines, with no Kafka nor server: to "
                    "check a provider's payload or write a fixture. Authentication is not "
                    "checked.",
        epilog="Exit 0 with its events printed (as JSON lines), 2 when the file cannot be read, "
               "the webhook is refused (the reason on stderr) or for bad arguments, 141 when "
               "the reader of its output went away (`| head`).")
    norm.add_argument("--provider", required=True, help="infobip, infobip-omnichat, bird, ...")
    norm.add_argument("--content-type", help="default: guessed from the body")
    norm.add_argument("--query", help="the raw query string, e.g. for GET status reports")
    norm.add_argument("--method", choices=["GET", "POST"], help="default: GET if only a query")
    norm.add_argument("--account", default="cli", help="account name put in the events")
    norm.add_argument("file", nargs="?",
                      help="the body; '-' or nothing reads stdin (nothing with --query from a "
                           "terminal: no body)")
    norm.set_defaults(handler=_command("normalize", "cmd_normalize"))

    schema = sub.add_parser(
        "schema", help="print a JSON Schema: the message event, or outbound commands and results",
        description="Print the JSON Schema of the message event (what the inbound and status "
                    "topics carry), or with --outbound those of the outbound command and of "
                    "the sender's result, built from the models that write them.",
        epilog="Exit 0.")
    schema.add_argument("--outbound", action="store_true",
                        help="the outbound command and result schema instead")
    schema.set_defaults(handler=_command("schema", "cmd_schema"))
    return parser


def _hear_ctrl_c() -> None:
    """Python leaves SIGINT ignored when it starts so, as a shell's `cmd &` without job control
    does (scripts, CI): Ctrl-C or kill -INT would then do nothing to `tail`, `replay`, `send` or
    a starting `worker`, whose event loop only takes over SIGINT from Python's own handler."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _hear_ctrl_c()
    try:
        return _run(args)
    except KeyboardInterrupt:
        # Ctrl-C before the command took it over (its modules importing, the settings being
        # read), or one it lets through: 130, as a shell reports a tool Ctrl-C ended, with
        # no traceback. The commands that have something to say on Ctrl-C say it themselves.
        return 130


def _run(args: argparse.Namespace) -> int:
    """The command, once its settings are read; exit code as main() returns it."""
    from switchboard.cli.startup import drop_stdout
    from switchboard.logs import configure_logging, get_logger
    from switchboard.settings import SettingsError, get_settings, unknown_env_vars

    try:
        settings = get_settings()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    for name, close in unknown_env_vars(os.environ):
        get_logger(__name__).warning("environment variable ignored: no setting has this name",
                                     variable=name, did_you_mean=close)
    handler: Command = args.handler
    try:
        code = handler(args, settings)
        # What is still buffered (stdout to a pipe is) goes now: a reader that has gone is
        # then said here, not by Python as it exits ("Exception ignored", exit 120).
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # Whoever read the output has gone (`tail | head -3`): stop as a tool killed by
        # SIGPIPE would, without a traceback, nor another one when Python flushes at exit.
        drop_stdout()
        return 128 + signal.SIGPIPE
    except Exception:  # noqa: BLE001 - said below, then the exit Python would give it
        # A worker stopped by a failure (an opt-out change Kafka refused for good) raised it
        # out of here: Python printed its traceback as lines of plain text, which a JSON log
        # pipeline splits into lines of garbage, and nothing in it was masked.
        get_logger(__name__).critical("stopped by an unexpected error", command=args.command,
                                      exc_info=True)
        return 1

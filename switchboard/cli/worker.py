"""`switchboard worker`: one consumer group member: a built-in worker or the user's own bot."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from switchboard.cli.startup import (
    NoAnswer,
    accounts_or_exit,
    cannot_reach_kafka,
    closed_terminal_outputs,
    drop_terminal_outputs,
    kafka_stopped,
    named_cluster,
    reach_kafka,
    relative_hint,
    run_loop,
    terminal_outputs,
    unresolved_host,
)
from switchboard.settings import Settings


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    """Run one worker (consumer group member) until SIGTERM/Ctrl-C, or SIGHUP from its
    terminal closing (any other SIGHUP: the bots reload their rules, the sender ignores it)."""
    from consumers.bots.rules import RulesError, load_rules
    from consumers.table import MissingTopic
    from consumers.worker_metrics import export_only_for
    from consumers.workers import (
        RULES_WORKERS,
        WORKERS,
        MetricsPortError,
        custom_bot_worker,
        run_worker,
        stopped_short,
    )

    if args.name == "bot":
        if not args.bot:
            print("error: `worker bot` needs --bot module:function", file=sys.stderr)
            return 2
        sys.path.insert(0, str(Path.cwd()))  # bots are the user's modules, run from their dir
        try:
            factory = custom_bot_worker(args.bot)
        except ImportError as exc:  # its module, or one that module imports
            print(f"error: bot {args.bot!r}: cannot import it: {exc} (modules are looked for "
                  "in the current directory and on PYTHONPATH)", file=sys.stderr)
            return 2
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    elif args.bot:  # would be ignored: the built-in worker would run instead of the bot
        print(f"error: --bot is for `worker bot`, not `worker {args.name}`", file=sys.stderr)
        return 2
    elif args.name in WORKERS:
        factory = WORKERS[args.name]
    else:
        print(f"error: unknown worker {args.name!r}; known: {', '.join(WORKERS)}, bot",
              file=sys.stderr)
        return 2
    export_only_for(args.name)  # its own metrics, not the other workers'
    bootstrap = named_cluster(settings)
    if bootstrap is None:
        return 2
    accounts = accounts_or_exit(settings, demo=False)
    if accounts is None:
        return 2
    if settings.metrics_port and (unresolved := unresolved_host(settings.http_host)):
        print(unresolved[1], file=sys.stderr)  # as `serve` says it, with its exit code
        return unresolved[0]
    from aiokafka.errors import KafkaConnectionError, KafkaError

    from switchboard.proxy import ProxySettingError, check_proxy_environment

    # The files and settings a worker reads at its start are checked before it connects to
    # anything: the bots read their rules only once Kafka had answered (never, while it did
    # not), and the sender its proxy variables likewise.
    try:
        if args.name in RULES_WORKERS and settings.rules_file is not None:
            load_rules(settings.rules_file)  # read again by the worker, as `run` does
        if args.name == "sender":
            check_proxy_environment()
    except (RulesError, ProxySettingError) as exc:
        rules = settings.rules_file if isinstance(exc, RulesError) else None
        hint = relative_hint(rules) if rules is not None else ""
        print(f"error: {exc}{hint}", file=sys.stderr)
        return 2

    async def reached() -> None:
        # As tail, replay and send: a cluster that does not answer is said within their 10 s,
        # not after the timeout of whichever client asked first (16 s for the topics' admin
        # client). The worker ends then, for its process manager to start again (compose).
        await reach_kafka(settings.kafka_connection(), "worker")

    terminal = terminal_outputs()  # asked now: once closed, it no longer says it is one

    def terminal_closed() -> bool:
        # SIGHUP as the terminal it wrote to closed: what is left to write goes nowhere (each
        # write would fail, EIO), and the worker stops, as `run` does.
        closed = closed_terminal_outputs(terminal)
        drop_terminal_outputs(closed)
        return bool(closed)

    try:
        run_loop(run_worker(factory, settings, accounts, reach=reached,
                            terminal_closed=terminal_closed))
    except KeyboardInterrupt:
        # Before it consumes (connecting, reading the opt-out list) Ctrl-C cancels the start,
        # which closes what it opened: nothing was taken, nothing is left to say.
        return 130
    except (RulesError, MetricsPortError, ProxySettingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (KafkaConnectionError, NoAnswer) as exc:
        print(cannot_reach_kafka(bootstrap, exc), file=sys.stderr)
        return 1
    except KafkaError as exc:
        if (said := kafka_stopped(exc, f"worker {args.name}")) is None:
            raise
        print(said, file=sys.stderr)
        return 1
    except MissingTopic as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        if (said := stopped_short(exc)) is None:
            raise
        print(f"error: worker {args.name} stopped: {said}", file=sys.stderr)
        return 1
    return 0

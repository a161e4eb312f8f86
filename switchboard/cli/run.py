"""`switchboard run` and `switchboard kafka`: the whole demo in one process, or only the
local broker it starts (one broker setup, so both keep their data in the same place)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from switchboard.cli.demo_simulator import on_simulator_port, warn_if_sending_past_the_simulator
from switchboard.cli.run_banner import run_banner, warn_of_shared_groups
from switchboard.cli.run_ports import (
    already_running,
    kafka_ports_clash,
    ports_taken,
    services_ports_clash,
)
from switchboard.cli.startup import (
    DEMO_ACCOUNTS,
    DEMO_RULES,
    NoAnswer,
    accounts_or_exit,
    cannot_reach_kafka,
    drop_terminal_outputs,
    invoked_as,
    kafka_stopped,
    reach_kafka,
    relative_hint,
    run_loop,
    terminal_outputs,
    unresolved_host,
)
from switchboard.localkafka import BrokerError, LocalKafka
from switchboard.serving import ingest_protocol_problem
from switchboard.settings import Settings
from switchboard.stopping import stop_signals
from switchboard.urls import origin

if TYPE_CHECKING:
    from switchboard.accounts import Accounts



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

    Either way Kafka has answered when this returns, and the topics exist (unless
    SWITCHBOARD_CREATE_TOPICS is false: then the workers find out).
    """
    from switchboard.topics import ensure_topics

    broker: LocalKafka | None = None
    try:
        if not settings.kafka_bootstrap_servers:
            broker = local_broker(settings)
            broker.start()
            asyncio.run(broker.wait_ready())
            settings = settings.model_copy(
                update={"kafka_bootstrap_servers": broker.bootstrap_servers})
        else:
            # Answering, before "ready" is said: with topics left to create nothing asked it
            # before the workers, which failed on their own clients' timeouts.
            asyncio.run(reach_kafka(settings.kafka_connection(), "run"))
        if settings.create_topics:
            asyncio.run(ensure_topics(settings.kafka_connection(),
                                      partitions=settings.topic_partitions,
                                      replication_factor=settings.topic_replication_factor))
    except BaseException:
        # Topics refused (a replication factor over the brokers there are), or Ctrl-C while
        # creating them: the broker started here stops now, not when this process is gone.
        if broker is not None:
            broker.stop()
        raise
    return broker, str(settings.kafka_bootstrap_servers)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _on_hang_up(terminal: Sequence[int]) -> Callable[[int, object], None]:
    """SIGHUP as Ctrl-C, once the outputs that were the closed terminal go nowhere."""
    def hung_up(signum: int, frame: object) -> None:
        drop_terminal_outputs(terminal)
        raise KeyboardInterrupt
    return hung_up


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
    from aiokafka.errors import KafkaConnectionError, KafkaError

    signal.signal(signal.SIGTERM, _interrupt)  # a supervisor's stop is a Ctrl-C: clean shutdown
    # So is a closed terminal (or ssh session): by default SIGHUP ended `kafka` at once, its
    # JVM still shutting down after the data dir was let go. Not under `nohup`, which asks
    # for it to be ignored. (Once `run`'s services run, run_all takes it over alike.)
    if signal.SIGHUP in stop_signals():
        signal.signal(signal.SIGHUP, _on_hang_up(terminal_outputs()))
    # Python leaves SIGINT ignored when it starts so, as a shell's `cmd &` without job control
    # does (CI scripts): Ctrl-C or kill -INT would do nothing to `kafka`, which only waits.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    started = time.monotonic()
    if (clash := kafka_ports_clash(settings)) is not None:
        print(f"error: {clash}", file=sys.stderr)
        return 2
    demo: _Demo | None = None
    if not args.kafka_only:
        try:  # Ctrl-C while it imports and reads its files printed a traceback
            checked = _checked(settings)
        except KeyboardInterrupt:
            return 130  # as for Ctrl-C before Kafka is ready
        if isinstance(checked, int):
            return checked
        demo = checked
    try:
        broker, bootstrap = start_kafka(settings)
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (KafkaConnectionError, NoAnswer) as exc:
        where = settings.kafka_bootstrap_servers or "the local broker"
        # Left exported from pasting `tail`'s line, the variable reads as the local broker
        # failing: say that it is why none was started.
        hint = ("; with KAFKA_BOOTSTRAP_SERVERS set, run starts no broker of its own (unset it "
                "for the local one)") if settings.kafka_bootstrap_servers else ""
        print(cannot_reach_kafka(where, exc) + hint, file=sys.stderr)
        return 1
    except (KafkaError, RuntimeError, TimeoutError) as exc:  # the cluster, or its topics
        where = settings.kafka_bootstrap_servers or "the local broker"
        print(f"error: cannot use Kafka at {where}: {exc or type(exc).__name__}",
              file=sys.stderr)
        return 1
    except OSError as exc:
        if settings.kafka_bootstrap_servers:
            raise
        # Its files: a data dir left to root by `sudo make run`, say, was a traceback.
        print(f"error: cannot start the local broker: {exc.strerror or exc}: {exc.filename} "
              "(SWITCHBOARD_DATA_DIR and SWITCHBOARD_CACHE_DIR say where it keeps its files)",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    # From here on a Ctrl-C stops the broker: whoever reads "ready" may press it at once.
    try:
        where = f"data: {broker.data_dir}, log: {broker.log_path}" if broker else "external cluster"
        print(f"Kafka {bootstrap} ready in {time.monotonic() - started:.1f}s ({where}).",
              flush=True)
        if args.kafka_only:
            # As `run` prints its `tail` line: the other commands find the broker by it.
            print(f"In another terminal, for serve, worker, tail, send and replay:\n"
                  f"  export KAFKA_BOOTSTRAP_SERVERS={bootstrap}\nCtrl-C stops it.", flush=True)
            if broker is None or broker.process is None:
                signal.pause()
                return 0
            broker.process.wait()
            return _broker_exited(broker)
        assert demo is not None
        warn_of_shared_groups(settings)
        return _run_services(demo, bootstrap, broker)
    except KeyboardInterrupt:
        print("stopping…", flush=True)
        return 0
    finally:
        if broker is not None:
            broker.stop()


@dataclass(frozen=True)
class _Demo:
    """What `run` serves, read and checked before it starts anything."""

    settings: Settings
    accounts: Accounts


def _prepare(settings: Settings) -> _Demo | None:
    """The accounts (the demo ones unless SWITCHBOARD_ACCOUNTS_FILE is set) and the rules,
    checked; None once a problem is printed."""
    from consumers.bots.rules import RulesError, load_rules
    from switchboard.proxy import ProxySettingError, check_proxy_environment

    try:  # the sender's proxy: said before a broker is started for nothing
        check_proxy_environment()
    except ProxySettingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None
    if problem := ingest_protocol_problem():  # as `serve` says it, before the broker
        print(f"error: {problem}", file=sys.stderr)
        return None
    accounts_file = settings.accounts_file or DEMO_ACCOUNTS
    rules_file = settings.rules_file or (DEMO_RULES if DEMO_RULES.exists() else None)
    settings = settings.model_copy(update={"accounts_file": accounts_file,
                                           "rules_file": rules_file,
                                           "public_url": settings.ingest_url})
    accounts = accounts_or_exit(settings, demo=True)
    if accounts is None:
        return None
    if rules_file is not None:
        try:
            load_rules(rules_file)
        except RulesError as exc:
            print(f"error: {exc}{relative_hint(rules_file)}", file=sys.stderr)
            return None
    if settings.metrics_port:  # set for `serve` and the workers, maybe in a shared env file
        print(f"warning: SWITCHBOARD_METRICS_PORT={settings.metrics_port} is not read by run: "
              f"its metrics (ingest's, the sender's and the bots') are on "
              f"{origin(settings.http_host, settings.http_port)}/metrics",
              file=sys.stderr, flush=True)
    if settings.http_workers > 1:  # likewise: `serve`'s, which `run` does not have
        print(f"warning: SWITCHBOARD_HTTP_WORKERS={settings.http_workers} is not read by run: "
              "its ingest is one process (`serve --workers N` runs more)",
              file=sys.stderr, flush=True)
    if accounts_file == DEMO_ACCOUNTS:
        accounts = on_simulator_port(accounts, settings.simulator_port, settings.http_host)
    else:
        warn_if_sending_past_the_simulator(accounts, settings.simulator_port)
    return _Demo(settings, accounts)


def _checked(settings: Settings) -> _Demo | int:
    """What `run` serves, or the exit code once what stops it is said: a bad file, a host,
    the data dir or a port, each before a broker is started for nothing."""
    demo = _prepare(settings)
    if demo is None:
        return 2
    if unresolved := unresolved_host(demo.settings.http_host):
        print(unresolved[1], file=sys.stderr)
        return unresolved[0]
    if (clash := services_ports_clash(demo.settings)) is not None:
        print(f"error: {clash}", file=sys.stderr)
        return 2
    if not settings.kafka_bootstrap_servers and (
            running := already_running(settings.data_dir / "kafka")) is not None:
        print(f"error: {running}", file=sys.stderr)
        return 1
    if (taken := ports_taken(demo.settings)) is not None:
        print(f"error: {taken}", file=sys.stderr)
        return 1
    return demo


def _run_services(demo: _Demo, bootstrap: str, broker: LocalKafka | None) -> int:
    """Ingest, the simulator and the workers in this process, on the given cluster; they stop
    if the broker started here exits (every webhook would get 503 until Ctrl-C otherwise)."""
    from aiokafka.errors import KafkaConnectionError, KafkaError

    from consumers.bots.rules import RulesError
    from consumers.table import MissingTopic
    from consumers.workers import stopped_short
    from switchboard.proxy import ProxySettingError
    from switchboard.runall import run_all

    settings = demo.settings.model_copy(update={"kafka_bootstrap_servers": bootstrap})
    base = origin(settings.http_host, settings.http_port)
    sim = origin(settings.http_host, settings.simulator_port)
    banner = run_banner(base=base, sim=sim, bootstrap=bootstrap, accounts=len(demo.accounts),
                        accounts_file=Path(str(settings.accounts_file)),
                        rules_file=settings.rules_file, program=invoked_as(),
                        name_prefix=settings.kafka_name_prefix)
    process = broker.process if broker is not None else None

    def broker_gone() -> bool:
        return process is not None and process.poll() is not None

    try:
        run_loop(run_all(settings, demo.accounts, workers=("sender", "keywords"),
                         simulator=True, on_ready=lambda: print(banner, flush=True),
                         gone=broker_gone if process is not None else None))
    except (RulesError, ProxySettingError) as exc:
        # The rules file changed since _prepare read it (or the proxy variables, which it
        # checked too): said as `worker` says them, not as an unexpected error.
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except MissingTopic as exc:  # SWITCHBOARD_CREATE_TOPICS=false, and not created
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KafkaError as exc:
        # With the broker gone, a worker may fail too (starting, or committing as it stops):
        # the broker's exit is the error to report, not the failures it caused.
        if not broker_gone():
            if isinstance(exc, KafkaConnectionError):
                print(cannot_reach_kafka(bootstrap, exc), file=sys.stderr)
                return 1
            if (said := kafka_stopped(exc, "run's workers")) is None:  # as `worker` says it
                raise
            print(said, file=sys.stderr)
            return 1
    except Exception as exc:
        if (said := stopped_short(exc)) is None:
            raise
        if not broker_gone():
            print(f"error: a worker stopped: {said}", file=sys.stderr)
            return 1
    if broker is not None and broker_gone():
        return _broker_exited(broker)
    return 0


def _broker_exited(broker: LocalKafka) -> int:
    print(f"error: Kafka exited unexpectedly:\n{broker.tail()}", file=sys.stderr)
    return 1

"""The broker process: one broker+controller JVM on 127.0.0.1, its config, start and stop.

A node alone by default; a node of a cluster of such nodes (the tests' three) when given the
others' controller ports as `voters`, the cluster's id and a replication factor."""

from __future__ import annotations

import base64
import contextlib
import ctypes
import fcntl
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from switchboard.localkafka.errors import OWN_CLUSTER, BrokerError
from switchboard.localkafka.jars import ensure_jars
from switchboard.localkafka.ports import port_in_use
from switchboard.localkafka.readiness import wait_until_usable
from switchboard.localkafka.secured import SecuredListener

READY_LINE = "Kafka Server started"


def new_cluster_id() -> str:
    # Kafka's own Uuid never starts with "-": the tools would read it as an option.
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _die_with_parent() -> None:
    """Runs in the child before exec: the JVM gets SIGTERM if our process dies, even by SIGKILL."""
    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


# Every young collection stops the broker, and every produce and fetch waits for it. With the
# serial collector they took 10-20 ms each second under `bench bots`; two parallel threads and
# a larger young generation make them 7-16 ms every 5 s (2-core machine; end-to-end p99 fell
# from 90-190 ms to 57-97 ms). Metaspace stays default on purpose: its full GCs at start move
# the start-up objects to the old generation, where a young GC under load would take 100+ ms
# to promote them (measured with -XX:MetaspaceSize=96m). gc.log in the data dir shows pauses.
# The young generation is half the heap (256 MB of the default 512 MB), from the start.
_GC_FLAGS = ("-XX:+UseParallelGC", "-XX:ParallelGCThreads=2", "-XX:NewRatio=1")

_LOG4J = """\
log4j.rootLogger=WARN, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaRaftServer=INFO
"""


# Held by a running broker on its data dir (LocalKafka._lock_data_dir), with its pid in it.
DATA_LOCK = "switchboard.lock"


def data_dir_holder(data_dir: Path) -> str | None:
    """The pid ("" when unknown) of the local broker running on `data_dir`, or None when
    none is. Only peeks: the lock is left to the broker that starts next."""
    try:
        lock = open(data_dir / DATA_LOCK)  # noqa: SIM115 - closed below
    except OSError:  # none: no broker ever ran here; unreadable: the broker's start says so
        return None
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _pid_in(lock)
    return None


def _pid_in(lock: IO[str]) -> str:
    holder = lock.read().strip()
    return holder if holder.isdigit() else ""


class LocalKafka:
    """One broker+controller process on 127.0.0.1 with its data under `data_dir`."""

    def __init__(
        self,
        data_dir: Path,
        *,
        cache_dir: Path,
        port: int = 9092,
        controller_port: int = 9093,
        heap: str = "512m",
        secured: SecuredListener | None = None,
        node_id: int = 1,
        voters: Mapping[int, int] | None = None,
        cluster_id: str | None = None,
        replication_factor: int = 1,
    ) -> None:
        """`voters`: node id -> controller port of every node of the cluster, this one too
        (None: this node alone). The nodes of one cluster share `cluster_id` (formatted into
        each data dir once) and are started with `launch`, then `wait_started`: each waits for
        a quorum of the others before it says it has started."""
        self.data_dir = data_dir.resolve()
        self.cache_dir = cache_dir
        self.port = port
        self.controller_port = controller_port
        self.heap = heap
        self.secured = secured
        self.node_id = node_id
        self.voters = dict(voters) if voters is not None else {node_id: controller_port}
        self.cluster_id = cluster_id
        self.replication_factor = replication_factor
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.data_dir / "broker.log"
        self._data_lock: IO[str] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _write_config(self) -> tuple[Path, Path]:
        logs = self.data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        properties = self.data_dir / "server.properties"
        # Clients of the secured listeners get them back in metadata, so they are advertised
        # too; the broker and controller keep talking PLAINTEXT among themselves.
        secured = self.secured
        added = [] if secured is None else secured.listeners()
        listener = "".join(f",{name}://127.0.0.1:{port}" for name, _, port in added)
        protocol = "".join(f",{name}:{security}" for name, security, _ in added)
        voters = ",".join(f"{node}@127.0.0.1:{port}" for node, port in sorted(self.voters.items()))
        replicas = self.replication_factor
        in_sync = min(2, replicas)  # as switchboard.topics asks of the topics it creates
        properties.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    f"node.id={self.node_id}",
                    f"controller.quorum.voters={voters}",
                    "controller.listener.names=CONTROLLER",
                    f"listeners=PLAINTEXT://127.0.0.1:{self.port},"
                    f"CONTROLLER://127.0.0.1:{self.controller_port}{listener}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}{listener}",
                    "inter.broker.listener.name=PLAINTEXT",
                    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
                    f"{protocol}",
                    f"log.dirs={logs}",
                    # internal topics with as many replicas as there are nodes to hold them
                    "num.partitions=1",
                    f"default.replication.factor={replicas}",
                    f"min.insync.replicas={in_sync}",
                    f"offsets.topic.replication.factor={replicas}",
                    "offsets.topic.num.partitions=1",
                    f"transaction.state.log.replication.factor={replicas}",
                    f"transaction.state.log.min.isr={in_sync}",
                    "transaction.state.log.num.partitions=1",
                    # topics are created explicitly (switchboard.topics), as in production
                    "auto.create.topics.enable=false",
                    "group.initial.rebalance.delay.ms=0",
                    "group.min.session.timeout.ms=1000",
                    # sized for a 2-core machine; the default dedupe buffer alone is 128 MB
                    "num.network.threads=2",
                    "num.io.threads=2",
                    "background.threads=2",
                    "num.recovery.threads.per.data.dir=1",
                    "log.cleaner.dedupe.buffer.size=16777216",
                    *([] if secured is None else secured.properties()),
                    "",
                ]
            )
        )
        log4j = self.data_dir / "log4j.properties"
        log4j.write_text(_LOG4J)
        return properties, log4j

    def _java(self, lib: Path, log4j: Path, *args: str) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise BrokerError("java (17+) is needed to run the local Kafka broker; install it, "
                              f"{OWN_CLUSTER}")
        return [
            java, f"-Xms{self.heap}", f"-Xmx{self.heap}", *_GC_FLAGS, "-XX:TieredStopAtLevel=1",
            f"-Xlog:gc:file={self.data_dir / 'gc.log'}",
            "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{log4j}", "-cp", f"{lib}/*", *args,
        ]

    def start(self, timeout_s: float = 120.0) -> None:
        """Fetch (once), format (once per data dir) and start; returns when the broker is up."""
        self.launch()
        self.wait_started(timeout_s)

    def launch(self) -> None:
        """Fetch (once), format (once per data dir) and start the process, without waiting
        for it to be up (`wait_started`)."""
        self._lock_data_dir()
        try:
            self._launch()
        except BaseException:
            self.stop()  # and let the data dir go
            raise

    def wait_started(self, timeout_s: float = 120.0) -> None:
        """Return once the launched broker says it has started; stop it if it does not."""
        try:
            self._wait_for_ready_line(timeout_s)
        except BaseException:
            self.stop()
            raise

    def _launch(self) -> None:
        # Each port with the setting that moves it (the tests' secured listeners have none).
        ports = [(self.port, " (set SWITCHBOARD_KAFKA_PORT to choose another)"),
                 (self.controller_port,
                  " (set SWITCHBOARD_KAFKA_CONTROLLER_PORT to choose another)")]
        if self.secured is not None:
            ports += [(port, "") for _, _, port in self.secured.listeners()]
        for port, hint in ports:
            if port_in_use(port):
                raise BrokerError(f"port {port} on 127.0.0.1 is already in use; is a broker "
                                  f"already running?{hint}")
        lib = ensure_jars(self.cache_dir)
        properties, log4j = self._write_config()
        id_file = self.data_dir / "cluster.id"
        if not id_file.exists():
            id_file.write_text(self.cluster_id or new_cluster_id())
        try:
            formatted = subprocess.run(
                self._java(lib, log4j, "kafka.tools.StorageTool", "format", "-t",
                           id_file.read_text().strip(), "-c", str(properties),
                           "--ignore-formatted",
                           *([] if self.secured is None else self.secured.scram_arguments())),
                capture_output=True, text=True, timeout=120, check=False,
            )
        except subprocess.TimeoutExpired:
            raise BrokerError("formatting Kafka storage did not finish within 120s") from None
        if formatted.returncode != 0:
            raise BrokerError(f"formatting Kafka storage failed:\n{formatted.stdout}"
                              f"{formatted.stderr}"[-3000:])
        with open(self.log_path, "wb") as out:
            self.process = subprocess.Popen(
                self._java(lib, log4j, "kafka.Kafka", str(properties)),
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,
                # Its own process group: Ctrl-C in a terminal signals the whole foreground
                # group, and the broker must outlive the services that are still flushing to
                # it; stop() ends it last.
                process_group=0,
            )

    def _lock_data_dir(self) -> None:
        """Hold the data dir while the broker runs. A second broker on it (another `run` or
        `kafka` from the same checkout, on other ports) fails on Kafka's own lock only after
        it has rewritten the config and truncated the first one's broker.log."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        lock = open(self.data_dir / DATA_LOCK, "a+")  # noqa: SIM115 - held until stop
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = _pid_in(lock)
            lock.close()
            raise BrokerError(
                f"{self.data_dir} is in use by another local broker"
                f"{f' (started by pid {holder})' if holder else ''}: stop it, or set "
                "SWITCHBOARD_DATA_DIR (and the ports) for a second one") from None
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        self._data_lock = lock

    def _wait_for_ready_line(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        assert self.process is not None
        while time.monotonic() < deadline:
            if READY_LINE in self.log_path.read_text(errors="replace"):
                return
            if self.process.poll() is not None:
                raise BrokerError(f"Kafka exited with {self.process.returncode}; last output:\n"
                                  + self.tail())
            time.sleep(0.1)
        self.stop()
        raise BrokerError(f"Kafka did not start within {timeout_s:.0f}s; last output:\n"
                          + self.tail())

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    async def wait_ready(self, timeout_s: float = 60.0) -> None:
        await wait_until_usable(self.bootstrap_servers, timeout_s)

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM for a clean shutdown (flushes logs); SIGKILL if it does not finish in time."""
        process, self.process = self.process, None
        try:
            if process is None or process.poll() is not None:
                return
            stop_process(process, timeout_s)
        finally:
            lock, self._data_lock = self._data_lock, None
            if lock is not None:
                lock.close()  # releases the flock

    def __enter__(self) -> LocalKafka:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def stop_process(process: subprocess.Popen[Any], timeout_s: float) -> None:
    """SIGTERM, then SIGKILL (and reaped) if it has not ended within `timeout_s`: a process
    that hangs on shutdown must not outlive whoever started it."""
    process.terminate()
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()

"""A real single-node Apache Kafka (KRaft) started from Maven Central jars, without Docker.

Used alike by `switchboard kafka`, the run command, the test session and the benchmarks, so
every one of them talks to the same real broker. Jars are fetched once into a cache outside the
repository; the data directory is the caller's (persistent for local use, temporary in tests).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import fcntl
import hashlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import IO

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from switchboard.logs import get_logger
from switchboard.topics import TopicSpec, ensure_topics

KAFKA_VERSION = "3.9.1"
READY_LINE = "Kafka Server started"
_READY_TOPIC = TopicSpec("switchboard.selftest.v1", "readiness round trip", partitions=1)
log = get_logger(__name__)


class BrokerError(RuntimeError):
    """The local broker could not be fetched or started; the message says what to do."""


def _pom() -> bytes:
    return resources.files("switchboard.localkafka").joinpath("pom.xml").read_bytes()


def jar_home(cache_dir: Path, pom: bytes) -> Path:
    """Where the jars of this pom.xml are kept. Named by its content, not only the Kafka
    version: a pom that changes other jars (logging, a fix) must not find the old ones, and
    a checkout with another pom must not replace the jars a running broker still loads."""
    digest = hashlib.sha256(pom).hexdigest()[:8]
    return cache_dir / f"kafka-{KAFKA_VERSION}-{digest}"


def ensure_jars(cache_dir: Path) -> Path:
    """The directory of broker jars, fetched with Maven on first use (safe across processes)."""
    pom_bytes = _pom()
    home = jar_home(cache_dir, pom_bytes)
    lib = home / "lib"
    if (lib / ".complete").exists():
        return lib
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be fetching right now
        if (lib / ".complete").exists():
            return lib
        mvn = shutil.which("mvn")
        if mvn is None:
            raise BrokerError("Maven (mvn) is needed once to fetch the Kafka jars; install it")
        pom = home / "pom.xml"
        pom.write_bytes(pom_bytes)
        staging = home / f"lib.tmp-{os.getpid()}"
        log.info("fetching kafka jars from maven central", version=KAFKA_VERSION, into=str(lib))
        try:
            _fetch_jars(mvn, pom, staging)
            shutil.rmtree(lib, ignore_errors=True)
            staging.rename(lib)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        (lib / ".complete").touch()
    return lib


# Maven 3.8 waits 30 minutes on a stalled download and retries no server error, so one bad
# moment of Maven Central fails a first run or holds CI. Here a stall ends after 30 s and a
# failed fetch is run again; what it got already stays in ~/.m2, and failures are not cached.
_FETCH_ATTEMPTS = 3
_FETCH_TIMEOUT_S = 600.0
_FETCH_RETRY_DELAY_S = 5.0
_MAVEN_READ_TIMEOUT_MS = 30_000


def _fetch_jars(mvn: str, pom: Path, staging: Path) -> None:
    failure = ""
    for attempt in range(1, _FETCH_ATTEMPTS + 1):
        if attempt > 1:
            log.warning("fetching kafka jars failed; trying again", attempt=attempt,
                        output=failure[-500:])
            time.sleep(_FETCH_RETRY_DELAY_S * (attempt - 1))
        shutil.rmtree(staging, ignore_errors=True)
        failure = _run_maven(mvn, pom, staging)
        if not failure:
            return
    raise BrokerError(f"mvn could not fetch the Kafka jars ({_FETCH_ATTEMPTS} tries):\n"
                      + failure[-3000:])


def _run_maven(mvn: str, pom: Path, staging: Path) -> str:
    """One Maven run into `staging`: what went wrong, or "" once the broker jar is there."""
    command = [
        mvn, "-B", "-q", "-f", str(pom),
        # The plugin by its full name: a bare `dependency:` prefix is first looked up in
        # Central's plugin-group metadata, and a failure there reads "No plugin found".
        "org.apache.maven.plugins:maven-dependency-plugin:copy-dependencies",
        f"-Dmaven.wagon.rto={_MAVEN_READ_TIMEOUT_MS}",  # Maven 3.8 (wagon)
        f"-Daether.connector.requestTimeout={_MAVEN_READ_TIMEOUT_MS}",  # Maven 3.9+
        "-DincludeScope=runtime", f"-DoutputDirectory={staging}",
    ]
    try:
        result = subprocess.run(command, capture_output=True, text=True,
                                timeout=_FETCH_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return f"mvn did not finish within {_FETCH_TIMEOUT_S:.0f}s"
    if result.returncode != 0 or not (staging / f"kafka_2.13-{KAFKA_VERSION}.jar").exists():
        return (result.stdout + result.stderr) or f"mvn exited with {result.returncode}"
    return ""


# Ports this process has handed out: they are bound only later (by a broker, a server).
_handed_out: set[int] = set()
_handed_out_lock = threading.Lock()


def free_port() -> int:
    """A port free on 127.0.0.1 now and never returned before by this process.

    The kernel may give a just-closed port to the next bind again (15 of 200,000 pairs of
    calls here): a broker's port and its controller's, chosen one after the other, would be
    the same, and that broker fails to start."""
    with _handed_out_lock:
        for _ in range(1000):
            port = _unbound_port()
            if port not in _handed_out:
                _handed_out.add(port)
                return port
    raise BrokerError("no free port on 127.0.0.1")


def _unbound_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _new_cluster_id() -> str:
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


# Each value is written unescaped into server.properties, a JAAS string and StorageTool's
# --add-scram argument (split at "," with surrounding quotes stripped); user names also become
# JAAS option keys (user_<name>). These sets are safe in all of them.
_SAFE_USER = re.compile(r"[A-Za-z0-9_-]+")
_SAFE_SECRET = re.compile(r"[A-Za-z0-9._~+/=-]+")


@dataclass(frozen=True)
class SecuredListener:
    """A SASL_SSL listener named SECURED, for testing clients of a TLS + SASL cluster.

    PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 all accept every user. SCRAM credentials are written
    when the storage is formatted, so they only take effect in a fresh data directory.
    With `mtls_port` and `client_ca`, a second listener, MTLS, takes TLS clients that present a
    certificate signed by that CA (and no others), as clusters that log clients in by
    certificate do.
    With `jwks_file` (a JSON Web Key Set), SECURED also takes OAUTHBEARER: a JWT signed by one
    of its keys, with `oauth_audience` as audience, logs in as its `sub`.
    """

    port: int
    keystore: Path  # PKCS12 with the broker's key and certificate
    keystore_password: str
    users: Mapping[str, str]  # name -> password
    mtls_port: int | None = None
    client_ca: Path | None = None  # PEM
    jwks_file: Path | None = None
    oauth_audience: str = "kafka"

    def __post_init__(self) -> None:
        for name, password in self.users.items():
            if not _SAFE_USER.fullmatch(name) or not _SAFE_SECRET.fullmatch(password):
                raise ValueError(f"user {name!r}: names must match {_SAFE_USER.pattern} "
                                 f"and passwords {_SAFE_SECRET.pattern}")
        if not _SAFE_SECRET.fullmatch(self.keystore_password):
            raise ValueError(f"the keystore password must match {_SAFE_SECRET.pattern}")
        if not _SAFE_SECRET.fullmatch(self.oauth_audience):
            raise ValueError(f"the OAuth audience must match {_SAFE_SECRET.pattern}")
        if (self.mtls_port is None) != (self.client_ca is None):
            raise ValueError("mtls_port and client_ca go together")

    def listeners(self) -> list[tuple[str, str, int]]:
        """(name, security protocol, port) of each listener it adds."""
        added = [("SECURED", "SASL_SSL", self.port)]
        if self.mtls_port is not None:
            added.append(("MTLS", "SSL", self.mtls_port))
        return added

    def properties(self) -> list[str]:
        """Its listener-prefixed settings; listeners and the protocol map are the caller's."""
        prefix = "listener.name.secured."
        plain_users = " ".join(f'user_{name}="{password}"'
                               for name, password in self.users.items())
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        mtls = [] if self.client_ca is None else [
            "listener.name.mtls.ssl.client.auth=required",
            "listener.name.mtls.ssl.truststore.type=PEM",
            f"listener.name.mtls.ssl.truststore.location={self.client_ca.resolve()}",
            *self._keystore("listener.name.mtls."),
        ]
        oauth = [] if self.jwks_file is None else [
            f"{prefix}oauthbearer.sasl.jaas.config="
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;",
            f"{prefix}oauthbearer.sasl.server.callback.handler.class="
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler",
            # Broker-wide, not per listener: the validator reads them so. (Kafka 4 also wants
            # the file allowed by -Dorg.apache.kafka.sasl.oauthbearer.allowed.urls.)
            f"sasl.oauthbearer.jwks.endpoint.url={self.jwks_file.resolve().as_uri()}",
            f"sasl.oauthbearer.expected.audience={self.oauth_audience}",
        ]
        mechanisms = "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512" + (",OAUTHBEARER" if oauth else "")
        return [
            f"{prefix}sasl.enabled.mechanisms={mechanisms}",
            f"{prefix}plain.sasl.jaas.config="
            f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain_users};",
            f"{prefix}scram-sha-256.sasl.jaas.config={scram}",
            f"{prefix}scram-sha-512.sasl.jaas.config={scram}",
            *self._keystore(prefix),
            *mtls,
            *oauth,
        ]

    def _keystore(self, prefix: str) -> list[str]:
        """Both listeners show the broker's one certificate."""
        return [f"{prefix}ssl.keystore.type=PKCS12",
                f"{prefix}ssl.keystore.location={self.keystore.resolve()}",
                f"{prefix}ssl.keystore.password={self.keystore_password}"]

    def scram_arguments(self) -> list[str]:
        """StorageTool format arguments: KRaft keeps SCRAM credentials in the metadata log."""
        return [
            argument
            for name, password in self.users.items()
            for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512")
            for argument in ("--add-scram", f"{mechanism}=[name={name},password={password}]")
        ]


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
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.cache_dir = cache_dir
        self.port = port
        self.controller_port = controller_port
        self.heap = heap
        self.secured = secured
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
        properties.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                    "controller.listener.names=CONTROLLER",
                    f"listeners=PLAINTEXT://127.0.0.1:{self.port},"
                    f"CONTROLLER://127.0.0.1:{self.controller_port}{listener}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}{listener}",
                    "inter.broker.listener.name=PLAINTEXT",
                    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
                    f"{protocol}",
                    f"log.dirs={logs}",
                    # one node: internal topics cannot have 3 replicas
                    "num.partitions=1",
                    "default.replication.factor=1",
                    "min.insync.replicas=1",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=1",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
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
            raise BrokerError("java (17+) is needed to run the local Kafka broker")
        return [
            java, f"-Xms{self.heap}", f"-Xmx{self.heap}", *_GC_FLAGS, "-XX:TieredStopAtLevel=1",
            f"-Xlog:gc:file={self.data_dir / 'gc.log'}",
            "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{log4j}", "-cp", f"{lib}/*", *args,
        ]

    def start(self, timeout_s: float = 120.0) -> None:
        """Fetch (once), format (once per data dir) and start; returns when the broker is up."""
        self._lock_data_dir()
        try:
            self._start(timeout_s)
        except BaseException:
            self.stop()  # and let the data dir go
            raise

    def _start(self, timeout_s: float) -> None:
        # Each port with the setting that moves it (the tests' secured listeners have none).
        ports = [(self.port, " (set SWITCHBOARD_KAFKA_PORT to choose another)"),
                 (self.controller_port,
                  " (set SWITCHBOARD_KAFKA_CONTROLLER_PORT to choose another)")]
        if self.secured is not None:
            ports += [(port, "") for _, _, port in self.secured.listeners()]
        for port, hint in ports:
            if _port_in_use(port):
                raise BrokerError(f"port {port} on 127.0.0.1 is already in use; is a broker "
                                  f"already running?{hint}")
        lib = ensure_jars(self.cache_dir)
        properties, log4j = self._write_config()
        id_file = self.data_dir / "cluster.id"
        if not id_file.exists():
            id_file.write_text(_new_cluster_id())
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
        self._wait_for_ready_line(timeout_s)

    def _lock_data_dir(self) -> None:
        """Hold the data dir while the broker runs. A second broker on it (another `run` or
        `kafka` from the same checkout, on other ports) fails on Kafka's own lock only after
        it has rewritten the config and truncated the first one's broker.log."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        lock = open(self.data_dir / "switchboard.lock", "a+")  # noqa: SIM115 - held until stop
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip()
            lock.close()
            raise BrokerError(
                f"{self.data_dir} is in use by another local broker"
                f"{f' (started by pid {holder})' if holder.isdigit() else ''}: stop it, or set "
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


def stop_process(process: subprocess.Popen[bytes], timeout_s: float) -> None:
    """SIGTERM, then SIGKILL (and reaped) if it has not ended within `timeout_s`: a process
    that hangs on shutdown must not outlive whoever started it."""
    process.terminate()
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def wait_until_usable(bootstrap_servers: str, timeout_s: float = 60.0) -> None:
    """Return once a record can be produced with acks=all and consumed back in a group."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    with _aiokafka_quiet():
        while time.monotonic() < deadline:
            try:
                await asyncio.wait_for(_round_trip(bootstrap_servers), max(1.0, deadline -
                                                                          time.monotonic()))
                return
            except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
                last_error = exc
                await asyncio.sleep(0.5)
    raise BrokerError(f"Kafka at {bootstrap_servers} is not usable: {last_error!r}")


@contextlib.contextmanager
def _aiokafka_quiet() -> Iterator[None]:
    """A restarted broker names itself a partition's leader a moment before it acts as one:
    the readiness record is refused (NotLeaderForPartition), which aiokafka retries but logs
    as a warning, the first line a user saw at every restart of `run` or `kafka`. Whatever
    keeps the broker from being usable is said all the same: in the BrokerError above."""
    logger = logging.getLogger("aiokafka")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


async def _round_trip(bootstrap_servers: str) -> None:
    await ensure_topics(bootstrap_servers, partitions=1, replication_factor=1,
                        specs=(_READY_TOPIC,))
    # The first group lookup creates the offsets topic; until it has a leader the lookup
    # fails. Done here, the wait is quiet; a consumer group would log it as an error.
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        await admin.find_coordinator("switchboard-readiness")
    finally:
        await admin.close()
    marker = uuid.uuid4().bytes
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all")
    await producer.start()
    try:
        metadata = await producer.send_and_wait(_READY_TOPIC.name, marker)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        partition = TopicPartition(_READY_TOPIC.name, metadata.partition)
        consumer.assign([partition])
        consumer.seek(partition, metadata.offset)
        record = await consumer.getone()
        if record.value != marker:
            raise BrokerError("readiness record did not come back")
    finally:
        await consumer.stop()

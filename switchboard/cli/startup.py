"""What several subcommands do before their job: find the accounts, check their ports, pick
the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shlex
import shutil
import socket
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from switchboard.settings import Settings

if TYPE_CHECKING:
    from switchboard.accounts import Accounts
    from switchboard.clients import KafkaTarget

T = TypeVar("T")
DEMO_ACCOUNTS = Path("examples/accounts.toml")
DEMO_RULES = Path("examples/rules.toml")


def invoked_as(argv0: str | None = None, executable: str | None = None) -> str:
    """This command as the user can type it again, for the commands `run` prints: not always
    .venv/bin/switchboard (the checkout's `make run`), but `switchboard` where that is the one
    on PATH (pip into an activated venv, the Docker image), the script's path as it was given
    otherwise, and `<python> -m switchboard` when started so."""
    argv0 = sys.argv[0] if argv0 is None else argv0
    if Path(argv0).name == "__main__.py":  # python -m switchboard (or switchboard.cli)
        return f"{shlex.quote(executable or sys.executable)} -m switchboard"
    on_path = shutil.which("switchboard")
    with contextlib.suppress(OSError):
        if on_path is not None and os.path.samefile(on_path, argv0):
            return "switchboard"
    return shlex.quote(argv0)


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


# How long `tail`, `replay`, `send`, `worker` and `run` (on a cluster of the user's) wait for
# Kafka to answer at all. Left to aiokafka, a cluster that never answers (a firewall dropping
# packets, a port that is not Kafka's) took as long as each client's request timeout: 40 s
# for tail, 31 for replay, 10 for send, 16 for a worker. (`serve` retries: see ingest.app.)
CONNECT_TIMEOUT_S = 10.0


class NoAnswer(Exception):
    """Kafka did not answer within CONNECT_TIMEOUT_S."""


async def reach_kafka(kafka: KafkaTarget, role: str) -> None:
    """Return once the cluster answers, else raise NoAnswer (or aiokafka's
    KafkaConnectionError when refused outright), so a tool says so within the same time
    whatever its clients' own timeouts. Each bootstrap server gets its share (aiokafka tries
    them one after the other), and a second more, so that silent servers end in NoAnswer
    rather than in whichever of the two timeouts came first."""
    from aiokafka.client import AIOKafkaClient

    from switchboard.clients import as_connection, kafka_options

    servers = max(1, len(as_connection(kafka).bootstrap_servers.split(",")))
    client = AIOKafkaClient(**kafka_options(kafka, role),
                            request_timeout_ms=int((CONNECT_TIMEOUT_S / servers + 1) * 1000))
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            await client.bootstrap()
    except TimeoutError:
        raise NoAnswer(f"no answer within {CONNECT_TIMEOUT_S:g} s") from None
    finally:
        await client.close()


def drop_stdout() -> None:
    """Send what is still to be written to stdout nowhere: its reader has gone (`| head`), and
    a write, or Python's flush at exit, would raise BrokenPipeError again ("Exception
    ignored", exit 120)."""
    _to_devnull([sys.stdout.fileno()])


def terminal_outputs() -> list[int]:
    """stdout and stderr, those of them that are a terminal: asked at start, as once the
    terminal is closed they no longer say they are one. Streams that are no file (replaced:
    captured by a test) are none."""
    fds = []
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # io.UnsupportedOperation is both
            if os.isatty(fd := stream.fileno()):
                fds.append(fd)
    return fds


def closed_terminal_outputs(fds: Sequence[int]) -> list[int]:
    """Those of `fds` (terminal_outputs() at start) whose terminal has been closed since: the
    kernel hangs a closed terminal up before it sends SIGHUP, and they no longer say they are
    one. Empty when a SIGHUP came from `kill` with the terminal still open."""
    return [fd for fd in fds if not os.isatty(fd)]


def drop_terminal_outputs(fds: Sequence[int]) -> None:
    """After SIGHUP: the terminal is closed, and each write to it would fail (EIO), the last
    ones too ("stopping…", Python's flush at exit), turning a clean stop into exit 1 or 120."""
    _to_devnull(fds)


def _to_devnull(fds: Sequence[int]) -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in fds:
            os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def cannot_reach_kafka(servers: str, exc: Exception) -> str:
    """The one line every command says when Kafka is not there. aiokafka's error says only
    "Unable to bootstrap"; why (refused, TLS, login) is in the log lines it wrote before."""
    if isinstance(exc, NoAnswer):
        return f"error: cannot reach Kafka at {servers}: {exc}"
    return f"error: cannot reach Kafka at {servers} ({exc}); the log lines above say why"


def kafka_refused(exc: BaseException, who: str) -> str | None:
    """The one line for Kafka refusing `who` its group, a topic or the cluster (a missing ACL:
    aiokafka raises GroupAuthorizationFailedError, TopicAuthorizationFailedError, ...), or
    None for any other error. Left alone it was a traceback at level critical, saying nothing
    of what to do."""
    from aiokafka.errors import KafkaError

    if not (isinstance(exc, KafkaError)
            and type(exc).__name__.endswith("AuthorizationFailedError")):
        return None
    return f"error: Kafka refused {who}: {exc} (the ACLs of its Kafka user do not allow it)"


# aiokafka's own "used wrongly" errors: raised by our code's misuse of a client, they are bugs,
# and keep their traceback.
_CLIENT_MISUSE = ("IllegalStateError", "IllegalArgumentError")


def kafka_stopped(exc: BaseException, who: str) -> str | None:
    """The one line for a Kafka error that ended `who` (a worker's start, mostly: the broker
    refusing its group's session timeout, say), or None for any other error, which stays a
    traceback. Left alone, each was a traceback at level critical, the cause on its last
    line."""
    from aiokafka.errors import BrokerResponseError, KafkaError

    if not isinstance(exc, KafkaError) or type(exc).__name__ in _CLIENT_MISUSE:
        return None
    if (refused := kafka_refused(exc, who)) is not None:
        return refused
    cause = str(exc)
    if type(exc).__name__ not in cause:  # KafkaTimeoutError(): no text at all
        cause = f"{type(exc).__name__}: {cause}" if cause else type(exc).__name__
    if not isinstance(exc, BrokerResponseError):  # the client gave up, not the broker
        return f"error: {who} stopped: Kafka: {cause}"
    return f"error: Kafka refused {who}: {cause}{_refusal_hint(exc)}"


def _refusal_hint(exc: BaseException) -> str:
    """What to change, where the refusal says it."""
    from aiokafka.errors import InvalidSessionTimeoutError

    from consumers.runtime import SESSION_TIMEOUT_MS

    if isinstance(exc, InvalidSessionTimeoutError):
        return (f" (its consumer's session timeout, {SESSION_TIMEOUT_MS / 1000:g} s, is "
                "outside the broker's group.min.session.timeout.ms to "
                "group.max.session.timeout.ms)")
    return ""


def accounts_or_exit(settings: Settings, *, demo: bool) -> Accounts | None:
    """The accounts, or None once the problem is printed. Only demo tools (`run`, `simulate`)
    fall back to the example accounts: a service must not quietly run on demo credentials."""
    from switchboard.accounts import AccountsError, load_accounts

    path = settings.accounts_file or (DEMO_ACCOUNTS if demo else None)
    if path is None:
        print("error: set SWITCHBOARD_ACCOUNTS_FILE (see examples/accounts.toml)",
              file=sys.stderr)
        return None
    if path == DEMO_ACCOUNTS and not path.exists():  # relative: found only from the clone
        print(f"error: no {path} here: run this in the Switchboard directory, or set "
              "SWITCHBOARD_ACCOUNTS_FILE", file=sys.stderr)
        return None
    try:
        return load_accounts(path)
    except AccountsError as exc:
        print(f"error: {exc}{relative_hint(path)}", file=sys.stderr)
        return None


def named_cluster(settings: Settings) -> str | None:
    """KAFKA_BOOTSTRAP_SERVERS, or None once why it cannot be asked is said on stderr: no
    cluster named (with where its value comes from: `run` and `kafka` print the line to
    paste), or an OAuth login whose tokens cannot be asked for (oauth_proxy_problem)."""
    if not settings.kafka_bootstrap_servers:
        print("error: set KAFKA_BOOTSTRAP_SERVERS (`switchboard run` or `switchboard kafka` "
              "prints it)", file=sys.stderr)
        return None
    if problem := oauth_proxy_problem(settings):
        print(problem, file=sys.stderr)
        return None
    return settings.kafka_bootstrap_servers


def oauth_proxy_problem(settings: Settings) -> str | None:
    """The `error:` line when the settings log in to Kafka with OAUTHBEARER and a proxy
    variable of the environment names a proxy httpx cannot use (ftp://, SOCKS without
    socksio), or None. The token requests take the sender's proxy (switchboard.proxy), which
    refuses such a variable whatever the host (but under NO_PROXY=*): unchecked, the first
    connection to Kafka failed, a traceback (exit 1) from a worker, tail, send and replay, and
    `serve` unready for ever. The sender's check, said as the sender says it; exit 2, a
    setting to change."""
    if not (settings.kafka_security_protocol.startswith("SASL_")
            and settings.kafka_sasl_mechanism == "OAUTHBEARER"):
        return None
    from switchboard.proxy import ProxySettingError, check_proxy_environment

    try:
        check_proxy_environment()
    except ProxySettingError as exc:
        return (f"error: {exc} (the Kafka OAuth token endpoint, "
                "SWITCHBOARD_KAFKA_OAUTH_TOKEN_URL, is asked through it)")
    # NO_PROXY is not httpx's to read any more (the token client reads no variable itself):
    # an entry it could not parse ([::1], fe80::/10) no longer stops anything.
    return None


def relative_hint(path: Path) -> str:
    """What to add to a file's error when the file is a relative path that is not there: it is
    read from the working directory, not from SWITCHBOARD_CONFIG's (whose file may name it),
    nor from a unit's (`/` under systemd unless set)."""
    if path.is_absolute() or path.exists():
        return ""
    return f" (a relative path is read from the working directory, {Path.cwd()})"


def unresolved_host(host: str, setting: str = "SWITCHBOARD_HTTP_HOST") -> tuple[int, str] | None:
    """The exit code and `error:` line when `host` names no address to listen on, or None.
    Exit 2, a setting to change (README's exit codes), as `serve`, a worker, `run` and
    `simulate` alike now say it; `serve` said 1 and a worker 2. Exit 1 when the resolver did
    not answer (EAI_AGAIN): starting again may cure that, and systemd's
    RestartPreventExitStatus=2 must not keep it down."""
    try:
        socket.getaddrinfo(host or None, None, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        code = 1 if exc.errno == socket.EAI_AGAIN else 2
        return code, (f"error: {setting}={host} does not resolve: {exc.strerror} (set it to "
                      "an address, or a name, of this machine)")
    return None


def port_taken(host: str, listeners: Sequence[tuple[str, str, int]], *,
               host_setting: str = "SWITCHBOARD_HTTP_HOST") -> str | None:
    """Why one of the (name, port setting, port) `listeners` could not listen on `host`, or
    None. uvicorn finds out only once it binds: its own message, exit 3, nothing naming the
    setting that moves the port. The probes are closed before this returns: uvicorn (the
    supervisor of `serve --workers`) binds the port itself next."""
    from switchboard.serving import listen_addresses

    with contextlib.ExitStack() as held:  # all held at once: one port given to two is taken
        for name, setting, port in listeners:
            try:
                addresses = listen_addresses(host, port)  # all of a name's, as uvicorn binds
            except socket.gaierror as exc:  # unresolved_host says it first, exit 2
                return (f"{name} cannot listen on {host}: {exc.strerror} "
                        f"(set {host_setting} to an address of this machine)")
            for family, address in addresses:
                try:
                    # SO_REUSEADDR, as uvicorn binds: a just-stopped server's closed
                    # connections do not hold the port; an IPv6 address IPv6 only, as uvicorn.
                    held.enter_context(socket.create_server(address, family=family))
                except OSError as exc:
                    why = os.strerror(exc.errno) if exc.errno else str(exc)
                    hint = (f"set {setting} to choose another port"
                            if exc.errno == errno.EADDRINUSE
                            else f"check the host ({host_setting}) and the port ({setting})")
                    return f"{name} cannot listen on {host}:{port}: {why} ({hint})"
    return None

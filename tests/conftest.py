"""Session-wide fixtures. The broker is real: started here unless KAFKA_BOOTSTRAP_SERVERS is set.

The broker started here also has a TLS + SASL listener (`secured_kafka`); with an external broker,
that fixture starts a broker of its own for it. If a broker cannot start, every test that needs
it errors with the reason: none is skipped.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from switchboard.kafka_settings import BOOTSTRAP_ENV
from switchboard.localkafka import BrokerError, LocalKafka, SecuredListener, free_port
from switchboard.settings import Settings, get_settings
from switchboard.topics import ensure_topics
from tests.kafka_helpers import (
    BrokerCertificate,
    ClientCertificate,
    SecuredKafka,
    make_broker_certificate,
    make_client_certificate,
)
from tests.oauth_server import AUDIENCE, Issuer

SECURED_USER = "switchboard-test"


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """A test that configures logging points the root handler at pytest's capture of stderr,
    closed once that test ends: later tests' lines then end in "--- Logging error ---"."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers, root.level = handlers, level


@pytest.fixture(autouse=True)
def _settings_read_afresh() -> Iterator[None]:
    """The CLI reads its settings once per process (get_settings is cached): a test calling
    main() must see its own environment, not the one an earlier test left cached."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


# The variables httpx and urllib read a proxy from (REQUEST_METHOD: urllib ignores
# HTTP_PROXY under CGI).
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "REQUEST_METHOD")


@pytest.fixture
def no_proxies(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """An environment without proxy variables (either case: urllib reads both)."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


@pytest.fixture
def sigint_ignored() -> Iterator[None]:
    """SIGINT as a shell leaves it for a background job; pytest's handler is given back."""
    before = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    yield
    signal.signal(signal.SIGINT, before)


def _start_broker(data_dir: Path, secured: SecuredListener | None) -> LocalKafka:
    broker = LocalKafka(
        data_dir,
        cache_dir=Settings().cache_dir,
        port=free_port(),
        controller_port=free_port(),
        secured=secured,
    )
    try:
        broker.start()
        asyncio.run(broker.wait_ready())
    except BrokerError as exc:
        broker.stop()
        pytest.fail(f"the test Kafka broker could not start: {exc}", pytrace=False)
    return broker


@pytest.fixture(scope="session")
def broker_certificate(tmp_path_factory: pytest.TempPathFactory) -> BrokerCertificate:
    try:
        return make_broker_certificate(tmp_path_factory.mktemp("tls"))
    except BrokerError as exc:
        pytest.fail(f"the test broker's certificate could not be made: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def client_certificate(tmp_path_factory: pytest.TempPathFactory) -> ClientCertificate:
    return make_client_certificate(tmp_path_factory.mktemp("client-tls"))


@pytest.fixture(scope="session")
def oauth_issuer(tmp_path_factory: pytest.TempPathFactory) -> Issuer:
    """Signs the OAUTHBEARER tokens the secured listener accepts."""
    return Issuer(tmp_path_factory.mktemp("oauth") / "jwks.json")


@pytest.fixture(scope="session")
def secured_listener(broker_certificate: BrokerCertificate,
                     client_certificate: ClientCertificate,
                     oauth_issuer: Issuer) -> SecuredListener:
    """The SASL_SSL listener of the local broker that serves `secured_kafka`. Two users, so the
    broker's settings for more than one are exercised too; OAUTHBEARER tokens of
    `oauth_issuer`; and the mutual-TLS listener."""
    return SecuredListener(
        jwks_file=oauth_issuer.jwks_file,
        oauth_audience=AUDIENCE,
        mtls_port=free_port(),
        client_ca=client_certificate.ca,
        port=free_port(),
        keystore=broker_certificate.keystore,
        keystore_password=broker_certificate.keystore_password,
        users={SECURED_USER: secrets.token_urlsafe(16),
               "switchboard-other": secrets.token_urlsafe(16)},
    )


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory,
                    request: pytest.FixtureRequest) -> Iterator[str]:
    external = os.environ.get(BOOTSTRAP_ENV)
    broker: LocalKafka | None = None
    if external:
        bootstrap = external
    else:
        broker = _start_broker(tmp_path_factory.mktemp("kafka"),
                               request.getfixturevalue("secured_listener"))
        bootstrap = broker.bootstrap_servers
    try:
        asyncio.run(ensure_topics(bootstrap, partitions=3, replication_factor=1))
        yield bootstrap
    finally:
        if broker is not None:
            broker.stop()


@pytest.fixture(scope="session")
def secured_kafka(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest,
                  secured_listener: SecuredListener, broker_certificate: BrokerCertificate,
                  client_certificate: ClientCertificate) -> Iterator[SecuredKafka]:
    """The TLS + SASL listener: the session broker's, or a broker of its own when the session
    uses an external one (which has no such listener)."""
    broker: LocalKafka | None = None
    if os.environ.get(BOOTSTRAP_ENV):
        broker = _start_broker(tmp_path_factory.mktemp("kafka-secured"), secured_listener)
    else:
        request.getfixturevalue("kafka_bootstrap")
    try:
        yield SecuredKafka(
            bootstrap=f"127.0.0.1:{secured_listener.port}",
            cafile=broker_certificate.cafile,
            username=SECURED_USER,
            password=secured_listener.users[SECURED_USER],
            mtls_bootstrap=f"127.0.0.1:{secured_listener.mtls_port}",
            client=client_certificate,
        )
    finally:
        if broker is not None:
            broker.stop()

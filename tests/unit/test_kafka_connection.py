"""Kafka security settings: what every client is given, and mistakes refused at start."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme

from switchboard.clients import KafkaConnection, as_connection, kafka_options, topic_name
from switchboard.kafka_settings import ssl_context
from switchboard.logs import MASK, scrub
from switchboard.oauth import ClientCredentialsToken
from switchboard.settings import Settings, get_settings
from tests.unit.fakes import run_cli, settings_error

PASSWORD = "kafka-login-password-42"
CLUSTER = {"KAFKA_BOOTSTRAP_SERVERS": "broker-1.example:9093"}
SASL_SSL = CLUSTER | {"SWITCHBOARD_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                      "SWITCHBOARD_KAFKA_SASL_USERNAME": "switchboard",
                      "SWITCHBOARD_KAFKA_SASL_PASSWORD": PASSWORD}


@pytest.fixture
def ca(tmp_path: Path) -> trustme.CA:
    return trustme.CA()


def _settings(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Settings:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()


def test_a_plain_address_is_plaintext_with_nothing_else() -> None:
    assert kafka_options("127.0.0.1:9092", "tail") == {
        "bootstrap_servers": "127.0.0.1:9092", "client_id": "switchboard-tail",
        "security_protocol": "PLAINTEXT"}
    assert Settings(kafka_bootstrap_servers="b:9092").kafka_connection().client_options(
        "ingest") == {"bootstrap_servers": "b:9092", "client_id": "switchboard-ingest",
                      "security_protocol": "PLAINTEXT"}


def test_every_client_id_has_the_configured_prefix_and_says_what_it_does(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Brokers log, throttle (quotas) and authorize (ACLs) by client id."""
    connection = _settings(monkeypatch, CLUSTER | {
        "SWITCHBOARD_KAFKA_CLIENT_ID": "acme-sms"}).kafka_connection()
    assert kafka_options(connection, "sender")["client_id"] == "acme-sms-sender"


def test_sasl_ssl_gives_every_client_the_login_and_a_verifying_tls_context(
        monkeypatch: pytest.MonkeyPatch) -> None:
    connection = _settings(monkeypatch, SASL_SSL | {
        "SWITCHBOARD_KAFKA_SASL_MECHANISM": "scram-sha-512"}).kafka_connection()
    options = connection.client_options("sender")
    context = options.pop("ssl_context")
    assert options == {"bootstrap_servers": "broker-1.example:9093",
                       "client_id": "switchboard-sender", "security_protocol": "SASL_SSL",
                       "sasl_mechanism": "SCRAM-SHA-512",
                       "sasl_plain_username": "switchboard", "sasl_plain_password": PASSWORD}
    # Without a CA file the system's CAs are trusted, as for managed clusters; never unverified.
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname


def test_tls_without_a_login_and_with_our_own_ca(
        monkeypatch: pytest.MonkeyPatch, ca: trustme.CA, tmp_path: Path) -> None:
    cafile = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    connection = _settings(monkeypatch, CLUSTER | {
        "SWITCHBOARD_KAFKA_SECURITY_PROTOCOL": "ssl",
        "SWITCHBOARD_KAFKA_SSL_CAFILE": str(cafile)}).kafka_connection()
    options = connection.client_options("ingest")
    assert options["security_protocol"] == "SSL"
    assert "sasl_mechanism" not in options
    assert len(options["ssl_context"].get_ca_certs()) == 1  # ours only, not the system's


def test_a_client_certificate_is_presented_for_mutual_tls(
        monkeypatch: pytest.MonkeyPatch, ca: trustme.CA, tmp_path: Path) -> None:
    client = ca.issue_cert("switchboard@example")
    certfile, keyfile = tmp_path / "client.pem", tmp_path / "client.key"
    client.cert_chain_pems[0].write_to_path(str(certfile))
    client.private_key_pem.write_to_path(str(keyfile))
    context = ssl_context(_settings(monkeypatch, CLUSTER | {
        "SWITCHBOARD_KAFKA_SECURITY_PROTOCOL": "SSL",
        "SWITCHBOARD_KAFKA_SSL_CERTFILE": str(certfile),
        "SWITCHBOARD_KAFKA_SSL_KEYFILE": str(keyfile)}))
    assert context.verify_mode is ssl.CERT_REQUIRED


def _encrypted_client_key(ca: trustme.CA, tmp_path: Path, password: bytes) -> dict[str, str]:
    """The settings of a client certificate whose key file is encrypted with `password`."""
    from cryptography.hazmat.primitives import serialization

    client = ca.issue_cert("switchboard@example")
    key = serialization.load_pem_private_key(client.private_key_pem.bytes(), password=None)
    certfile, keyfile = tmp_path / "client.pem", tmp_path / "client.key"
    client.cert_chain_pems[0].write_to_path(str(certfile))
    keyfile.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password)))
    return CLUSTER | {"SWITCHBOARD_KAFKA_SECURITY_PROTOCOL": "SSL",
                      "SWITCHBOARD_KAFKA_SSL_CERTFILE": str(certfile),
                      "SWITCHBOARD_KAFKA_SSL_KEYFILE": str(keyfile)}


def test_an_encrypted_key_without_its_password_is_a_clear_error_not_a_prompt(
        monkeypatch: pytest.MonkeyPatch, ca: trustme.CA, tmp_path: Path) -> None:
    """Given no password, OpenSSL asks for one on the terminal: `run` or a worker started by
    hand would wait there, and a service without a terminal fail with 'bad decrypt'."""
    env = _encrypted_client_key(ca, tmp_path, b"key-password-7")
    with pytest.raises(ValueError, match="SWITCHBOARD_KAFKA_SSL_KEY_PASSWORD"):
        ssl_context(_settings(monkeypatch, env))
    context = ssl_context(_settings(monkeypatch, env | {
        "SWITCHBOARD_KAFKA_SSL_KEY_PASSWORD": "key-password-7"}))
    assert context.verify_mode is ssl.CERT_REQUIRED


def test_the_password_is_kept_out_of_reprs_and_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SASL_SSL.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        settings = get_settings()  # what every command calls: it registers the secret
    finally:
        get_settings.cache_clear()
    assert PASSWORD not in repr(settings)
    assert PASSWORD not in repr(settings.kafka_connection())
    assert str(settings.kafka_connection()) == "broker-1.example:9093"
    assert scrub(f"login failed: switchboard:{PASSWORD}") == f"login failed: switchboard:{MASK}"


@pytest.mark.parametrize(("env", "says"), [
    (CLUSTER | {"SWITCHBOARD_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"},
     "SASL_SSL needs kafka_sasl_username and kafka_sasl_password"),
    (CLUSTER | {"SWITCHBOARD_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "SWITCHBOARD_KAFKA_SASL_PASSWORD": PASSWORD},
     "SASL_SSL needs kafka_sasl_username and kafka_sasl_password"),
    (CLUSTER | {"SWITCHBOARD_KAFKA_SASL_USERNAME": "u",
                "SWITCHBOARD_KAFKA_SASL_PASSWORD": PASSWORD},
     "a SASL login is set but kafka_security_protocol is PLAINTEXT"),
    (CLUSTER | {"SWITCHBOARD_KAFKA_SECURITY_PROTOCOL": "TLS"},
     "kafka_security_protocol (SWITCHBOARD_KAFKA_SECURITY_PROTOCOL): Input should be"),
    (CLUSTER | {"SWITCHBOARD_KAFKA_COMPRESSION": "brotli"},
     "kafka_compression (SWITCHBOARD_KAFKA_COMPRESSION): Input should be"),
    (SASL_SSL | {"SWITCHBOARD_KAFKA_SASL_MECHANISM": "GSSAPI"},
     "kafka_sasl_mechanism (SWITCHBOARD_KAFKA_SASL_MECHANISM): Input should be"),
    (CLUSTER | {"SWITCHBOARD_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "SWITCHBOARD_KAFKA_SASL_USERNAME": "u", "SWITCHBOARD_KAFKA_SASL_PASSWORD": PASSWORD,
                "SWITCHBOARD_KAFKA_SSL_CAFILE": "/etc/hostname"},
     "TLS files are set but kafka_security_protocol is SASL_PLAINTEXT"),
    (SASL_SSL | {"SWITCHBOARD_KAFKA_SSL_CAFILE": "/nonexistent/ca.pem"},
     "kafka_ssl_cafile: no such file: /nonexistent/ca.pem"),
    (SASL_SSL | {"SWITCHBOARD_KAFKA_SSL_KEYFILE": "/etc/hostname"},
     "kafka_ssl_keyfile needs kafka_ssl_certfile"),
    (SASL_SSL | {"SWITCHBOARD_KAFKA_SSL_CAFILE": __file__},
     "cannot use the Kafka TLS files"),
])
def test_security_mistakes_are_one_error_line_without_the_password(
        env: dict[str, str], says: str) -> None:
    result = run_cli(env, "schema")
    assert result.returncode == 2
    assert says in result.stderr
    assert "Traceback" not in result.stderr
    assert PASSWORD not in result.stderr


def test_the_local_broker_cannot_be_given_security_settings(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_KAFKA_SECURITY_PROTOCOL", "SSL")
    with pytest.raises(ValueError, match="the local broker takes plaintext only"):
        Settings()


def test_clients_need_a_cluster() -> None:
    with pytest.raises(ValueError, match="set KAFKA_BOOTSTRAP_SERVERS"):
        Settings().kafka_connection()


def test_settings_errors_are_settings_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    assert "the local broker takes plaintext only" in str(settings_error())


def test_a_connection_can_be_built_directly() -> None:
    connection = KafkaConnection("b:9093", security_protocol="SSL")
    assert connection.client_options("tail")["ssl_context"].verify_mode is ssl.CERT_REQUIRED


def test_producers_compress_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    assert as_connection("b:9092").producer_options("ingest")["compression_type"] is None
    connection = _settings(monkeypatch, CLUSTER | {
        "SWITCHBOARD_KAFKA_COMPRESSION": "ZSTD"}).kafka_connection()
    assert connection.producer_options("ingest")["compression_type"] == "zstd"
    assert "compression_type" not in kafka_options(connection, "tail")  # consumers: no such option


def test_the_name_prefix_goes_before_every_topic_and_group_on_the_cluster(
        monkeypatch: pytest.MonkeyPatch) -> None:
    connection = _settings(monkeypatch, CLUSTER | {
        "SWITCHBOARD_KAFKA_NAME_PREFIX": "staging."}).kafka_connection()
    assert connection.topic("switchboard.raw.v1") == "staging.switchboard.raw.v1"
    assert connection.group("switchboard-sender") == "staging.switchboard-sender"
    assert connection.plain_topic("staging.switchboard.raw.v1") == "switchboard.raw.v1"
    assert topic_name(connection, "switchboard.raw.v1") == "staging.switchboard.raw.v1"
    # Without one (a plain address, the default), names are as the docs give them.
    assert topic_name("b:9092", "switchboard.raw.v1") == "switchboard.raw.v1"
    assert KafkaConnection("b:9092").group("switchboard-sender") == "switchboard-sender"


@pytest.mark.parametrize("prefix", ["staging/", "two words.", "tenant:1.", "ü.", "x" * 201,
                                    "__internal."])
def test_a_name_prefix_kafka_would_refuse_is_refused_at_start(
        monkeypatch: pytest.MonkeyPatch, prefix: str) -> None:
    with pytest.raises(ValueError, match="kafka_name_prefix"):
        _settings(monkeypatch, CLUSTER | {"SWITCHBOARD_KAFKA_NAME_PREFIX": prefix})


OAUTH = CLUSTER | {"SWITCHBOARD_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                   "SWITCHBOARD_KAFKA_SASL_MECHANISM": "oauthbearer",
                   "SWITCHBOARD_KAFKA_OAUTH_TOKEN_URL": "https://login.example/oauth2/token",
                   "SWITCHBOARD_KAFKA_OAUTH_CLIENT_ID": "switchboard",
                   "SWITCHBOARD_KAFKA_OAUTH_CLIENT_SECRET": PASSWORD}


def test_oauthbearer_gives_every_client_one_token_source_and_no_password(
        monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(monkeypatch, OAUTH | {
        "SWITCHBOARD_KAFKA_OAUTH_SCOPE": "kafka",
        "SWITCHBOARD_KAFKA_OAUTH_EXTENSIONS": '{"logicalCluster": "lkc-1", "identityPoolId": '
                                              '"pool-2"}'})
    connection = settings.kafka_connection()
    options = connection.client_options("sender")
    token = options["sasl_oauth_token_provider"]
    assert isinstance(token, ClientCredentialsToken)
    assert options["sasl_mechanism"] == "OAUTHBEARER"
    assert "sasl_plain_password" not in options and "sasl_plain_username" not in options
    assert connection.client_options("tail")["sasl_oauth_token_provider"] is token
    assert (token.token_url, token.client_id, token.scope) == (
        "https://login.example/oauth2/token", "switchboard", "kafka")
    assert token.extensions() == {"logicalCluster": "lkc-1", "identityPoolId": "pool-2"}
    assert PASSWORD in settings.secret_values()
    assert PASSWORD not in repr(connection) + repr(token)


@pytest.mark.parametrize(("change", "error"), [
    ({"SWITCHBOARD_KAFKA_OAUTH_CLIENT_SECRET": ""}, "OAUTHBEARER needs kafka_oauth_client_secret"),
    ({"SWITCHBOARD_KAFKA_OAUTH_TOKEN_URL": ""}, "OAUTHBEARER needs kafka_oauth_token_url"),
    ({"SWITCHBOARD_KAFKA_OAUTH_TOKEN_URL": "http://login.example/token"},
     "must be an https URL"),
    ({"SWITCHBOARD_KAFKA_SASL_USERNAME": "me", "SWITCHBOARD_KAFKA_SASL_PASSWORD": "pw"},
     "not kafka_sasl_username/password"),
    ({"SWITCHBOARD_KAFKA_SASL_MECHANISM": "PLAIN", "SWITCHBOARD_KAFKA_SASL_USERNAME": "me",
      "SWITCHBOARD_KAFKA_SASL_PASSWORD": "pw"}, "used only with kafka_sasl_mechanism OAUTHBEARER"),
    ({"SWITCHBOARD_KAFKA_OAUTH_TOKEN_URL": "https://app:pw@login.example/token"},
     "must not hold a user or password"),
    ({"SWITCHBOARD_KAFKA_OAUTH_TOKEN_URL": "https://login.example/to\x01ken"}, "not a URL"),
    ({"SWITCHBOARD_KAFKA_OAUTH_EXTENSIONS": '{"auth": "x"}'}, "'auth' is not a valid extension"),
    ({"SWITCHBOARD_KAFKA_OAUTH_EXTENSIONS": '{"logical-cluster": "x"}'}, "letters only"),
    ({"SWITCHBOARD_KAFKA_OAUTH_EXTENSIONS": '{"logicalCluster": ""}'}, "printable ASCII"),
    ({"SWITCHBOARD_KAFKA_OAUTH_EXTENSIONS": '{"logicalCluster": "a\\u0001b"}'},
     "printable ASCII"),
    ({"SWITCHBOARD_KAFKA_OAUTH_CAFILE": "/nonexistent/oauth-ca.pem"},
     "kafka_oauth_cafile: cannot use /nonexistent/oauth-ca.pem: .*No such file"),
    ({"SWITCHBOARD_KAFKA_OAUTH_CAFILE": __file__}, "kafka_oauth_cafile: cannot use .*no certif"),
    ({"SWITCHBOARD_KAFKA_SASL_MECHANISM": "PLAIN", "SWITCHBOARD_KAFKA_OAUTH_CAFILE": __file__,
      "SWITCHBOARD_KAFKA_OAUTH_TOKEN_URL": "", "SWITCHBOARD_KAFKA_OAUTH_CLIENT_ID": "",
      "SWITCHBOARD_KAFKA_OAUTH_CLIENT_SECRET": "", "SWITCHBOARD_KAFKA_SASL_USERNAME": "me",
      "SWITCHBOARD_KAFKA_SASL_PASSWORD": "pw"},
     "kafka_oauth_cafile set, but they are used only with kafka_sasl_mechanism OAUTHBEARER"),
])
def test_oauth_settings_that_would_not_work_are_refused_at_start(
        monkeypatch: pytest.MonkeyPatch, change: dict[str, str], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        _settings(monkeypatch, OAUTH | change)


def test_a_token_endpoint_on_this_machine_may_be_plain_http(
        monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(monkeypatch, OAUTH | {
        "SWITCHBOARD_KAFKA_OAUTH_TOKEN_URL": "http://127.0.0.1:8081/token"})
    assert settings.kafka_connection().oauth_token is not None


def test_extensions_that_are_not_json_are_a_settings_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in (OAUTH | {"SWITCHBOARD_KAFKA_OAUTH_EXTENSIONS": "{logicalCluster"}).items():
        monkeypatch.setenv(name, value)
    assert str(settings_error()) == (
        "invalid settings: kafka_oauth_extensions (SWITCHBOARD_KAFKA_OAUTH_EXTENSIONS): not "
        'valid JSON (the environment gives it as JSON, e.g. {"name": "value"})')


def test_every_connection_of_a_process_shares_one_token_source(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`run` builds a connection for topics, ingest and each worker: one token for all."""
    settings = _settings(monkeypatch, OAUTH)
    first, second = settings.kafka_connection(), Settings().kafka_connection()
    assert first.oauth_token is not None and first.oauth_token is second.oauth_token


def test_a_client_secret_of_the_wrong_type_is_not_echoed(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "switchboard.toml"
    config.write_text("kafka_oauth_client_secret = 12345678901\n")
    monkeypatch.setenv("SWITCHBOARD_CONFIG", str(config))
    refused = str(settings_error())
    assert "kafka_oauth_client_secret" in refused
    assert "12345678901" not in refused

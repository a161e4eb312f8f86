"""What the Kafka settings mean for the clients: the checks that refuse a combination that
would not work (a login with PLAINTEXT, a missing file), the TLS context, the OAuth token
source, and the connection every client is built from."""

from __future__ import annotations

import re
import ssl
from functools import lru_cache
from typing import TYPE_CHECKING

from switchboard.clients import KafkaConnection
from switchboard.oauth import ClientCredentialsToken
from switchboard.urls import http_url

if TYPE_CHECKING:
    from switchboard.settings import Settings

BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP_SERVERS"
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
EXTENSION_KEY = re.compile(r"[A-Za-z]+")
EXTENSION_VALUE = re.compile(r"[\x21-\x7E \t\r\n]+")


def check_security(settings: Settings) -> None:
    """Settings that would be ignored are refused: a login given with PLAINTEXT, or a CA
    file without TLS, is a mistake that would otherwise show only as a refused connection."""
    protocol = settings.kafka_security_protocol
    sasl, tls = protocol.startswith("SASL_"), protocol.endswith("SSL")
    if protocol != "PLAINTEXT" and settings.uses_local_kafka:
        raise ValueError("kafka_security_protocol applies to the cluster named by "
                         f"{BOOTSTRAP_ENV}; the local broker takes plaintext only")
    login = settings.kafka_sasl_username or settings.kafka_sasl_password
    oauth = sasl and settings.kafka_sasl_mechanism == "OAUTHBEARER"
    if oauth:
        _check_oauth(settings)
    elif sasl and not (settings.kafka_sasl_username and settings.kafka_sasl_password):
        raise ValueError(f"{protocol} needs kafka_sasl_username and kafka_sasl_password")
    if not sasl and login:
        raise ValueError(f"a SASL login is set but kafka_security_protocol is {protocol}: "
                         "use SASL_SSL (or SASL_PLAINTEXT)")
    if oauth and login:
        raise ValueError("OAUTHBEARER logs in with kafka_oauth_client_id and "
                         "kafka_oauth_client_secret, not kafka_sasl_username/password")
    if not oauth and _oauth_settings(settings):
        raise ValueError(f"{', '.join(_oauth_settings(settings))} set, but they are used only "
                         "with kafka_sasl_mechanism OAUTHBEARER and a SASL_ protocol")
    files = {"kafka_ssl_cafile": settings.kafka_ssl_cafile,
             "kafka_ssl_certfile": settings.kafka_ssl_certfile,
             "kafka_ssl_keyfile": settings.kafka_ssl_keyfile}
    if not tls and (any(files.values()) or settings.kafka_ssl_key_password):
        raise ValueError(f"TLS files are set but kafka_security_protocol is {protocol}: "
                         "use SSL or SASL_SSL")
    if settings.kafka_ssl_keyfile and not settings.kafka_ssl_certfile:
        raise ValueError("kafka_ssl_keyfile needs kafka_ssl_certfile (the client certificate)")
    for name, path in files.items():
        if path is not None and not path.is_file():
            raise ValueError(f"{name}: no such file: {path}")
    if tls:
        ssl_context(settings)  # unreadable certificates fail now, with the others


def _oauth_settings(settings: Settings) -> list[str]:
    return [name for name in ("kafka_oauth_token_url", "kafka_oauth_client_id",
                              "kafka_oauth_client_secret", "kafka_oauth_scope",
                              "kafka_oauth_extensions", "kafka_oauth_cafile")
            if getattr(settings, name)]


def _check_oauth(settings: Settings) -> None:
    missing = [name for name in ("kafka_oauth_token_url", "kafka_oauth_client_id",
                                 "kafka_oauth_client_secret") if not getattr(settings, name)]
    if missing:
        raise ValueError(f"OAUTHBEARER needs {', '.join(missing)}")
    try:
        url = http_url(str(settings.kafka_oauth_token_url), "https://login.example.com/token")
    except ValueError as exc:
        raise ValueError(f"kafka_oauth_token_url {exc}") from None
    # The client secret goes with each request: in clear text only to this machine.
    if url.scheme != "https" and url.host not in LOOPBACK_HOSTS:
        raise ValueError("kafka_oauth_token_url must be an https URL (http only for "
                         f"localhost), not {url.scheme or 'no scheme'}://{url.host}")
    if url.userinfo:  # it would be logged with the URL; the credentials have settings
        raise ValueError("kafka_oauth_token_url must not hold a user or password: use "
                         "kafka_oauth_client_id and kafka_oauth_client_secret")
    for key, value in settings.kafka_oauth_extensions.items():
        # Kafka's rules for SASL extensions (KIP-342); "auth" carries the token itself.
        if not EXTENSION_KEY.fullmatch(key) or key == "auth":
            raise ValueError(f"kafka_oauth_extensions: {key!r} is not a valid extension "
                             "name (letters only, not 'auth')")
        if not EXTENSION_VALUE.fullmatch(value):
            raise ValueError(f"kafka_oauth_extensions: the value of {key} must be "
                             "printable ASCII, not empty")
    if settings.kafka_oauth_cafile is not None:
        try:
            ssl.create_default_context(cafile=str(settings.kafka_oauth_cafile))
        except (ssl.SSLError, OSError) as exc:
            raise ValueError(f"kafka_oauth_cafile: cannot use {settings.kafka_oauth_cafile}: "
                             f"{exc}") from None


def ssl_context(settings: Settings) -> ssl.SSLContext:
    """TLS as the settings say: verify the cluster (its hostname too) against the CA file,
    or the system's CAs; present a client certificate if one is set."""
    try:
        context = ssl.create_default_context(
            cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None)
        if settings.kafka_ssl_certfile:
            password = settings.kafka_ssl_key_password
            context.load_cert_chain(
                settings.kafka_ssl_certfile, settings.kafka_ssl_keyfile,
                password.get_secret_value() if password else _no_key_password)
    except _KeyPasswordMissing:
        raise ValueError("the Kafka TLS key file is encrypted: set "
                         "SWITCHBOARD_KAFKA_SSL_KEY_PASSWORD to its password") from None
    except (ssl.SSLError, OSError) as exc:
        raise ValueError(f"cannot use the Kafka TLS files: {exc}") from None
    return context


class _KeyPasswordMissing(Exception):
    """The key file asks for a password and none is set."""


def _no_key_password() -> str:
    """Asked for only when the key is encrypted. Without a password argument at all, OpenSSL
    prompts on the terminal: a process started by hand would wait there unseen."""
    raise _KeyPasswordMissing


def connection(settings: Settings) -> KafkaConnection:
    """How every client reaches the cluster (ValueError without KAFKA_BOOTSTRAP_SERVERS)."""
    if not settings.kafka_bootstrap_servers:
        raise ValueError(f"no Kafka cluster: set {BOOTSTRAP_ENV}")
    password = settings.kafka_sasl_password
    protocol = settings.kafka_security_protocol
    oauth_secret = settings.kafka_oauth_client_secret
    oauth_token = token_source(
        str(settings.kafka_oauth_token_url), str(settings.kafka_oauth_client_id),
        oauth_secret.get_secret_value(), settings.kafka_oauth_scope,
        tuple(sorted(settings.kafka_oauth_extensions.items())),
        str(settings.kafka_oauth_cafile) if settings.kafka_oauth_cafile else None,
    ) if oauth_secret is not None and settings.kafka_sasl_mechanism == "OAUTHBEARER" else None
    return KafkaConnection(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id_prefix=settings.kafka_client_id,
        security_protocol=protocol,
        sasl_mechanism=settings.kafka_sasl_mechanism,
        sasl_username=settings.kafka_sasl_username,
        sasl_password=password.get_secret_value() if password else None,
        oauth_token=oauth_token,
        ssl_context=ssl_context(settings) if protocol.endswith("SSL") else None,
        compression=settings.kafka_compression,
        name_prefix=settings.kafka_name_prefix)


@lru_cache(maxsize=8)
def token_source(token_url: str, client_id: str, client_secret: str, scope: str | None,
                 extensions: tuple[tuple[str, str], ...],
                 cafile: str | None) -> ClientCredentialsToken:
    """One per process and login: ingest and each worker of `run` build their own connection,
    and should not each fetch (and renew) a token."""
    return ClientCredentialsToken(token_url, client_id, client_secret, scope=scope,
                                  extensions=dict(extensions), cafile=cafile)

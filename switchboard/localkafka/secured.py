"""A TLS + SASL listener (and an mTLS one) on the local broker, for testing clients of a secured
cluster."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

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

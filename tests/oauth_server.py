"""An OAuth 2 authorization server for the OAUTHBEARER tests: it signs JWTs with a key whose
public half the test broker trusts (a JWKS file), and serves a client credentials token
endpoint on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl

import jwt
import orjson
import trustme
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from switchboard.localkafka import free_port
from switchboard.serving import EmbeddedServer

AUDIENCE = "kafka"


@dataclass
class Issuer:
    """Signs tokens; `jwks_file` is what the broker verifies them with."""

    jwks_file: Path
    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048))
    key_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def __post_init__(self) -> None:
        public = orjson.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        self.jwks_file.write_bytes(orjson.dumps(
            {"keys": [public | {"kid": self.key_id, "use": "sig", "alg": "RS256"}]}))

    def sign(self, subject: str, lifetime_s: int = 3600, audience: str = AUDIENCE) -> str:
        now = int(time.time())
        return jwt.encode({"sub": subject, "aud": audience, "iat": now, "exp": now + lifetime_s,
                           "scope": "kafka"}, self.key, algorithm="RS256",
                          headers={"kid": self.key_id})


@dataclass
class TokenEndpoint:
    """What the token endpoint was asked, for the tests to check."""

    url: str
    requests: list[dict[str, str]] = field(default_factory=list)


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    user, _, password = base64.b64decode(encoded).decode().partition(":")
    return user, password


@asynccontextmanager
async def token_endpoint(issuer: Issuer, clients: dict[str, str], *, lifetime_s: int = 3600,
                         signer: Issuer | None = None,
                         tls: trustme.CA | None = None) -> AsyncIterator[TokenEndpoint]:
    """Serve `/token` for `clients` (id -> secret). `signer`: sign with another key (tokens
    the broker must refuse); `tls`: serve https with a certificate this CA issued."""
    port = free_port()
    endpoint = TokenEndpoint(f"{'https' if tls else 'http'}://127.0.0.1:{port}/token")

    async def token(request: Request) -> JSONResponse:
        form = dict(parse_qsl((await request.body()).decode()))
        endpoint.requests.append(form)
        credentials = _basic_credentials(request)
        if form.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        if credentials is None or clients.get(credentials[0]) != credentials[1]:
            return JSONResponse({"error": "invalid_client",
                                 "error_description": "client authentication failed"},
                                status_code=401)
        access_token = (signer or issuer).sign(credentials[0], lifetime_s)
        return JSONResponse({"access_token": access_token, "token_type": "Bearer",
                             "expires_in": lifetime_s})

    app = Starlette(routes=[Route("/token", token, methods=["POST"])])
    with ExitStack() as files:
        certificate = None
        if tls is not None:
            certificate = files.enter_context(
                tls.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.tempfile())
        server = EmbeddedServer(uvicorn.Config(
            app, host="127.0.0.1", port=port, log_config=None, access_log=False,
            ssl_certfile=certificate, ssl_keyfile=certificate))
        async with _serving(server):
            yield endpoint


@asynccontextmanager
async def _serving(server: EmbeddedServer) -> AsyncIterator[None]:
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(200):
            if server.started:
                break
            await asyncio.sleep(0.02)
        yield
    finally:
        server.should_exit = True
        await task

"""How providers sign their webhooks: the other side of `ingest.auth`.

The provider simulator uses it to call ingest the way real providers do, and the tests use it
to build authentic (and deliberately inauthentic) requests.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from urllib.parse import parse_qsl, urlencode

import jwt


def sign(scheme: str, secret: str, *, url: str, body: bytes, query: str = "",
         username: str | None = None, header: str = "x-switchboard-token",
         now: float | None = None) -> dict[str, str]:
    """The headers a provider using `scheme` would send for this request."""
    timestamp = str(int(now if now is not None else time.time()))
    if scheme == "basic":
        token = base64.b64encode(f"{username}:{secret}".encode()).decode()
        return {"authorization": f"Basic {token}"}
    if scheme == "token":
        return {header: secret}
    if scheme == "bird-signature":
        message = b"\n".join([timestamp.encode(), url.encode(), hashlib.sha256(body).digest()])
        digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
        return {"messagebird-request-timestamp": timestamp,
                "messagebird-signature": base64.b64encode(digest).decode()}
    if scheme == "messagebird-v1":
        sorted_query = urlencode(sorted(parse_qsl(query, keep_blank_values=True)))
        message = b"\n".join([timestamp.encode(), sorted_query.encode(),
                              hashlib.sha256(body).digest()])
        digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
        return {"messagebird-request-timestamp": timestamp,
                "messagebird-signature": base64.b64encode(digest).decode()}
    if scheme == "messagebird-jwt":
        claims: dict[str, object] = {
            "iss": "MessageBird", "nbf": int(timestamp), "exp": int(timestamp) + 60,
            "jti": str(uuid.uuid4()), "url_hash": hashlib.sha256(url.encode()).hexdigest(),
        }
        if body:
            claims["payload_hash"] = hashlib.sha256(body).hexdigest()
        return {"messagebird-signature-jwt": jwt.encode(claims, secret, algorithm="HS256")}
    if scheme == "standard-webhooks":
        webhook_id = f"msg_{uuid.uuid4().hex}"
        key = base64.b64decode(secret.removeprefix("whsec_"))
        digest = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body,
                          hashlib.sha256).digest()
        return {"webhook-id": webhook_id, "webhook-timestamp": timestamp,
                "webhook-signature": "v1," + base64.b64encode(digest).decode()}
    if scheme == "hub-signature":
        return {"x-hub-signature": hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}
    raise ValueError(f"unknown signing scheme {scheme!r}")

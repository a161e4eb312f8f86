"""What every webhook authentication scheme (ingest.auth) reads with: the request as signed,
the error a check raises, and the checks the schemes share (a credential header's one value, a
timestamp's freshness, constant-time matching of a secret or an HMAC against each of the
account's secrets). No scheme of its own: those are in ingest.auth, which this keeps small.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Mapping
from dataclasses import dataclass


class AuthError(Exception):
    """Authentication failed; `reason` is safe to log and to return (contains no secret)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SignedRequest:
    method: str
    url: str  # the full URL as the provider called it (scheme, host, path, query)
    query: str
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    now: float
    # Names of the headers that came more than once (`headers` holds the last copy): a
    # credential among them is refused, see credential_header.
    repeated: frozenset[str] = frozenset()


def equal(a: bytes | str, b: bytes | str) -> bool:
    """Constant-time: how long a comparison takes must not tell how much of a secret matched."""
    a_bytes = a.encode() if isinstance(a, str) else a
    b_bytes = b.encode() if isinstance(b, str) else b
    return hmac.compare_digest(a_bytes, b_bytes)


# Whitespace around a header value is not part of it (RFC 9110 5.5). uvicorn's h11 parser
# strips it, its httptools parser keeps what trails: stripped here, so both authenticate alike.
OWS = " \t"


def credential_header(request: SignedRequest, name: str) -> str:
    """A credential header's one value. Sent twice, it is refused rather than one copy picked:
    a proxy in front may have checked (or logged, or rate-limited by) the other one, and no
    provider sends a credential twice (RFC 9110 allows a repeated field only as a list)."""
    if name in request.repeated:
        raise AuthError(f"{name} header sent more than once")
    value = request.headers.get(name, "").strip(OWS)
    if not value:
        raise AuthError(f"missing {name} header")
    return value


# Clocks differ a little; a timestamp further ahead than this was not made by the provider
# for a request sent now (and would stretch the replay window into the future).
MAX_CLOCK_SKEW_S = 300


def check_fresh(timestamp: str, max_age_s: int, now: float) -> None:
    """AuthError unless a signature's Unix timestamp is within the replay window."""
    try:
        sent = int(timestamp)
        age = now - sent  # past a float's range (309 digits) this raised: a 500, unsigned
    except ValueError:
        raise AuthError("signature timestamp is not a number") from None
    except OverflowError:
        raise AuthError("signature timestamp is not a time") from None
    if age > max_age_s:
        raise AuthError(f"signature timestamp older than the {max_age_s}s window")
    if -age > MAX_CLOCK_SKEW_S:
        raise AuthError(f"signature timestamp more than {MAX_CLOCK_SKEW_S}s in the future")


def hmac_digest(key: bytes, message: bytes, digest: str = "sha256") -> bytes:
    return hmac.new(key, message, digest).digest()


def matching_secret(offered: str, secrets: list[str]) -> int | None:
    """The index of the secret equal to what the request offered, or None."""
    for index, secret in enumerate(secrets):
        if equal(offered, secret):
            return index
    return None


def signed_with(signature: bytes, message: bytes, secrets: list[str]) -> int | None:
    """The index of the secret whose HMAC-SHA256 of the message is the signature, or None."""
    for index, secret in enumerate(secrets):
        if equal(hmac_digest(secret.encode(), message), signature):
            return index
    return None


def decode_signature(value: str) -> bytes:
    """A base64 signature's bytes; AuthError (without the value) if it is not base64."""
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:  # binascii.Error is one
        raise AuthError("signature is not valid base64") from None

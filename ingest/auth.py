"""Webhook authentication schemes, verified over the raw request bytes.

Each scheme is one function; the account's `auth.scheme` picks it. Every comparison is
constant-time, every secret of the account (two during a rotation) is tried, and failures say
what was wrong without echoing any secret or signature. A verifier returns which secret
matched, as its index in the account's list: 0 for the first, more for an older one still
accepted during a rotation (what ingest counts, so an operator sees when it is unused). The
request they read, their error and the checks they share are in ingest.credentials.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable
from urllib.parse import parse_qsl, unquote_plus, urlencode

import jwt
import orjson

from ingest.credentials import (
    OWS,
    check_fresh,
    credential_header,
    decode_signature,
    equal,
    hmac_digest,
    matching_secret,
    signed_with,
)
from ingest.credentials import AuthError as AuthError  # ingest and the tests import them here
from ingest.credentials import SignedRequest as SignedRequest
from normalizers.base import NormalizeError
from normalizers.bodies import form_pairs, query_text
from switchboard.accounts import AuthConfig


def repeated_headers(raw: list[tuple[bytes, bytes]]) -> frozenset[str]:
    """The names that occur more than once in ASGI's header list."""
    seen: set[bytes] = set()
    repeated: set[str] = set()
    for name, _ in raw:
        if name in seen:
            repeated.add(name.decode("latin-1"))
        seen.add(name)
    return frozenset(repeated)


# The headers each scheme reads its credentials from (the token scheme's is the account's own).
_CREDENTIAL_HEADERS: dict[str, tuple[str, ...]] = {
    "basic": ("authorization",),
    "bird-signature": ("messagebird-request-timestamp", "messagebird-signature"),
    "messagebird-v1": ("messagebird-request-timestamp", "messagebird-signature"),
    "messagebird-jwt": ("messagebird-signature-jwt",),
    "standard-webhooks": ("webhook-id", "webhook-timestamp", "webhook-signature"),
    "hub-signature": ("x-hub-signature",),
}


def credential_headers(config: AuthConfig) -> tuple[str, ...]:
    return _CREDENTIAL_HEADERS.get(config.scheme) or (config.header,)


def refuse_repeated(repeated: frozenset[str], config: AuthConfig) -> None:
    """AuthError if one of the scheme's credential headers came twice (see credential_header),
    as its verifier would: said from the headers alone, so before a signed request's body is
    read."""
    for name in credential_headers(config):
        if name in repeated:
            raise AuthError(f"{name} header sent more than once")


def verify_basic(request: SignedRequest, config: AuthConfig) -> int:
    header = credential_header(request, "authorization")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        raise AuthError("authorization is not Basic")
    try:
        user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except ValueError:  # binascii.Error, UnicodeDecodeError, and non-ASCII input
        raise AuthError("malformed Basic credentials") from None
    user_ok = equal(user, config.username or "")
    matched = matching_secret(password, config.secret_values())
    if matched is None or not user_ok:
        raise AuthError("wrong username or password")
    return matched


def verify_token(request: SignedRequest, config: AuthConfig) -> int:
    if config.header in request.repeated:
        raise AuthError(f"{config.header} header sent more than once")
    token = request.headers.get(config.header, "").strip(OWS)
    if not token:
        tokens = [value for name, value in parse_qsl(request.query)
                  if name == config.query_param]
        if len(tokens) > 1:
            raise AuthError(f"?{config.query_param}= sent more than once")
        token = tokens[0] if tokens else ""
    if not token:
        raise AuthError(f"missing token ({config.header} header or ?{config.query_param}=)")
    matched = matching_secret(token, config.secret_values())
    if matched is None:
        raise AuthError("wrong token")
    return matched


def verify_bird_signature(request: SignedRequest, config: AuthConfig) -> int:
    """Bird Channels/Notifications API: HMAC-SHA256 over timestamp, URL and body hash."""
    timestamp = credential_header(request, "messagebird-request-timestamp")
    signature = decode_signature(credential_header(request, "messagebird-signature"))
    check_fresh(timestamp, config.max_age_s, request.now)
    message = b"\n".join(
        [timestamp.encode(), request.url.encode(), hashlib.sha256(request.body).digest()]
    )
    matched = signed_with(signature, message, config.secret_values())
    if matched is None:
        raise AuthError("messagebird-signature does not match")
    return matched


def verify_messagebird_v1(request: SignedRequest, config: AuthConfig) -> int:
    """Legacy MessageBird v1: like Bird's, but signs the sorted query string, not the URL."""
    timestamp = credential_header(request, "messagebird-request-timestamp")
    signature = decode_signature(credential_header(request, "messagebird-signature"))
    check_fresh(timestamp, config.max_age_s, request.now)
    pairs = parse_qsl(request.query, keep_blank_values=True)
    query = urlencode(sorted(pairs))
    body_hash = hashlib.sha256(request.body).digest()
    message = b"\n".join([timestamp.encode(), query.encode(), body_hash])
    matched = signed_with(signature, message, config.secret_values())
    if matched is None:
        raise AuthError("messagebird-signature does not match")
    _refuse_unsigned_order(request.query)
    return matched


def _refuse_unsigned_order(query: str) -> None:
    """AuthError for a query field (named as the legacy reader names it: read as UTF-8, as
    WebhookRequest.query_pairs reads it, without a leading `?`, as bird.py reads a query, and
    lower-cased) sent more than once with different values. v1 signs the query sorted, not the
    order of a field's repeats, and the reader takes the last: whoever swapped them would
    choose the value read. Media URLs are the one list (each one is a media item, in any
    order)."""
    query = query.lstrip("?")
    # The reader drops the `?`s before the query's first field only: `?id` sent later is another
    # field to it, so moving that pair to the front or away from it changes what is read.
    if any(part.startswith("?") for part in query.split("&")):
        raise AuthError("a query field's name starts with '?': read as another field in "
                        "another order, which messagebird-signature does not sign")
    try:
        # The signature's Latin-1 reading (parse_qsl) named `café` raw and %-escaped apart.
        pairs = form_pairs(query_text(query))
    except NormalizeError:  # not UTF-8: the reader refuses the whole query, reads no value
        return
    values: dict[str, str] = {}
    for name, value in pairs:
        lowered = name.lower()
        if not lowered.startswith("mediaurls") and values.setdefault(lowered, value) != value:
            raise AuthError("a query field was sent more than once with different values; "
                            "messagebird-signature does not sign their order")


def verify_messagebird_jwt(request: SignedRequest, config: AuthConfig) -> int:
    """Legacy MessageBird JWT: HS256/384/512 token binding the URL hash and the body hash."""
    token = credential_header(request, "messagebird-signature-jwt")
    claims = None
    matched = 0
    for index, secret in enumerate(config.secret_values()):
        try:
            claims = jwt.decode(
                token, secret, algorithms=["HS256", "HS384", "HS512"], issuer="MessageBird",
                leeway=1, options={"require": ["iss", "nbf", "exp"]},
            )
            matched = index
            break
        except jwt.InvalidSignatureError:
            continue
        except jwt.PyJWTError as exc:
            raise AuthError(f"MessageBird-Signature-JWT rejected: {type(exc).__name__}") from None
    if claims is None:
        raise AuthError("MessageBird-Signature-JWT signature does not match")
    url_hash = hashlib.sha256(request.url.encode()).hexdigest()
    if not equal(str(claims.get("url_hash", "")), url_hash):
        raise AuthError("MessageBird-Signature-JWT was signed for another URL")
    payload_hash = claims.get("payload_hash")
    if bool(request.body) != bool(payload_hash) or (
        request.body and not equal(str(payload_hash), hashlib.sha256(request.body).hexdigest())
    ):
        raise AuthError("MessageBird-Signature-JWT was signed for another body")
    return matched


def verify_standard_webhooks(request: SignedRequest, config: AuthConfig) -> int:
    """Standard Webhooks (newer Bird platform): `v1,<b64 hmac>` over id.timestamp.body."""
    webhook_id = credential_header(request, "webhook-id")
    timestamp = credential_header(request, "webhook-timestamp")
    check_fresh(timestamp, config.max_age_s, request.now)
    message = f"{webhook_id}.{timestamp}.".encode() + request.body
    offered = []
    for part in credential_header(request, "webhook-signature").split():
        if part.startswith("v1,"):
            try:
                offered.append(base64.b64decode(part[3:], validate=True))
            except ValueError:  # binascii.Error is one
                continue  # one bad entry must not hide a good one next to it
    for index, key in enumerate(config.signing_keys()):
        expected = hmac_digest(key, message)
        if any(equal(expected, signature) for signature in offered):
            return index
    raise AuthError("webhook-signature does not match")


def verify_hub_signature(request: SignedRequest, config: AuthConfig) -> int:
    """Webex Connect `x-hub-signature`: hex HMAC (SHA-256 or SHA-512; SHA-1 from a webhook
    configured before Webex v5.6.0, which it still signs so) of the body.

    Webex's FAQ signs the body with the whitespace between its tokens trimmed, so that body is
    tried too, then the body written back as compact JSON.
    """
    value = credential_header(request, "x-hub-signature").strip()
    algorithm, _, digest = value.partition("=") if "=" in value else ("", "", value)
    digest = digest.lower()
    algorithm = algorithm.lower() or _HUB_ALGORITHM_BY_LENGTH.get(len(digest), "sha256")
    if algorithm not in _HUB_ALGORITHM_BY_LENGTH.values():
        # Not quoted: the reason is logged, and tells refusals apart in the log (one line per
        # kind and minute), and the header is the caller's to vary at will.
        raise AuthError("x-hub-signature algorithm is not accepted: sign with sha256=, "
                        "sha512= or sha1=")
    keys = [secret.encode() for secret in config.secret_values()]
    matched = _hub_signed(request.body, keys, algorithm, digest)
    if matched is not None:
        return matched  # the body as sent: no need to parse it
    if request.body.count(b",") >= MAX_COMPACTED_VALUES:
        raise AuthError("x-hub-signature does not match")
    trimmed, tokens = _SPACE_OUTSIDE_STRINGS.subn(rb"\1", request.body, count=MAX_TRIMMED_TOKENS)
    if tokens < MAX_TRIMMED_TOKENS and trimmed != request.body:
        matched = _hub_signed(trimmed, keys, algorithm, digest)
        if matched is not None:
            return matched
    compact = _compacted(request.body)
    if compact is None or compact == trimmed:
        raise AuthError("x-hub-signature does not match")
    matched = _hub_signed(compact, keys, algorithm, digest)
    if matched is None:
        raise AuthError("x-hub-signature does not match")
    return matched


# A bare digest's algorithm, by its hex length. HMAC-SHA1 is no weaker a MAC for SHA-1's
# collisions (forging one still needs the key), and Webex keeps signing with it for webhooks
# configured before v5.6.0: refusing it lost those tenants' every notification.
_HUB_ALGORITHM_BY_LENGTH = {40: "sha1", 64: "sha256", 128: "sha512"}


def _hub_signed(body: bytes, keys: list[bytes], algorithm: str, digest: str) -> int | None:
    """The index of the key that signed this body, or None."""
    for index, key in enumerate(keys):
        if equal(hmac.new(key, body, algorithm).hexdigest(), digest):
            return index
    return None


# Parsing is what a hub signature's check costs, before anything is proven: a dense 1 MiB of
# JSON takes about 100 ms to parse and write back (on the event loop), 1 ms to hash. Webex sends
# one notification per request, a few dozen values, so only a body of fewer values than this
# (every value after a container's first follows a comma) is trimmed or compacted.
MAX_COMPACTED_VALUES = 1000
# Trimming costs a match per string and whitespace run, about 1 us each in Python: unbounded, a
# 1 MiB body of `a a a ...` (no comma) held the event loop some 400 ms. A notification has a few
# of them per value, so a body with this many is not trimmed (the regex stops there).
MAX_TRIMMED_TOKENS = 8 * MAX_COMPACTED_VALUES


# A JSON string (its closing quote optional, so that an unterminated one is one linear match,
# not a scan to the end from each of its quotes), kept as it is; or whitespace, dropped.
_SPACE_OUTSIDE_STRINGS = re.compile(rb'("(?:[^"\\]|\\.)*"?)|[ \t\r\n]+', re.DOTALL)


def _compacted(body: bytes) -> bytes | None:
    """The body written back as compact JSON, if it is JSON and compacting changes it; else
    None. Unlike trimming, this also rewrites escapes (`\\u003d` becomes `=`)."""
    try:
        compact = orjson.dumps(orjson.loads(body))
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        return None  # not JSON, or nested deeper than orjson writes (reads 1,024, writes 254)
    return compact if compact != body else None


VERIFIERS: dict[str, Callable[[SignedRequest, AuthConfig], int]] = {
    "basic": verify_basic,
    "token": verify_token,
    "bird-signature": verify_bird_signature,
    "messagebird-v1": verify_messagebird_v1,
    "messagebird-jwt": verify_messagebird_jwt,
    "standard-webhooks": verify_standard_webhooks,
    "hub-signature": verify_hub_signature,
}


def verify(request: SignedRequest, config: AuthConfig) -> int:
    """Raise AuthError unless the request is authentic for this account; else the index, in
    the account's secrets, of the one it matched (0: the first; more: an older one kept during
    a rotation)."""
    return VERIFIERS[config.scheme](request, config)


def signed_url(request_url: str, query: str, config: AuthConfig) -> str:
    """The URL a provider signed: the configured public URL when behind a proxy, always with
    the query as received (a query taken from the setting would leave the real one unsigned,
    and legacy MessageBird reports carry everything in it)."""
    if not config.public_url:
        return request_url
    base = config.public_url.partition("?")[0]
    return f"{base}?{query}" if query else base


def names_url_token(query: bytes, config: AuthConfig) -> bool:
    """Whether a query carries the account's URL token (then a URL check must check it too)."""
    if config.scheme != "token" or not query:
        return False
    text = query.decode("latin-1")
    return without_token(text, config) != text


def without_token(query: str, config: AuthConfig) -> str:
    """The query minus a token that authenticated it: what is kept (raw topic, dead letters)
    must not let its readers call the webhook URL as the provider."""
    if config.scheme != "token" or not query:
        return query
    kept = [part for part in query.split("&")
            if unquote_plus(part.partition("=")[0]) != config.query_param]
    return "&".join(kept)


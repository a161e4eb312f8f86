"""Adversarial webhook requests, built from the provider fixtures: what
test_ingest_adversarial sends to a real ingest, and a check that a seed always builds the same set.

Each Attack is the exact bytes of one HTTP/1.1 request (sent on a socket of its own: no client
library normalizes its headers, query or path) and what its sender knows of it: whether it
carries the account's valid credentials (then ingest must not answer 401) or none that can be
valid (then it must answer 401, 404 or 405 and keep nothing).
"""

from __future__ import annotations

import gzip
import random
import unicodedata
import zlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson

from ingest.signing import sign
from switchboard.accounts import Account, Accounts
from tests.fixtures import Fixture

# A credential is valid (the request must authenticate), absent or wrong (it must not), or
# made valid and then tampered with in a way only some schemes see (either answer is right).
VALID, INVALID, EITHER = "valid", "invalid", "either"
# Schemes that sign the body: a body changed after signing is refused by these only.
BODY_SIGNING = frozenset({"bird-signature", "messagebird-v1", "messagebird-jwt",
                          "standard-webhooks", "hub-signature"})


@dataclass(frozen=True)
class Attack:
    label: str  # the mutations applied, for failure messages
    account: str  # as configured, or a name no account has
    method: str
    path: bytes  # as sent, %-escapes and all
    query: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes
    credentials: str  # VALID, INVALID or EITHER
    request_id: str  # x-request-id: kept with the raw record, how its records are found
    version: bytes = b"HTTP/1.1"
    # The fixture's events (or None for a fixture refused) when nothing that changes them was
    # changed: the same events must be kept, whatever else was varied (-1: not known).
    events: int | None = -1

    def wire(self, host: bytes) -> bytes:
        """The request as sent: one per connection, which the server closes after."""
        target = self.path + (b"?" + self.query if self.query else b"")
        lines = [b"%s %s %s" % (self.method.encode(), target, self.version), b"host: " + host,
                 b"connection: close", b"x-request-id: " + self.request_id.encode()]
        lines += [name + b": " + value for name, value in self.headers]
        chunked = any(name.lower() == b"transfer-encoding" for name, _ in self.headers)
        if not chunked and (self.body or self.method == "POST"):
            lines.append(b"content-length: %d" % len(self.body))
        return b"\r\n".join(lines) + b"\r\n\r\n" + self.body


# Values put in place of one node of a JSON fixture (types swapped, extremes, odd text).
ODD_JSON: list[Any] = [
    None, True, 0, -1, 2**63, 2**64 - 1, 1e308, -1e-308, 1.5, "", "0", "null", [], {}, [[]],
    {"": None}, "\u0000", "\ufeff", "é" * 300, "😀" * 50, "+41 79 302 67 27",
    "2024-02-30T25:61:61Z", "9999-12-31T23:59:59.999999999+14:00", "-1", "1e400", "NaN",
    "<x>&amp;</x>", "%00%ff", "\\u0000", "a\r\nb",
]
# JSON text orjson cannot write, put in a node's place as raw text.
RAW_JSON = [b"1" * 400, b"-" + b"9" * 30, b"1e400", b"-0", b"1E-400", b'"\\ud83d"',
            b'"\\udc00\\ud800"', b'"\\u0000"', b"[" * 300 + b"]" * 300, b"NaN"]
CHARSETS = [b"utf-8", b"UTF-8", b"\"utf-8\"", b"latin-1", b"iso-8859-1", b"utf-16",
            b"windows-1252", b"x-unknown", b"", b"utf-8; charset=latin-1"]
CONTENT_TYPES = [b"APPLICATION/JSON", b"application/json;", b"text/json", b"text/plain",
                 b"application/x-www-form-urlencoded", b"application/xml", b"*/*",
                 b"multipart/form-data; boundary=x", b"application/octet-stream",
                 b"application/json, text/plain", b"application/ json", b"\tapplication/json "]
XML_ODDITIES = [
    b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
    b"<r>&b;</r>",
    b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>',
    b"<r><![CDATA[<results/>]]></r>",
    b'<?xml version="1.0" encoding="UTF-16"?><r/>',
    b"<?xml-stylesheet href='x'?><reportResponse><results/></reportResponse>",
    b"<a:reportResponse xmlns:a='urn:x'><a:results/></a:reportResponse>",
    b"<reportResponse>" * 2000,
]


def _replace_node(value: Any, path: list[int], replacement: Any) -> Any:
    """`value` with the node that `path` picks (indices, modulo each container's size)
    replaced."""
    if not path or not isinstance(value, (dict, list)) or not value:
        return replacement
    keys = list(value) if isinstance(value, dict) else list(range(len(value)))
    key = keys[path[0] % len(keys)]
    copy: Any = dict(value) if isinstance(value, dict) else list(value)
    copy[key] = _replace_node(value[key], path[1:], replacement)
    return copy


_MARK = "\x00raw-json-node\x00"
# Headers fixtures keep from the provider's request that carry its credentials: never sent as
# they are (the request's own are made for the account).
SIGNATURE_HEADERS = frozenset({
    b"messagebird-signature", b"messagebird-signature-jwt", b"messagebird-request-timestamp",
    b"webhook-id", b"webhook-timestamp", b"webhook-signature", b"x-hub-signature",
    b"authorization"})
# A secret no test account has (standard-webhooks takes a base64 key).
WRONG_SECRET = ("not-the-secret-0123456789abcdef-32",
                "whsec_bm90LXRoZS1zZWNyZXQtMDEyMzQ1Njc4OWFiY2RlZi0zMg==")


def mutated_body(rng: random.Random, fixture: Fixture) -> tuple[str, bytes, bytes | None]:
    """A mutation of the fixture's body: its label, the bytes, and a content type to send in
    place of the fixture's (None: keep it)."""
    body = fixture.body()
    spec = fixture.spec["request"].get("body")
    choice = rng.randrange(16)  # 12 and more: the body as it is
    if choice == 0 and body:
        cut = rng.randrange(len(body))
        return f"truncated at {cut}", body[:cut], None
    if choice in (1, 2) and isinstance(spec, (dict, list)):
        path = [rng.randrange(40) for _ in range(rng.randrange(1, 6))]
        value = rng.choice(ODD_JSON)
        return f"node {path} = {value!r:.30}", orjson.dumps(_replace_node(spec, path, value)), None
    if choice == 3 and isinstance(spec, (dict, list)):
        path = [rng.randrange(40) for _ in range(rng.randrange(1, 6))]
        raw = rng.choice(RAW_JSON)
        text = orjson.dumps(_replace_node(spec, path, _MARK)).replace(
            orjson.dumps(_MARK), raw, 1)
        return f"node {path} = raw {raw[:20]!r}", text, None
    if choice == 4:
        depth = rng.choice([100, 1023, 1025, 5000, 100_000])
        return f"nested {depth} deep", b'{"a":' * depth + b"1" + b"}" * depth, None
    if choice == 5:
        return "with a BOM", b"\xef\xbb\xbf" + body, None
    if choice == 6:
        charset = rng.choice(CHARSETS)
        media = (fixture.spec["request"].get("content_type") or "application/json")
        media_type = media.split(";")[0].encode()
        if charset == b"utf-16":
            return "utf-16 with its charset", body.decode().encode("utf-16"), \
                media_type + b"; charset=utf-16"
        return f"charset {charset!r}", body, media_type + b"; charset=" + charset
    if choice == 7:
        return "content type varied", body, rng.choice(CONTENT_TYPES)
    if choice == 8:
        offset = rng.randrange(len(body) + 1)
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 8)))
        return f"bytes {junk!r} at {offset}", body[:offset] + junk + body[offset:], None
    if choice == 9 and fixture.spec["request"].get("content_type", "").endswith("xml"):
        return "xml oddity", rng.choice(XML_ODDITIES), None
    if choice == 9 and "form" in fixture.spec["request"].get("content_type", ""):
        extra = rng.choice([b"&%zz=1", b"&a=%ff%fe", b"&=&&=", b"&a=1&a=2", b"&\xff=\xfe",
                            b"&+=+", b"&" + b"x=1&" * 2000])
        return f"form + {extra[:12]!r}", body + extra, None
    if choice == 10 and rng.random() < 0.5:
        return "empty", b"", None
    if choice == 10:
        # At the body cap (1 MiB) or one byte past it; or most of it control characters,
        # which JSON escaping makes six bytes each in the raw record.
        cap = 1024 * 1024
        size = rng.choice([cap, cap + 1])
        if rng.random() < 0.5:  # kept raw in base64: escaped, it is over the raw topic's limit
            return "control characters to the cap", body + b"\x01" * (cap - len(body)), None
        return f"padded to {size}", body + b" " * (size - len(body)), None
    if choice == 11:
        return "whitespace and nul", b" \t\r\n" + body + b"\x00", None
    return "as it is", body, None


def _fixture_headers(fixture: Fixture) -> dict[bytes, bytes]:
    spec = fixture.spec["request"]
    headers = {name.lower().encode(): str(value).encode()
               for name, value in spec.get("headers", {}).items()}
    content_type = spec.get("content_type", "application/json")
    if content_type:
        headers[b"content-type"] = content_type.encode()
    return headers


def _signed(account: Account, url: str, query: str, body: bytes) -> dict[bytes, bytes]:
    auth = account.auth
    made = sign(auth.scheme, auth.secret_values()[0], url=url, body=body, query=query,
                username=auth.username, header=auth.header)
    return {name.encode(): value.encode() for name, value in made.items()}


# The request mutations (build_attack's kinds) that leave a valid request's events as they
# are: a kind segment, a header more, chunks, Expect, HTTP/1.0, names' case, an NFD name.
UNCHANGING = frozenset({0, 4, 11, 13, 14, 15, 16, 17, 18})


def _events_of(fixture: Fixture) -> int | None:
    return len(fixture.spec["events"]) if "events" in fixture.spec else None


@dataclass(frozen=True)
class Target:
    """Where the attacks go, as signed URLs name it."""

    host: str  # 127.0.0.1:port


def build_attack(rng: random.Random, n: int, fixture: Fixture, account: Account,
                 target: Target) -> Attack:
    """One attack on `account` built from `fixture`: a body mutation, then one mutation of the
    method, path, query or headers, then credentials (valid, none or wrong)."""
    spec = fixture.spec["request"]
    method = spec.get("method", "POST")
    label, body, content_type = mutated_body(rng, fixture)
    labels = [label]
    headers = _fixture_headers(fixture)
    if content_type is not None:
        headers[b"content-type"] = content_type
    path = f"/webhooks/{account.provider}/{quote(account.name, safe='')}"
    query = spec.get("query", "")
    extra: list[tuple[bytes, bytes]] = []
    credentials = VALID
    late_body: bytes | None = None  # a body put in place after signing
    late_query: str | None = None
    sign_path = path
    version = b"HTTP/1.1"
    kind = rng.randrange(19)
    suffix = ""
    if kind == 0:
        suffix = rng.choice(["/status", "/status/", "/", "/inbound/x", "//", "/%2F"])
        path += suffix
        sign_path = path
        labels.append(f"path + {suffix}")
    elif kind == 1:
        method = rng.choice(["PUT", "PATCH", "DELETE", "OPTIONS", "GET", "HEAD", "TRACE"])
        labels.append(f"method {method}")
    elif kind == 2:
        query = rng.choice([f"{query}&{query}" if query else "a=1&a=2", "%ff%fe=%c3%28",
                            (query + "&" if query else "") + "x=%E2%82%AC&x=+&%3F=%3F",
                            "?" + query, query.upper(),
                            "&".join(["k=v"] * 300)])
        labels.append(f"query {query[:30]!r}")
    elif kind == 3:
        headers.pop(b"content-type", None)
        labels.append("no content type")
    elif kind == 4:
        extra.append((b"x-filler", b"f" * rng.choice([100, 8_000, 60_000, 70_000])))
        labels.append(f"long header {len(extra[-1][1])}")
    elif kind == 5:
        extra += [(b"x-h%d" % i, b"v") for i in range(rng.choice([20, 95, 120]))]
        labels.append(f"{len(extra)} headers")
    elif kind == 6:
        coding = rng.choice([b"gzip", b"deflate", b"GZIP", b"identity", b"br", b"gzip, identity"])
        body = (gzip.compress(body) if coding.lower().startswith(b"gzip")
                else zlib.compress(body) if coding == b"deflate" else body)
        extra.append((b"content-encoding", coding))
        labels.append(f"content-encoding {coding!r}")
    elif kind == 7:
        credentials = "repeat"  # sign, then send a credential header twice
        labels.append("credential header twice")
    elif kind == 8:
        late_body = body + b"x"  # not whitespace: Webex's check reads the body trimmed too
        labels.append("body changed after signing")
    elif kind == 9:
        credentials = INVALID
        labels.append("no credentials")
    elif kind == 10:
        credentials = "wrong"
        labels.append("wrong secret")
    elif kind == 11:
        labels.append("chunked")
        extra.append((b"transfer-encoding", b"chunked"))
    elif kind == 12:
        late_query = (query + "&" if query else "") + "late=1"
        labels.append("query changed after signing")
    elif kind == 13:
        extra.append((b"x-forwarded-for", rng.choice([b"1.2.3.4", b"garbage, ::1", b"\xff"])))
        labels.append("x-forwarded-for")
    elif kind == 14:
        headers = {name.title(): value for name, value in headers.items()}
        labels.append("header names in mixed case")
    elif kind == 15:
        extra.append((b"expect", b"100-continue"))  # and the body sent without waiting
        labels.append("expect 100-continue")
    elif kind == 16:
        version = b"HTTP/1.0"
        labels.append("HTTP/1.0")
    elif kind == 17 and not account.name.isascii():
        # The name decomposed (NFD): the same account (README), its URL signed as sent.
        path = f"/webhooks/{account.provider}/" \
            f"{quote(unicodedata.normalize('NFD', account.name), safe='')}"
        sign_path = path
        labels.append("account name in NFD")
    # else: the body mutation alone

    signed_query = query.partition("#")[0]  # a fragment is not the query's: not signed
    url = f"http://{target.host}{sign_path}" + (f"?{signed_query}" if signed_query else "")
    auth = account.auth
    secret_headers: dict[bytes, bytes] = {}
    if credentials in (VALID, EITHER, "repeat"):
        secret_headers = _signed(account, url, signed_query, body)
    elif credentials == "wrong":
        wrong = WRONG_SECRET[auth.scheme == "standard-webhooks"]
        made = sign(auth.scheme, wrong, url=url, body=body, query=query,
                    username=auth.username, header=auth.header)
        secret_headers = {k.encode(): v.encode() for k, v in made.items()}
        credentials = INVALID
    if credentials == "repeat":
        name, value = next(iter(secret_headers.items()))
        extra.append((name, value if rng.random() < 0.5 else value[:-2] + b"xx"))
        credentials = INVALID
    if auth.scheme == "token" and credentials == VALID and rng.random() < 0.3:
        # Ubiqio's other way: the token in the URL, not a header.
        secret_headers = {}
        token = f"{auth.query_param}={quote(auth.secret_values()[0])}"
        query = f"{query}&{token}" if query else token
    if late_body is not None:
        body = late_body
        if credentials == VALID and auth.scheme in BODY_SIGNING:
            credentials = INVALID
    if late_query is not None:
        query = late_query
        if credentials == VALID:
            # Signed by the URL (bird-signature, messagebird-jwt) or the sorted query
            # (messagebird-v1); a token in it moved: either answer is right.
            credentials = EITHER
    if kind == 11:  # in chunks of up to 1,000 bytes, some with an extension, and a trailer
        chunks = [body[i:i + 1000] for i in range(0, len(body), 1000)]
        body = b"".join(b"%x%s\r\n%s\r\n" % (len(c), b";ext=1" if i % 2 else b"", c)
                        for i, c in enumerate(chunks)) + b"0\r\nx-trailer: 1\r\n\r\n"
    # The fixture's own signature headers (made for another secret) give way to these.
    headers = {name: value for name, value in headers.items()
               if name.lower() not in secret_headers and name.lower() not in SIGNATURE_HEADERS}
    all_headers = [*headers.items(), *secret_headers.items(), *extra]
    if method in ("PUT", "PATCH", "DELETE", "OPTIONS", "TRACE") \
            or (method == "GET" and not query) or (method == "HEAD" and auth.scheme != "token"):
        # 405 (no route takes it), or a URL check (200, nothing kept): nothing is checked.
        credentials = EITHER
    if kind == 2 and auth.scheme == "messagebird-v1" and credentials == VALID:
        credentials = EITHER  # a field repeated is refused: v1 does not sign the order
    return Attack(label=" + ".join(labels), account=account.name, method=method,
                  path=path.encode(), query=query.encode("latin-1", "replace"),
                  headers=tuple(all_headers), body=body, credentials=credentials,
                  request_id=f"adv-{n}", version=version,
                  events=_events_of(fixture) if label == "as it is" and credentials == VALID
                  and kind in UNCHANGING and not (kind == 0 and suffix in ("//", "/%2F"))
                  and not (kind == 4 and len(extra[-1][1]) > 60_000) else -1)


def routing_attacks(accounts: Accounts) -> list[Attack]:
    """Requests that name no account, or that the HTTP parser or the router refuses, and the
    URL token's own checks: none may keep anything, whatever credentials they carry."""
    infobip = next(a for a in accounts if a.provider == "infobip")
    ubiqio = next(a for a in accounts if a.provider == "ubiqio")
    creds = tuple((k.encode(), v.encode()) for k, v in sign(
        "basic", infobip.auth.secret_values()[0], url="", body=b"",
        username=infobip.auth.username).items())
    token = quote(ubiqio.auth.secret_values()[0]).encode()
    own = quote(infobip.name, safe="").encode()
    json_type = ((b"content-type", b"application/json"),)
    cases: list[tuple[str, str, bytes, bytes, tuple[tuple[bytes, bytes], ...], bytes]] = [
        ("unknown provider", "POST", b"/webhooks/nope/" + own, b"", creds, b"{}"),
        ("provider in upper case", "POST", b"/webhooks/INFOBIP/" + own, b"", creds, b"{}"),
        ("unknown account", "POST", b"/webhooks/infobip/nobody-here", b"", creds, b"{}"),
        ("account with a NUL", "POST", b"/webhooks/infobip/" + own + b"%00", b"", creds, b"{}"),
        ("account %2F-split", "POST", b"/webhooks/infobip/" + own.replace(b"-", b"%2F", 1),
         b"", creds, b"{}"),
        ("raw bytes in the query", "POST", b"/webhooks/infobip/" + own, b"a=\xff", creds, b"{}"),
        ("raw bytes in the path", "POST", b"/webhooks/infobip/\xc3\xa9", b"", creds, b"{}"),
        ("header name with a space", "POST", b"/webhooks/infobip/" + own, b"",
         (*creds, (b"bad header", b"1")), b"{}"),
        ("content-length and chunked", "POST", b"/webhooks/infobip/" + own, b"",
         (*creds, (b"transfer-encoding", b"chunked"), (b"content-length", b"5")), b"0\r\n\r\n"),
        ("token twice in the query", "POST", b"/webhooks/ubiqio/" + quote(ubiqio.name).encode(),
         b"token=" + token + b"&token=" + token, json_type, b'{"messageId": "m", "status": 1}'),
        ("wrong token on a HEAD", "HEAD", b"/webhooks/ubiqio/" + quote(ubiqio.name).encode(),
         b"token=wrong-token-0000", (), b""),
        ("websocket handshake", "GET", b"/webhooks/infobip/" + own, b"",
         ((b"upgrade", b"websocket"), (b"connection", b"Upgrade"),
          (b"sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ=="),
          (b"sec-websocket-version", b"13")), b""),
        ("CONNECT", "CONNECT", b"127.0.0.1:1", b"", creds, b""),
        ("a path past the kind", "POST", b"/webhooks/infobip/" + own + b"/status/more", b"",
         creds, b"{}"),
    ]
    return [Attack(label=label, account=infobip.name, method=method, path=path, query=query,
                   headers=(*headers,), body=body, credentials=INVALID,
                   request_id=f"adv-route-{n}")
            for n, (label, method, path, query, headers, body) in enumerate(cases)]


def test_a_seed_builds_the_same_attacks() -> None:
    """The integration test's set is reproducible from its seed: a failure names a seed and
    an attack that can be sent again."""
    from switchboard.accounts import parse_accounts
    from tests.integration.conftest import TEST_ACCOUNTS
    from tests.integration.webhooks import FIXTURES, accounts_for

    accounts = parse_accounts({"accounts": TEST_ACCOUNTS})
    target = Target("127.0.0.1:1")

    def built(seed: int) -> list[tuple[str, bytes, bytes, str]]:
        rng = random.Random(seed)
        attacks = []
        for n in range(60):
            fixture = rng.choice(FIXTURES)
            account = accounts.get(fixture.provider, rng.choice(accounts_for(fixture)))
            assert account is not None
            attack = build_attack(rng, n, fixture, account, target)
            # Signatures carry a time and random ids: the rest must be the same.
            attacks.append((attack.label, attack.path, attack.body, attack.credentials))
        return attacks

    assert built(7) == built(7)
    assert built(7) != built(8)

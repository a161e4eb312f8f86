"""Authentication schemes against the providers' own published or recomputed test vectors."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

import jwt
import orjson
import pytest
from pydantic import ValidationError

from ingest import auth
from ingest.auth import (
    AuthError,
    SignedRequest,
    credential_headers,
    refuse_repeated,
    signed_url,
    verify,
    without_token,
)
from ingest.signing import sign
from switchboard.accounts import AuthConfig
from tests.unit.fakes import ModuleWith

MB_QUERY = ("recipient=31612345678&reference=FOO&statusDatetime=2019-01-11T09%3A17%3A11%2B00%3A00"
            "&id=eef0ab57a9e049be946f3821568c2b2e&status=delivered&mccmnc=20408&ported=1")
HUB_BODY = (b'{"deliveryInfoNotification":{"deliveryInfo":'
            b'{"timeStamp":"2022-10-10T13:53:13.749+01:00",'
            b'"Description":"Delivered","code":"7500","deliveryChannel":"SMS","additionalInfo":"",'
            b'"destination":"9189xxxxxxxx","destinationType":"msisdn","deliveryStatus":"Delivered"},'
            b'"subtid":"","transid":"7f3af32c-8d6a-XXXX-b1c8-4805135ada71","callbackData":"",'
            b'"correlationid":""}}')


def _config(scheme: str, *secrets: str, **extra: Any) -> AuthConfig:
    return AuthConfig.model_validate({"scheme": scheme, "secrets": list(secrets), **extra})


def _request(headers: dict[str, str], body: bytes = b"", query: str = "",
             url: str = "https://example.com/hook", now: float = 0) -> SignedRequest:
    return SignedRequest(method="POST", url=url, query=query, headers=headers, body=body, now=now)


def _mb_jwt(secret: str, url: str, body: bytes, now: int, **claims: Any) -> str:
    payload = {"iss": "MessageBird", "nbf": now - 5, "exp": now + 55, "jti": "x",
               "url_hash": hashlib.sha256(url.encode()).hexdigest(), **claims}
    if body:
        payload["payload_hash"] = hashlib.sha256(body).hexdigest()
    return jwt.encode(payload, secret, algorithm="HS256")


# JWTs are checked against the clock (PyJWT reads it): one valid all day from collection.
MB_JWT_URL = "https://example.com/webhooks/bird/mb?id=42&status=delivered"
MB_JWT_NOW = int(time.time())

CASES = [
    pytest.param(  # MessageBird python SDK test vector, empty body
        _config("messagebird-v1", "PlLrKaqvZNRR5zAjm42ZT6q1SQxgbbGd"),
        _request({"messagebird-request-timestamp": "1547198231",
                  "messagebird-signature": "KVBdcVdz2lYMwcBLZCRITgxUfA/WkwSi+T3Wxl2HL6w="},
                 query=MB_QUERY, now=1547198231),
        id="messagebird-v1-empty-body"),
    pytest.param(
        _config("messagebird-v1", "PlLrKaqvZNRR5zAjm42ZT6q1SQxgbbGd"),
        _request({"messagebird-request-timestamp": "1547198231",
                  "messagebird-signature": "2bl+38H4oHVg03pC3bk2LvCB0IHFgfC4cL5HPQ0LdmI="},
                 body=b'{"foo":"bar"}', query=MB_QUERY, now=1547198231),
        id="messagebird-v1-body"),
    pytest.param(
        _config("messagebird-jwt", "mb-jwt-signing-key-0123456789abcdef"),
        _request({"messagebird-signature-jwt": _mb_jwt(
            "mb-jwt-signing-key-0123456789abcdef", MB_JWT_URL, b'{"foo":"bar"}', MB_JWT_NOW,
            exp=MB_JWT_NOW + 86_400)},
                 body=b'{"foo":"bar"}', query="id=42&status=delivered", url=MB_JWT_URL,
                 now=MB_JWT_NOW),
        id="messagebird-jwt"),
    pytest.param(
        _config("bird-signature", "secureSigningKey"),
        _request({"messagebird-request-timestamp": "1719823259",
                  "messagebird-signature": "KUl46C2DbT8vFmxjySxChyxZFQI8gz/jF8LtayeSCLY="},
                 body=b'{"service":"channels","event":"sms.inbound","payload":'
                      b'{"id":"96a0b5fa-a986-453d-be5c-3117f989f025"}}',
                 url="https://domain.com/webhook/bird", now=1719823259 + 3600),
        id="bird-channels"),
    pytest.param(
        _config("standard-webhooks", "whsec_MDEyMzQ1Njc4OWFiY2RlZg==", max_age_s=300),
        _request({"webhook-id": "msg_1", "webhook-timestamp": "1779364800",
                  "webhook-signature": "v1,bogus v1,u9CR9VyKeSuNQKpB9k7WQOw27kNdK1LWH2AOnF04X9k="},
                 body=b'{"type":"sms.delivered","timestamp":"2026-05-21T12:00:00Z","data":'
                      b'{"sms_id":"sms_01krdgeqcxet5s7t44vh8rt9mg"}}', now=1779364800),
        id="standard-webhooks"),
    pytest.param(
        _config("hub-signature", "abcdefgh1234567890ijklmnoqrstuvwxyz1234567890"),
        _request({"x-hub-signature":
                  "f4b7e197410780458cab932ee375923b90349223479b0ab7f00f7233fd42cd17"},
                 body=HUB_BODY),
        id="webex-hub-signature"),
    pytest.param(
        _config("hub-signature", "abcdefgh1234567890ijklmnoqrstuvwxyz1234567890"),
        _request({"x-hub-signature":
                  "sha256=f4b7e197410780458cab932ee375923b90349223479b0ab7f00f7233fd42cd17"},
                 body=HUB_BODY.replace(b'","', b'", "')),  # signed compact, sent spaced
        id="webex-hub-signature-prefixed-spaced"),
    pytest.param(
        _config("basic", "old-password", "new-password", username="infobip"),
        _request({"authorization": "Basic " + base64.b64encode(b"infobip:new-password").decode()}),
        id="basic-second-secret"),
    pytest.param(
        _config("token", "tok-123456"), _request({}, query="a=1&token=tok-123456"),
        id="token-in-query"),
    pytest.param(
        _config("token", "tok-123456"), _request({"x-switchboard-token": "tok-123456"}),
        id="token-in-header"),
]


def _standard_webhooks_request() -> SignedRequest:
    request = next(case for case in CASES if case.id == "standard-webhooks").values[1]
    assert isinstance(request, SignedRequest)
    return request


@pytest.mark.parametrize(("config", "request_"), CASES)
def test_valid_signatures_pass(config: AuthConfig, request_: SignedRequest) -> None:
    verify(request_, config)


@pytest.mark.parametrize(("config", "request_"), CASES)
def test_a_changed_body_or_secret_fails(config: AuthConfig, request_: SignedRequest) -> None:
    # base64 (a standard-webhooks key), and 32 bytes long: an HS256 key PyJWT does not warn of
    wrong = type(config.secrets[0])(base64.b64encode(b"a-wrong-key-that-is-32-bytes-lon").decode())
    wrong_secret = config.model_copy(update={"secrets": [wrong]})
    with pytest.raises(AuthError) as caught:
        verify(request_, wrong_secret)
    for secret in config.secret_values():
        assert secret not in caught.value.reason
    if request_.body:
        tampered = SignedRequest(request_.method, request_.url, request_.query, request_.headers,
                                 request_.body + b" ", request_.now)
        if config.scheme != "hub-signature":  # whitespace-insensitive by design
            with pytest.raises(AuthError):
                verify(tampered, config)


def test_missing_header_says_which() -> None:
    with pytest.raises(AuthError, match="messagebird-signature"):
        verify(_request({"messagebird-request-timestamp": "1"}, now=1),
               _config("bird-signature", "signing-key"))


def test_stale_timestamp_is_refused() -> None:
    config = _config("standard-webhooks", "whsec_MDEyMzQ1Njc4OWFiY2RlZg==", max_age_s=300)
    request = _standard_webhooks_request()
    late = SignedRequest(request.method, request.url, request.query, request.headers,
                         request.body, request.now + 301)
    with pytest.raises(AuthError, match="window"):
        verify(late, config)


def test_messagebird_jwt_binds_url_and_body() -> None:
    now = int(time.time())
    url = "https://example.com/path?bar=1&foo=2"
    config = _config("messagebird-jwt", "first-signing-key-0000000000000000",
                     "second-signing-key-000000000000000")
    token = _mb_jwt("second-signing-key-000000000000000", url, b"Hello, World!", now)
    verify(_request({"messagebird-signature-jwt": token}, b"Hello, World!", url=url), config)
    with pytest.raises(AuthError, match="another body"):
        verify(_request({"messagebird-signature-jwt": token}, b"Hello!", url=url), config)
    with pytest.raises(AuthError, match="another URL"):
        verify(_request({"messagebird-signature-jwt": token}, b"Hello, World!",
                        url=url + "&x=1"), config)
    expired = _mb_jwt("first-signing-key-0000000000000000", url, b"", now - 3600)
    with pytest.raises(AuthError, match="Expired"):
        verify(_request({"messagebird-signature-jwt": expired}, url=url), config)


def test_a_timestamp_from_the_future_is_refused_past_the_clock_skew() -> None:
    config = _config("standard-webhooks", "whsec_MDEyMzQ1Njc4OWFiY2RlZg==")
    request = _standard_webhooks_request()
    for ahead, accepted in ((299, True), (301, False)):
        early = SignedRequest(request.method, request.url, request.query, request.headers,
                              request.body, request.now - ahead)
        if accepted:
            verify(early, config)
        else:
            with pytest.raises(AuthError, match="future"):
                verify(early, config)


@pytest.mark.parametrize("header", ["Basic \xe9", "Basic ###", "Basic " + "w6k=",
                                    "Bearer abc"])
def test_malformed_basic_credentials_are_refused_not_a_crash(header: str) -> None:
    with pytest.raises(AuthError):
        verify(_request({"authorization": header}), _config("basic", "password-1", username="u"))


def test_a_body_nested_too_deep_to_compact_is_refused_not_a_crash() -> None:
    # orjson reads 1,024 levels of nesting but writes at most 254: re-serializing such a body
    # for the compact fallback raised TypeError, a 500 and a logged traceback for each
    # unauthenticated request of half a kilobyte.
    body = b"[" * 300 + b"]" * 300
    with pytest.raises(AuthError, match="does not match"):
        verify(_request({"x-hub-signature": "0" * 64}, body=body),
               _config("hub-signature", "webex-hub-secret"))


# The FAQ's sample signs rawData with "all white spaces" trimmed, yet keeps those inside values
# ("This is callbackdata"): what is signed is the body as sent minus the whitespace between
# tokens. A Java serializer may escape characters (Gson writes "=" and "&" as \u003d, \u0026),
# which reading and writing the JSON back would turn into the characters themselves.
HUB_SPACED_ESCAPED = (b'{\n  "deliveryInfoNotification": {\n    "deliveryInfo": {\n'
                      b'      "Description": "https://example.com/offer?a\\u003d1\\u0026b\\u003d2'
                      b'|203.0.113.7",\n      "deliveryStatus": "Clicked"\n    },\n'
                      b'    "callbackData": "This is callbackdata",\n'
                      b'    "transid": "8388899605-56e9-46b0-861e-44af7ee10391"\n  }\n}\n')


def test_a_hub_signature_over_the_body_with_its_whitespace_trimmed_passes() -> None:
    secret = "abcdefgh1234567890ijklmnoqrstuvwxyz1234567890"
    trimmed = (b'{"deliveryInfoNotification":{"deliveryInfo":{"Description":'
               b'"https://example.com/offer?a\\u003d1\\u0026b\\u003d2|203.0.113.7",'
               b'"deliveryStatus":"Clicked"},"callbackData":"This is callbackdata",'
               b'"transid":"8388899605-56e9-46b0-861e-44af7ee10391"}}')
    signature = sign("hub-signature", secret, url="", body=trimmed)["x-hub-signature"]
    verify(_request({"x-hub-signature": "sha256=" + signature}, body=HUB_SPACED_ESCAPED),
           _config("hub-signature", secret))
    with pytest.raises(AuthError, match="does not match"):  # a value's own spaces are signed
        verify(_request({"x-hub-signature": signature},
                        body=HUB_SPACED_ESCAPED.replace(b"is callbackdata", b"iscallbackdata")),
               _config("hub-signature", secret))


def test_a_hub_body_of_more_tokens_than_a_notification_is_not_trimmed() -> None:
    # Each string and whitespace run is a match, about 1 us of Python each: with no comma, a
    # 1 MiB body of "a a a ..." or '"" "" ...' held the event loop some 400 ms per request,
    # before anything was proven. A notification has a few tokens per value: beyond a bound,
    # the body is not trimmed (its compact JSON is still tried).
    secret = "abcdefgh1234567890ijklmnoqrstuvwxyz1234567890"
    within = b"[" + b'"a" ' * (auth.MAX_TRIMMED_TOKENS // 2 - 1) + b"]"
    beyond = b"[" + b'"a" ' * (auth.MAX_TRIMMED_TOKENS // 2 + 1) + b"]"
    for body, passes in ((within, True), (beyond, False)):
        trimmed = body.replace(b" ", b"")
        signature = sign("hub-signature", secret, url="", body=trimmed)["x-hub-signature"]
        request = _request({"x-hub-signature": signature}, body=body)
        if passes:
            verify(request, _config("hub-signature", secret))
        else:
            with pytest.raises(AuthError, match="does not match"):
                verify(request, _config("hub-signature", secret))


@pytest.mark.parametrize("body", [b'"\\' * 200_000, b'"' + b"\\\"" * 200_000,
                                  b'"' * 400_000, b" " * 1_000_000])
def test_trimming_a_hub_body_takes_linear_time(body: bytes) -> None:
    # No comma, so under the bound on values: a pattern that backtracked on an unterminated
    # string would take minutes for an unauthenticated request of a few hundred kilobytes.
    started = time.monotonic()
    with pytest.raises(AuthError, match="does not match"):
        verify(_request({"x-hub-signature": "0" * 64}, body=body),
               _config("hub-signature", "webex-hub-secret"))
    assert time.monotonic() - started < 10  # quadratic: minutes; linear: milliseconds


@pytest.mark.parametrize("prefix", ["sha1=", "SHA1=", ""])
def test_a_sha1_hub_signature_of_a_webhook_configured_before_v5_6_passes(prefix: str) -> None:
    # Webex dropped SHA-1 for new configurations only: older ones still sign with it, and were
    # refused with 401, retried three times and lost. A bare 40-hex digest is SHA-1's.
    secret = "abcdefgh1234567890ijklmnoqrstuvwxyz1234567890"
    body = b'{"deliveryInfoNotification":{"transid":"7f3af32c"}}'
    digest = hmac.new(secret.encode(), body, "sha1").hexdigest()
    verify(_request({"x-hub-signature": prefix + digest}, body=body),
           _config("hub-signature", secret))
    with pytest.raises(AuthError, match="does not match"):
        verify(_request({"x-hub-signature": prefix + digest}, body=body + b" "),
               _config("hub-signature", "another-secret-0123456789"))
    with pytest.raises(AuthError, match="is not accepted"):  # md5= stays refused
        verify(_request({"x-hub-signature": "md5=" + digest[:32]}, body=body),
               _config("hub-signature", secret))


def test_an_unknown_hub_algorithm_is_not_quoted() -> None:
    # The reason is logged and answered for every refused request: quoting the header's whole
    # prefix made each line as long as the header a caller chose (tens of kilobytes), and
    # each algorithm a kind of refusal of its own (test_ingest_refusal_log).
    with pytest.raises(AuthError) as caught:
        verify(_request({"x-hub-signature": "x" * 20_000 + "=00"}),
               _config("hub-signature", "webex-hub-secret"))
    assert "is not accepted" in caught.value.reason and len(caught.value.reason) < 100


def _counting_json_reads(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The bodies ingest.auth parses as JSON from now on."""
    parsed: list[bytes] = []

    def loads(data: bytes) -> Any:
        parsed.append(data)
        return orjson.loads(data)

    monkeypatch.setattr(auth, "orjson", ModuleWith(orjson, loads=loads))
    return parsed


def test_a_body_of_many_values_is_not_parsed_before_it_is_authenticated(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Parsing and writing back a dense 1 MiB of JSON took about 100 ms on the event loop (one
    # HMAC of it, under 1 ms), for anyone who sent an x-hub-signature header: a few requests a
    # second held up every other webhook.
    parsed = _counting_json_reads(monkeypatch)
    body = b"[" + b",".join([b'{"a":[{"b":1}]}'] * 5000) + b"]"
    with pytest.raises(AuthError, match="does not match"):
        verify(_request({"x-hub-signature": "0" * 64}, body=body),
               _config("hub-signature", "webex-hub-secret"))
    assert parsed == []


def test_a_body_signed_as_sent_is_not_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed = _counting_json_reads(monkeypatch)
    config, request = next(case for case in CASES if case.id == "webex-hub-signature").values
    assert isinstance(config, AuthConfig) and isinstance(request, SignedRequest)
    verify(request, config)
    assert parsed == []


@pytest.mark.parametrize(
    ("scheme", "secret", "problem"),
    [
        ("basic", "", "at least 8 characters"),
        ("token", "        ", "at least 8 characters"),
        ("hub-signature", "short", "at least 8 characters"),
        ("standard-webhooks", "whsec_", "at least 8 characters"),
        ("standard-webhooks", "whsec_not base64!", "must be base64"),
        ("standard-webhooks", "whsec_c2hvcnQ=", "at least 8 bytes"),
    ],
)
def test_secrets_that_would_let_anyone_in_are_refused_at_load(
        scheme: str, secret: str, problem: str) -> None:
    good = "whsec_MDEyMzQ1Njc4OWFiY2RlZg==" if scheme == "standard-webhooks" else "good-secret"
    extra = {"username": "u"} if scheme == "basic" else {}
    _config(scheme, good, **extra)
    with pytest.raises(ValidationError, match=problem):
        _config(scheme, good, secret, **extra)


def test_the_signed_url_always_carries_the_query_as_received() -> None:
    # A query written into public_url must not stand in for the one the provider sent: the
    # query of a legacy MessageBird status report is the report, and would go unsigned.
    config = _config("bird-signature", "signing-key", public_url="https://hooks.example/b?x=1")
    assert signed_url("http://10.0.0.5/b", "id=42&status=delivered", config) == \
        "https://hooks.example/b?id=42&status=delivered"
    assert signed_url("http://10.0.0.5/b", "", config) == "https://hooks.example/b"
    assert signed_url("http://10.0.0.5/b?q=1", "q=1", _config("bird-signature", "signing-key")) \
        == "http://10.0.0.5/b?q=1"


def test_a_url_token_is_not_kept_with_the_request() -> None:
    token = _config("token", "url-token-123")
    assert without_token("a=1&token=url-token-123&b=%20", token) == "a=1&b=%20"
    assert without_token("to%6Ben=url-token-123", token) == ""  # however it is encoded
    assert without_token("token=x", _config("basic", "password-1", username="u")) == "token=x"


@pytest.mark.parametrize("scheme", sorted(auth.VERIFIERS))
def test_the_credential_headers_are_those_the_scheme_is_sent_with(scheme: str) -> None:
    # What ingest refuses sent twice before a signed body is read: one missing here would be
    # refused only after the body, one too many refused although the scheme never reads it.
    secret = "whsec_" + base64.b64encode(b"a-signing-key-of-32-bytes-length").decode()
    config = _config(scheme, secret, username="u")
    sent = sign(scheme, secret, url="https://example.com/hook", body=b"{}", username="u",
                header=config.header)
    assert set(credential_headers(config)) == set(sent)
    repeated = frozenset(sent)
    with pytest.raises(AuthError, match="header sent more than once"):
        refuse_repeated(repeated, config)
    refuse_repeated(frozenset({"x-forwarded-for"}), config)  # any other header may come twice


@pytest.mark.parametrize("timestamp", ["9" * 400, "-" + "9" * 400])
@pytest.mark.parametrize("scheme", ["bird-signature", "messagebird-v1", "standard-webhooks"])
def test_a_timestamp_past_a_floats_range_is_refused_not_a_crash(scheme: str,
                                                                 timestamp: str) -> None:
    # int() reads 400 digits, comparing them with the clock (a float) raised OverflowError:
    # anyone who knew a signed account's URL got a 500, and a traceback logged per request.
    secret = "whsec_MDEyMzQ1Njc4OWFiY2RlZg==" if scheme == "standard-webhooks" else "key-12345"
    headers = {"messagebird-request-timestamp": timestamp, "webhook-timestamp": timestamp,
               "messagebird-signature": base64.b64encode(b"x" * 32).decode(),
               "webhook-id": "msg_1", "webhook-signature": "v1,eA=="}
    with pytest.raises(AuthError, match="not a time"):
        verify(_request(headers, now=time.time()), _config(scheme, secret))

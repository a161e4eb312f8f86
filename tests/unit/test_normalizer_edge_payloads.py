"""Webhooks found by fuzzing, through the registry as ingest calls it: each gives the events
listed (compared on the fields named) or a NormalizeError that is not a wrapped crash.

Cases that document a provider's shape belong in tests/fixtures; these are the edges.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from normalizers import NormalizeError, normalize
from normalizers.base import WebhookRequest
from switchboard.events import MessageEvent
from tests.fixtures import ACCOUNT, RAW_ID, RECEIVED_AT

# What one event may take in a record, whatever the payload (besides the text and the ids
# checked here): a larger one means a field was expanded or copied where it should not be.
MAX_EVENT_BYTES = 8_000


@dataclass(frozen=True)
class Case:
    id: str
    provider: str
    body: Any  # bytes as sent, str encoded as UTF-8, anything else as JSON
    error: str | None = None  # a fragment of the NormalizeError reason
    events: list[dict[str, Any]] = field(default_factory=list)  # fields each event must have
    content_type: str = "application/json"
    query: str = ""
    method: str = "POST"

    def request(self) -> WebhookRequest:
        body = self.body
        if isinstance(body, str):
            body = body.encode()
        elif not isinstance(body, bytes):
            body = orjson.dumps(body)
        return WebhookRequest(provider=self.provider, account=ACCOUNT, body=body,
                              received_at=RECEIVED_AT, raw_id=RAW_ID,
                              content_type=self.content_type, query=self.query,
                              method=self.method)


def _infobip_price(amount: Any) -> dict[str, Any]:
    return {"results": [{"messageId": "m", "status": {"groupName": "DELIVERED"},
                         "price": {"pricePerMessage": amount, "currency": "EUR"}}]}


CASES = [
    # --- prices are bounded (Price writes its amount out in full) ---
    Case("infobip-price-huge-exponent", "infobip", _infobip_price("1e999999999999"),
         error="out of range"),
    Case("infobip-price-5mb", "infobip", _infobip_price("1e5000000"), error="out of range"),
    Case("infobip-price-tiny-exponent", "infobip", _infobip_price("1e-999999999"),
         error="out of range"),
    Case("infobip-price-ordinary", "infobip", _infobip_price("0.0065"),
         events=[{"price": {"amount": "0.0065", "currency": "EUR"}}]),
    Case("bird-legacy-get-price-huge-exponent", "bird", b"", method="GET",
         query="id=m1&status=delivered&price%5Bamount%5D=1e999999999999&price%5Bcurrency%5D=EUR",
         error="out of range"),
    # --- times that cannot be expressed in UTC, or are not times, are typed errors ---
    Case("infobip-done-at-after-9999-in-utc", "infobip",
         {"results": [{"messageId": "m", "status": {"groupName": "DELIVERED"},
                       "doneAt": "9999-12-31T23:59:59-01:00"}]}, error="out of range"),
    Case("infobip-omnichat-done-at-before-year-1-in-utc", "infobip-omnichat",
         {"results": [{"messageId": "m", "status": "DELIVERED",
                       "doneAt": "0001-01-01T00:00:00+01:00"}]}, error="out of range"),
    Case("webex-timestamp-after-9999-in-utc", "webex",
         {"deliveryInfoNotification": {"transid": "t", "deliveryInfo": {
             "deliveryStatus": "Delivered", "timestamp": "9999-12-31T23:59:59-01:00"}}},
         error="out of range"),
    Case("bird-legacy-status-datetime-after-9999-in-utc", "bird", b"", method="GET",
         query="id=m1&status=delivered&statusDatetime=9999-12-31T23%3A59%3A59-01%3A00",
         error="out of range"),
    # Unix times: seconds, or milliseconds past 1e11 (year 5138 in seconds); beyond year 9999
    # (microseconds, nanoseconds, 1e20) or before year 1 there is no such time: refused, not
    # a 500 and not an event a consumer's date type cannot hold.
    *(Case(f"infobip-done-at-unix-{number!r}", "infobip",
           {"results": [{"messageId": "m", "status": {"groupName": "DELIVERED"},
                         "doneAt": number}]}, error="out of range")
      for number in (1767225600000000, 1767225600000000000, 1e20, -1e20, -1e11,
                     253402300800000, 1e308)),
    Case("ubiqio-microseconds-as-text", "ubiqio",
         {"status": "delivered", "messageId": "m", "timestamp": "1767225600000000"},
         error="not in a known format"),
    # Within years 1 to 9999 in UTC a time is kept as the provider gave it, however far from
    # now, and its record reads back the same (docs/events.md, Timestamps).
    *(Case(f"infobip-done-at-kept-{given!r}", "infobip",
           {"results": [{"messageId": "m", "status": {"groupName": "DELIVERED"},
                         "doneAt": given}]}, events=[{"occurred_at": kept}])
      for given, kept in (("9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59.999999Z"),
                          ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00Z"),
                          (-62135596800, "0001-01-01T00:00:00Z"),
                          (-1, "1969-12-31T23:59:59Z"),
                          (1767225600123, "2026-01-01T00:00:00.123000Z"),
                          (99999999999, "5138-11-16T09:46:39Z"))),
    Case("ubiqio-unicode-digit-timestamp", "ubiqio",
         {"status": "delivered", "messageId": "m", "timestamp": "²²²²²²²²²²"},
         error="not in a known format"),
    Case("ubiqio-nine-digit-timestamp", "ubiqio",
         {"status": "delivered", "messageId": "m", "timestamp": "999999999"},
         error="not in a known format"),
    # --- Infobip status and error ids: numbers only when they are ASCII digits, not too many ---
    Case("infobip-status-id-unicode-digit", "infobip",
         {"results": [{"messageId": "m", "status": {"id": "²", "groupName": "DELIVERED"}}]},
         events=[{"status": "delivered", "provider_status": {
             "code": "²", "name": None, "group": "DELIVERED", "description": None}}]),
    Case("infobip-status-group-id-unicode-digit", "infobip",
         {"results": [{"messageId": "m", "status": {"groupId": "²"}}]},
         events=[{"status": "unknown"}]),
    Case("infobip-status-group-id-5000-digits", "infobip",  # kept as text: too long a label
         {"results": [{"messageId": "m", "status": {"groupId": "9" * 5000}}]},
         error="provider status group is longer than 1000 characters"),
    Case("infobip-error-id-5000-digits", "infobip",
         {"results": [{"messageId": "m", "status": {"groupName": "REJECTED"},
                       "error": {"id": "7" * 5000, "groupId": "²"}}]},
         error="error code is longer than 1000 characters"),
    Case("infobip-error-id-18-digits", "infobip",
         {"results": [{"messageId": "m", "status": {"groupName": "REJECTED"},
                       "error": {"id": "7" * 18}}]},
         events=[{"status": "rejected",
                  "error": {"code": "7" * 18, "description": None, "permanent": False}}]),
    Case("infobip-omnichat-status-id-unicode-digit", "infobip-omnichat",
         {"results": [{"messageId": "m", "status": {"id": "²", "groupId": "²"}}]},
         events=[{"status": "unknown"}]),
    # --- Infobip XML: every <result> is a report, as every JSON results[] item is ---
    # (a report without a message id is kept by its callbackData; with neither it names no
    # message and is refused: tests/unit/test_normalizer_missing_ids.py)
    Case("infobip-xml-result-without-message-id", "infobip",
         "<results><result><to>41793026727</to><callbackData>c1</callbackData><status>"
         "<groupName>DELIVERED</groupName></status></result></results>",
         content_type="application/xml",
         events=[{"message_id": None, "correlation_id": "c1", "to": "+41793026727",
                  "status": "delivered"}]),
    Case("infobip-xml-result-without-any-id", "infobip",
         "<results><result><to>41793026727</to><status><groupName>DELIVERED</groupName>"
         "</status></result></results>", content_type="application/xml",
         error="results[0]: status report names no message"),
    Case("infobip-json-result-without-message-id", "infobip",
         {"results": [{"to": "41793026727", "callbackData": "c1",
                       "status": {"groupName": "DELIVERED"}}]},
         events=[{"message_id": None, "correlation_id": "c1", "to": "+41793026727",
                  "status": "delivered"}]),
    Case("infobip-xml-nested-results-without-message-id", "infobip",
         "<R><results><results><to>41793026727</to><callbackData>c1</callbackData><status>"
         "<groupName>DELIVERED</groupName></status></results><results><messageId>m2"
         "</messageId><status><groupName>REJECTED</groupName></status></results></results></R>",
         content_type="application/xml",
         events=[{"message_id": None, "correlation_id": "c1", "status": "delivered"},
                 {"message_id": "m2", "status": "rejected"}]),
    Case("infobip-xml-root-results-is-one-report", "infobip",
         "<results><messageId>m1</messageId><status><groupName>DELIVERED</groupName></status>"
         "</results>", content_type="application/xml",
         events=[{"message_id": "m1", "status": "delivered"}]),
    Case("infobip-xml-root-result-is-one-report", "infobip",
         "<result><messageId>m1</messageId><status><groupName>DELIVERED</groupName></status>"
         "</result>", content_type="application/xml",
         events=[{"message_id": "m1", "status": "delivered"}]),
    Case("infobip-xml-result-with-attributes-only", "infobip",
         '<results><result messageId="m1"/></results>', content_type="application/xml",
         error="<result> element holds no report"),
    Case("infobip-xml-second-result-empty", "infobip",
         "<results><result><messageId>m1</messageId><status><groupName>DELIVERED</groupName>"
         "</status></result><result/></results>", content_type="application/xml",
         error="<result> element holds no report"),
    Case("infobip-xml-results-with-text", "infobip", "<x><results>hello</results></x>",
         content_type="application/xml", error="<results> element holds no report"),
    Case("infobip-xml-empty-root-results", "infobip", "<results/>",
         content_type="application/xml", error="<results> element holds no report"),
    Case("infobip-xml-empty-results", "infobip",
         "<DeliveryReports><results></results></DeliveryReports>",
         content_type="application/xml", error="<results> element holds no report"),
    Case("infobip-xml-results-in-results-empty", "infobip",
         "<R><results><results/></results></R>",
         content_type="application/xml", error="<results> element holds no report"),
    # --- numbers in text fields: integral floats as integers, inexact ones refused ---
    Case("ubiqio-message-id-beyond-64-bits", "ubiqio",
         b'{"status":"delivered","messageId":18446744073709551617}',
         error="too large to be read exactly"),
    Case("ubiqio-message-id-beyond-64-bits-next", "ubiqio",
         b'{"status":"delivered","messageId":18446744073709551618}',
         error="too large to be read exactly"),
    Case("ubiqio-message-id-largest-64-bit", "ubiqio",
         b'{"status":"delivered","messageId":18446744073709551615}',
         events=[{"message_id": "18446744073709551615"}]),
    Case("webex-transid-beyond-64-bits", "webex",
         b'{"deliveryInfoNotification":{"transid":18446744073709551617,'
         b'"deliveryInfo":{"deliveryStatus":"Delivered"}}}',
         error="too large to be read exactly"),
    Case("infobip-status-id-float-beyond-exact", "infobip",
         {"results": [{"messageId": "m", "status": {"groupName": "DELIVERED", "id": 1e300}}]},
         error="too large to be read exactly"),
    Case("bird-legacy-json-stop-code-as-float", "bird",
         {"id": "m1", "status": "delivery_failed", "statusErrorCode": 103.0},
         events=[{"status": "undelivered", "error": {
             "code": "103", "description": "contact opted out (sent STOP)",
             "permanent": True}}]),
    Case("bird-channels-sms-source-stop-code-as-float", "bird",
         {"service": "channels", "event": "sms.outbound", "payload": {
             "id": "m1", "status": "delivery_failed",
             "failure": {"code": 15001.0, "source": {"name": "sms-messagebird", "code": 103.0}}}},
         events=[{"status": "undelivered", "error": {
             "code": "103",
             "description": "contact opted out (sent STOP) (source sms-messagebird code 103, "
                            "Bird code 15001)",
             "permanent": True}}]),
    Case("webex-expired-code-as-float", "webex",
         {"deliveryInfoNotification": {"transid": "t", "deliveryInfo": {
             "deliveryStatus": "Un-Delivered", "code": 7208.0}}},
         events=[{"status": "expired", "error": {
             "code": "7208", "description": None, "permanent": False}}]),
    # An MMS's parts come JSON-encoded in `message`; a text that only looks like JSON stays text.
    Case("webex-mms-text-in-brackets", "webex",
         {"channel": "MMS", "oa": "16502813641", "da": "34343", "message": "[urgent] call me"},
         events=[{"channel": "mms", "text": "[urgent] call me", "media": []}]),
    Case("webex-mms-list-that-is-not-parts", "webex",
         {"channel": "MMS", "oa": "16502813641", "da": "34343",
          "message": '[{"file": "https://example.com/a.jpg"}, {"name": "b"}]'},
         events=[{"text": '[{"file": "https://example.com/a.jpg"}, {"name": "b"}]',
                  "media": []}]),
    Case("webex-sms-text-of-file-parts", "webex",  # only an MMS's message holds parts
         {"channel": "SMS", "oa": "16502813641", "da": "34343",
          "message": '[{"file":"https://example.com/a.jpg"}]'},
         events=[{"text": '[{"file":"https://example.com/a.jpg"}]', "media": []}]),
    Case("ubiqio-numeric-status-as-float", "ubiqio",
         {"status": 1.0, "messageId": "m", "error": 103.0},
         events=[{"status": "unknown",
                  "provider_status": {"code": None, "name": "1", "group": None,
                                      "description": None},
                  "error": {"code": "103", "description": None, "permanent": False}}]),
    Case("ubiqio-numeric-status-as-integer", "ubiqio", {"status": 1, "messageId": "m"},
         events=[{"provider_status": {"code": None, "name": "1", "group": None,
                                      "description": None}}]),
    Case("ubiqio-numeric-status-fraction", "ubiqio", {"status": 1.5, "messageId": "m"},
         error="field 'status' should be a whole number, got 1.5"),
    Case("ubiqio-numeric-error-fraction", "ubiqio",
         {"status": "failed", "messageId": "m", "error": 2.5},
         error="field 'error' should be a whole number, got 2.5"),
    # --- segment counts: a bool is not one, absurd ones are dropped ---
    Case("ubiqio-segments-true", "ubiqio",
         {"status": "delivered", "messageId": "m", "segments": True},
         error="should be an integer"),
    Case("ubiqio-segments-1e308", "ubiqio",
         {"status": "delivered", "messageId": "m", "segments": 1e308},
         events=[{"segments": None}]),
    Case("ubiqio-segments-4000-digits", "ubiqio",
         {"status": "delivered", "messageId": "m", "segments": "9" * 4000},
         events=[{"segments": None}]),
    Case("infobip-message-count-4000-digits-xml", "infobip",
         "<results><result><messageId>m</messageId><status><groupName>DELIVERED</groupName>"
         f"</status><messageCount>{'9' * 4000}</messageCount></result></results>",
         content_type="application/xml", events=[{"segments": None}]),
    Case("bird-legacy-message-part-count", "bird", b"", method="GET",
         query="id=m1&status=delivered&messagePartCount=2", events=[{"segments": 2}]),
    # --- query strings and forms are UTF-8: raw bytes as such, %-escapes too ---
    Case("bird-legacy-get-raw-utf8-in-query", "bird", b"", method="GET",
         # what ingest hands on for the raw bytes of "café" (ASGI, decoded as Latin-1)
         query="id=m1&status=delivered&statusReason=caf\u00c3\u00a9",
         events=[{"provider_status": {"code": None, "name": "delivered", "group": None,
                                      "description": "café"}}]),
    Case("bird-legacy-get-escaped-utf8-in-query", "bird", b"", method="GET",
         query="id=m1&status=delivered&statusReason=caf%C3%A9",
         events=[{"provider_status": {"code": None, "name": "delivered", "group": None,
                                      "description": "café"}}]),
    # Bird's query path reads a query given with its `?`, and keeps repeated media URL keys.
    Case("bird-legacy-get-query-with-its-question-mark", "bird", b"", method="GET",
         query="?id=m1&status=delivered", events=[{"message_id": "m1", "status": "delivered"}]),
    Case("bird-legacy-get-repeated-media-urls-in-query", "bird", b"", method="GET",
         query="id=m1&originator=14155550123&mediaUrls=https%3A%2F%2Fm.example%2Fa.jpg"
               "&mediaUrls=https%3A%2F%2Fm.example%2Fb.png",
         events=[{"media": [
             {"url": "https://m.example/a.jpg", "content_type": None, "caption": None},
             {"url": "https://m.example/b.png", "content_type": None, "caption": None}]}]),
    Case("bird-legacy-get-raw-latin1-in-query", "bird", b"", method="GET",
         query="id=m1&status=delivered&statusReason=caf\u00e9", error="query string is not UTF-8"),
    Case("bird-legacy-get-escaped-latin1-in-query", "bird", b"", method="GET",
         query="id=m1&status=delivered&statusReason=caf%E9", error="not UTF-8"),
    Case("bird-legacy-form-escaped-latin1", "bird", b"originator=31612345678&body=caf%E9",
         content_type="application/x-www-form-urlencoded", error="not UTF-8"),
    Case("bird-legacy-form-raw-utf8", "bird", "originator=31612345678&body=café",
         content_type="application/x-www-form-urlencoded", events=[{"text": "café"}]),
    # --- unless the content type names another charset (legacy gateways: ISO-8859-1) ---
    Case("bird-legacy-form-raw-latin1-declared", "bird", b"originator=31612345678&body=caf\xe9",
         content_type="application/x-www-form-urlencoded; charset=iso-8859-1",
         events=[{"text": "café"}]),
    Case("bird-legacy-form-without-form-type-latin1-declared", "bird",
         b"originator=31612345678&body=caf\xe9", content_type="text/plain; charset=latin1",
         events=[{"text": "café"}]),
    Case("bird-legacy-form-unknown-charset", "bird", b"originator=31612345678&body=hi",
         content_type="application/x-www-form-urlencoded; charset=x-klingon",
         error="charset 'x-klingon' is not a known text encoding"),
    Case("bird-legacy-form-utf16-charset", "bird", b"originator=31612345678&body=hi",
         content_type="application/x-www-form-urlencoded; charset=utf-16",
         error="charset 'utf-16' is not supported for a form"),
    Case("bird-json-latin1-declared-is-still-utf8", "bird",
         b'{"id": "m1", "status": "delivered", "statusReason": "caf\xe9"}',
         content_type="application/json; charset=iso-8859-1",
         error="body is not UTF-8 (byte 0xE9 at offset 56); JSON must be UTF-8 (RFC 8259)"),
    Case("ubiqio-form-raw-latin1-declared", "ubiqio", b"fromNumber=31612345678&message=caf\xe9",
         content_type="application/x-www-form-urlencoded; charset=ISO-8859-1",
         events=[{"text": "café"}]),
    Case("ubiqio-form-cp1252-undefined-byte", "ubiqio", b"fromNumber=31612345678&message=\x81",
         content_type="application/x-www-form-urlencoded; charset=windows-1252",
         error="form body is not 'windows-1252'"),
    Case("ubiqio-form-escaped-latin1", "ubiqio",
         b"fromNumber=31612345678&message=caf%E9",
         content_type="application/x-www-form-urlencoded", error="not UTF-8"),
    Case("ubiqio-get-raw-utf8-in-query", "ubiqio", b"", method="GET",
         query="fromNumber=31612345678&message=caf\u00c3\u00a9", events=[{"text": "café"}]),
    Case("infobip-omnichat-query-label-escaped-latin1", "infobip-omnichat",
         {"results": [{"from": "u1", "message": {"type": "TEXT", "text": "hi"}}]},
         query="integrationType=%E9", error="not UTF-8"),
    # --- ids and labels longer than 1000 characters are no real values (correlation ids:
    # 4000, Infobip's callbackData limit); copied from an envelope into every event of a
    # batch they multiplied a body (131 KB of Webex gave 100 MB of records) ---
    Case("webex-long-transid-in-envelope", "webex",
         {"deliveryInfoNotification": {"transid": "t" * 100_000,
                                       "deliveryInfo": [{"deliveryStatus": "Delivered"}] * 1000}},
         error="message id is longer than 1000 characters"),
    Case("webex-long-correlationid-in-envelope", "webex",
         {"deliveryInfoNotification": {"transid": "t", "correlationid": "c" * 4001,
                                       "deliveryInfo": [{"deliveryStatus": "Delivered"}] * 3}},
         error="correlation id is longer than 4000 characters"),
    Case("webex-correlationid-of-4000", "webex",
         {"deliveryInfoNotification": {"transid": "t", "correlationid": "c" * 4000,
                                       "deliveryInfo": {"deliveryStatus": "Delivered"}}},
         events=[{"correlation_id": "c" * 4000}]),
    Case("webex-long-delivery-status", "webex",
         {"deliveryInfoNotification": {"transid": "t", "deliveryInfo": {
             "deliveryStatus": "Delivered" + "x" * 1000}}},
         error="provider status name is longer than 1000 characters"),
    Case("infobip-omnichat-long-integration-type-in-envelope", "infobip-omnichat",
         {"integrationType": "x" * 100_000,
          "results": [{"messageId": "m", "status": "DELIVERED"}] * 1000},
         error="channel label is longer than 1000 characters"),
    Case("infobip-omnichat-long-channel-in-envelope", "infobip-omnichat",
         {"channel": "x" * 1001, "results": [{"messageId": "m", "status": "DELIVERED"}] * 3},
         error="channel label is longer than 1000 characters"),
    Case("ubiqio-long-event-name-in-envelope", "ubiqio",
         {"event": "message." + "x" * 100_000 + ".delivered",
          "results": [{"messageId": "m"}] * 1000},
         error="'event' is longer than 1000 characters"),
    Case("ubiqio-long-event-name-with-status", "ubiqio",
         {"event": "x" * 1001, "results": [{"messageId": "m", "status": "delivered"}] * 3},
         error="'event' is longer than 1000 characters"),
    Case("ubiqio-long-channel-in-envelope", "ubiqio",
         {"channel": "x" * 1001, "results": [{"messageId": "m", "status": "delivered"}] * 3},
         error="channel label is longer than 1000 characters"),
    Case("infobip-long-message-id", "infobip",
         {"results": [{"messageId": "m" * 1001, "status": {"groupName": "DELIVERED"}}]},
         error="results[0]: message id is longer than 1000 characters"),
    Case("infobip-message-id-of-1000", "infobip",
         {"results": [{"messageId": "m" * 1000, "status": {"groupName": "DELIVERED"}}]},
         events=[{"message_id": "m" * 1000}]),
    Case("infobip-long-callback-data", "infobip",
         {"results": [{"messageId": "m", "callbackData": "c" * 4001,
                       "status": {"groupName": "DELIVERED"}}]},
         error="correlation id is longer than 4000 characters"),
    Case("infobip-long-recipient", "infobip",
         {"results": [{"messageId": "m", "to": "4" * 1001, "status": {"groupName": "DELIVERED"}}]},
         error="recipient is longer than 1000 characters"),
    Case("bird-channels-long-reply-to", "bird",
         {"service": "channels", "event": "sms.inbound", "payload": {
             "id": "m1", "sender": {"contact": {"identifierValue": "+31612345678"}},
             "body": {"type": "text", "text": {"text": "hi"}}, "replyTo": {"id": "r" * 1001}}},
         error="in-reply-to message id is longer than 1000 characters"),
    Case("bird-legacy-long-sender", "bird", b"", method="GET",
         query=f"id=m1&status=delivered&originator={'x' * 1001}",
         error="sender is longer than 1000 characters"),
    # Message text is content, not an id: not limited.
    Case("infobip-long-inbound-text", "infobip",
         {"results": [{"messageId": "m", "from": "41793026727", "text": "t" * 5000,
                       "receivedAt": "2019-11-09T16:00:00.000+0000"}]},
         events=[{"text": "t" * 5000}]),
    # --- reasons name a long value by its start only (they go to HTTP answers and logs) ---
    Case("infobip-long-unknown-event", "infobip",
         {"results": [{"event": "x" * 100_000}]}, error="unknown Infobip event 'xxx"),
    Case("bird-channels-long-unknown-event", "bird",
         {"event": "x" * 100_000, "payload": {}}, error="unrecognised Bird Channels event"),
    Case("bird-channels-long-event-payload-not-object", "bird",
         {"event": "x" * 100_000, "payload": 1}, error="webhook 'payload' should be an object"),
    Case("bird-platform-long-unknown-type", "bird",
         {"type": "x" * 100_000, "data": {}}, error="unrecognised Bird platform event type"),
    Case("bird-platform-long-type-without-id", "bird",
         {"type": "sms." + "x" * 100_000, "data": {}}, error="names no message"),
    Case("bird-legacy-json-long-media-url-not-string", "bird",
         {"originator": "31612345678", "mediaurls": [["x" * 100_000]]},
         error="media URL should be a non-empty string"),
    Case("infobip-omnichat-long-postback-type-without-payload", "infobip-omnichat",
         {"results": [{"from": "u1", "event": "MO",
                       "message": {"type": "BUTTON" + "_" * 100_000}}]},
         error="message has no 'payload'"),
    # --- an Infobip URL's ?channel= labels only reports that name no channel ---
    Case("infobip-query-channel-does-not-override-the-report", "infobip",
         {"results": [{"event": "DELIVERY", "channel": "VIBER_BM", "messageId": "m",
                       "status": {"groupName": "DELIVERED"}}]},
         query="channel=WHATSAPP", events=[{"channel": "viber"}]),
    # an Apple Messages for Business address is the report's own evidence: it beats the label
    Case("infobip-apple-address-beats-the-url-label", "infobip",
         {"results": [{"messageId": "m", "to": "urn:mbid:AQAAY9Jnpv", "sender": "biz-1",
                       "status": {"groupName": "DELIVERED"}}]},
         query="channel=WHATSAPP", events=[{"channel": "apple", "to": "urn:mbid:AQAAY9Jnpv"}]),
    Case("infobip-apple-address-does-not-override-the-report", "infobip",
         {"results": [{"event": "DELIVERY", "channel": "RCS", "messageId": "m",
                       "to": "urn:mbid:AQAAY9Jnpv", "status": {"groupName": "DELIVERED"}}]},
         events=[{"channel": "rcs"}]),
    Case("infobip-query-channel-empty-is-no-label", "infobip",
         {"results": [{"messageId": "m", "status": {"groupName": "DELIVERED"}}]},
         query="channel=&token=x", events=[{"channel": "sms"}]),
    Case("infobip-query-channel-too-long", "infobip",
         {"results": [{"messageId": "m", "status": {"groupName": "DELIVERED"}}]},
         query="channel=" + "x" * 100_000, error="channel label is longer than"),
    # --- a lone surrogate escape (a text cut inside an emoji) is U+FFFD, not a refused body ---
    Case("infobip-lone-high-surrogate-in-a-batch", "infobip",
         b'{"results":[{"messageId":"m1","from":"385916242493","to":"385921004026",'
         b'"text":"ok \\ud83d"},{"messageId":"m2","from":"385916242493",'
         b'"to":"385921004026","text":"next"}]}',
         events=[{"message_id": "m1", "text": "ok \ufffd"}, {"message_id": "m2", "text": "next"}]),
    Case("webex-lone-low-surrogate", "webex",
         b'{"oa":"447700900123","da":"56263","message":"\\ude00 hi","tid":"t"}',
         events=[{"text": "\ufffd hi"}]),
    Case("bird-channels-lone-surrogate-in-a-key", "bird",
         b'{"service":"channels","event":"sms.inbound","payload":{"id":"x",'
         b'"sender":{"contact":{"identifierValue":"+31612345678"}},"\\ud800":1,'
         b'"body":{"type":"text","text":{"text":"a\\ud83d\\ude00b"}}}}',
         events=[{"text": "a\U0001F600b"}]),  # a pair is one character, as orjson reads it
    Case("ubiqio-lone-surrogate-behind-a-bom", "ubiqio",
         b'\xef\xbb\xbf{"fromNumber":"31612345678","message":"\\udbff","messageId":"m"}',
         events=[{"text": "\ufffd"}]),
    Case("webex-lone-surrogate-in-json-encoded-attachments", "webex",
         b'{"abcUserId":"urn:mbid:AQ","channel":"AppleBusinessChat","event":"MO","tid":"t",'
         b'"message":"x","attachments":"[{\\"url\\":\\"https://s3.example/a.jpeg\\",'
         b'\\"caption\\":\\"\\\\ud83d\\"}]"}',
         events=[{"media": [{"url": "https://s3.example/a.jpeg", "content_type": None,
                             "caption": "\ufffd"}]}]),
    Case("webex-lone-surrogate-in-mms-parts", "webex",
         b'{"channel":"MMS","oa":"16502813641","da":"34343","tid":"t",'
         b'"message":"[{\\"file\\":\\"https://m.example/\\\\udc00.jpg\\"}]"}',
         events=[{"text": None, "media": [{"url": "https://m.example/\ufffd.jpg",
                                           "content_type": None, "caption": None}]}]),
    Case("infobip-omnichat-lone-surrogate-and-nan", "infobip-omnichat",
         b'{"results":[{"messageId":"m","message":{"text":"\\ud800"},"n":NaN}]}',
         error="body is not valid JSON"),
    Case("webex-lone-surrogate-and-number-beyond-a-double", "webex",
         b'{"oa":"447700900123","message":"\\ud800","tid":"t","n":1' + b"0" * 400 + b"}",
         error="body is not valid JSON"),
    Case("webex-lone-surrogate-and-exponent-beyond-a-double", "webex",
         b'{"oa":"447700900123","message":"\\ud800","tid":"t","n":-1e400}',
         error="body is not valid JSON"),
    Case("webex-lone-surrogate-and-number-beyond-64-bits", "webex",
         b'{"oa":"447700900123","message":"\\ud800","tid":18446744073709551616}',
         error="too large to be read exactly"),
    # --- an MMS's SMIL layout is no media item, whatever names it; other channels' files are ---
    Case("bird-legacy-mms-smil-media-url", "bird",
         "originator=31612345678&recipient=3197010260000&mediaURLs=https%3A%2F%2Fm.example%2Fa.jpg"
         "&mediaURLs=https%3A%2F%2Fm.example%2Flayout.SMIL%3Fsig%3D1",
         content_type="application/x-www-form-urlencoded",
         events=[{"channel": "mms", "media": [
             {"url": "https://m.example/a.jpg", "content_type": None, "caption": None}]}]),
    Case("infobip-mms-smil-with-parameters", "infobip",
         {"results": [{"from": "41793026727", "to": "25256", "messageId": "m", "message": [
             {"contentType": "Application/SMIL+xml; charset=utf-8", "url": "https://m.example/1"},
             {"contentType": "text/plain", "value": "hi"}]}]},
         events=[{"text": "hi", "media": []}]),
    Case("infobip-whatsapp-smil-document-is-a-file", "infobip",
         {"results": [{"event": "MO", "channel": "WHATSAPP", "sender": "41793026727",
                       "destination": "25256", "messageId": "m",
                       "content": [{"type": "DOCUMENT", "url": "https://m.example/talk.smil"}]}]},
         events=[{"media": [{"url": "https://m.example/talk.smil", "content_type": None,
                             "caption": None}]}]),
    # --- a caption whose file has no URL is joined to a text beside it, not dropped ---
    Case("infobip-per-channel-top-level-text-and-caption-without-url", "infobip",
         {"results": [{"from": "385916242493", "to": "385921004026", "messageId": "w",
                       "integrationType": "WHATSAPP", "text": "Order 42",
                       "message": {"type": "IMAGE", "caption": "the damaged box"}}]},
         events=[{"text": "Order 42\nthe damaged box", "media": []}]),
    Case("infobip-per-channel-top-level-text-repeated-in-message", "infobip",
         {"results": [{"from": "385916242493", "to": "385921004026", "messageId": "w",
                       "integrationType": "WHATSAPP", "text": "hi",
                       "message": {"type": "TEXT", "text": "hi"}}]},
         events=[{"text": "hi"}]),
    Case("infobip-mms-repeated-text-parts-stay-repeated", "infobip",
         {"results": [{"from": "41793026727", "to": "25256", "messageId": "m", "message": [
             {"contentType": "text/plain", "value": "ok"},
             {"contentType": "text/plain", "value": "ok"}]}]},
         events=[{"text": "ok\nok"}]),
    Case("infobip-omnichat-text-and-caption-without-url", "infobip-omnichat",
         {"results": [{"messageId": "m", "from": "u1", "event": "MO",
                       "message": {"type": "IMAGE", "text": "Order 42",
                                   "caption": "the damaged box"}}]},
         events=[{"text": "Order 42\nthe damaged box", "media": []}]),
    Case("ubiqio-mms-message-and-caption-without-image-url", "ubiqio",
         {"fromNumber": "31612345678", "channel": "MMS", "messageId": "u",
          "message": "Order 42", "caption": "the damaged box"},
         events=[{"text": "Order 42\nthe damaged box", "media": []}]),
    Case("ubiqio-mms-caption-repeating-the-message-without-image-url", "ubiqio",
         {"fromNumber": "31612345678", "channel": "MMS", "messageId": "u",
          "message": "Order 42", "caption": "Order 42"},
         events=[{"text": "Order 42"}]),
    # --- XML in an encoding the parser cannot read ---
    *(Case(f"infobip-xml-encoding-{encoding}", "infobip",
           f'<?xml version="1.0" encoding="{encoding}"?><results><result><messageId>m'
           "</messageId><status><groupName>DELIVERED</groupName></status></result></results>",
           content_type="application/xml", error="which is not supported; send UTF-8")
      for encoding in ("utf-16-le", "shift_jis", "rot13", "x-mac-roman", "idna", "punycode")),
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_edge_payload(case: Case) -> None:
    request = case.request()
    if case.error is not None:
        with pytest.raises(NormalizeError) as caught:
            normalize(request)
        assert caught.value.__cause__ is None, f"the normalizer crashed: {caught.value.__cause__!r}"
        assert case.error.lower() in caught.value.reason.lower()
        assert len(caught.value.reason) < 500, "a reason must not echo a huge value"
        return
    events = normalize(request)
    assert len(events) == len(case.events)
    for event, expected in zip(events, case.events, strict=True):
        record = event.to_json()
        assert len(record) < MAX_EVENT_BYTES + len(event.text or "")
        data = MessageEvent.from_json(record).to_dict()
        assert {key: data[key] for key in expected} == expected

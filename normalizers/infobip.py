"""Infobip webhooks -> message events.

Infobip posts every kind of report as `{"results": [...]}` (JSON, or XML when the message asked
for `application/xml`), up to 100 reports per request. The kind is told apart per report:

* Messages API reports carry `event`: `DELIVERY` (delivery report), `SEEN` (seen report), `MO`
  (inbound message) or `TYPING_STARTED`/`TYPING_STOPPED` (ignored: not messages). Messenger's
  consent updates carry `event` too (`SUBSCRIBE`/`UNSUBSCRIBE`, ignored likewise).
* SMS API delivery reports (legacy v1/v2 `notifyUrl` and v3 `webhooks.delivery`) have no
  `event` but a `status` object; they are SMS. The per-channel APIs' delivery reports (WhatsApp's
  `notifyUrl`, Viber's, Messenger's, LINE's, RCS's without failover, ...) have the same shape
  and name no channel either: `?channel=WHATSAPP` on the URL given to Infobip labels them.
  Apple Messages for Business reports need no label: their `urn:mbid:` address says the channel.
* The per-channel APIs' seen reports have no `event` and no `status` but `seenAt`, and no
  channel: the URL's label again, else `unknown`.
* Inbound SMS (renderer `MO_JSON_2`) and inbound MMS have no `event`, no `status`, but
  `receivedAt`/`text`/`message`.

Status mapping, error handling and addresses are documented in docs/providers/infobip.md.

This module finds the reports and tells their kinds apart; each kind is read by a private
module of its own: _infobip_status (delivery and seen reports; its status and error readers
are public here too, for infobip_omnichat, which reads the same objects), _infobip_messages
(the Messages API's inbound `MO`) and _infobip_channels (inbound SMS and MMS, and the
per-channel APIs' inbound: WhatsApp, Messenger, Viber, Viber Bot, Apple Messages for
Business). _infobip_fields holds the field readers they share.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from normalizers._infobip_channels import sms_inbound
from normalizers._infobip_messages import messages_inbound
from normalizers._infobip_status import STATUS_BY_NAME as STATUS_BY_NAME
from normalizers._infobip_status import delivery_report, seen_report
from normalizers._infobip_status import error_info as error_info
from normalizers._infobip_status import map_status as map_status
from normalizers._infobip_status import provider_status as provider_status
from normalizers.base import DEFAULT_ACK, Ack, JsonObject, NormalizeError, WebhookRequest, shown
from normalizers.bodies import is_xml, parse_json_object, parse_xml
from normalizers.event_builders import each_event
from normalizers.fields import first, iter_objects, loose_keys, text_field
from switchboard.events import MessageEvent

NAME = "infobip"

# Events that say something happened in a conversation but carry no message: typing
# indicators, and Messenger's consent updates (`SUBSCRIBE`/`UNSUBSCRIBE`: a contact opting in to
# or out of Meta's Marketing Messages, whose token only the marketing send uses). A consent
# update is not an opt-out of the conversation, and schema v1 has no event for it.
# Consent updates only on Messenger: another channel's UNSUBSCRIBE, if one ever came, might be
# a real opt-out, and is refused (kept as a dead letter) rather than dropped.
_IGNORED_EVENTS = frozenset({"TYPING_STARTED", "TYPING_STOPPED"})
_MESSENGER_CONSENT_EVENTS = frozenset({"SUBSCRIBE", "UNSUBSCRIBE"})

# Error 603 EC_CONTENT_BLOCKED, "Content blocked by user opt-out (MO: STOP)": the contact sent
# STOP to the number. Infobip numbers errors per product, and the source speaks of SMS only:
# a wrong opt-out would silence a contact, so only there.
OPT_OUT_ERROR_CODES = frozenset({"603"})
OPT_OUT_CHANNELS = frozenset({"sms"})


def normalize(request: WebhookRequest) -> list[MessageEvent]:
    """One event per report in the request, in order; typing indicators give none."""
    reports = (_xml_reports(request.body, request.content_type) if is_xml(request)
               else _json_reports(request.body))
    label = _query_channel(request)
    if label is None:
        return each_event(request, reports, _normalize_report)
    return each_event(request, reports, partial(_normalize_report, label=label))


def acknowledge(request: WebhookRequest) -> Ack:
    """Infobip only needs HTTP 200; the body is ignored."""
    return DEFAULT_ACK


# --- finding the reports ---------------------------------------------------------------------


def _query_channel(request: WebhookRequest) -> str | None:
    """`?channel=WHATSAPP` (or `integrationType=`) on the webhook URL: the channel of reports
    that name none. A per-channel API's delivery report (WhatsApp's, sent to its `notifyUrl`)
    has the SMS report's shape without a channel, so the URL is the only place that can say."""
    if not request.query:
        return None
    return text_field(loose_keys(request.query_fields), "channel", "integrationtype")


# Notifications Infobip posts bare, without the `results` array: Messenger's Marketing Message
# click (`{notificationType: "MARKETING_CLICK", from, to, messageId, campaignId, clickedAt}`) and
# the SMS API's tracked-link click (`CLICKED`, `{recipient, url, sendDateTime, messageId, ...}`),
# link clicks as other providers' are, which schema v1 has no status for; and Messenger's
# `AUDIENCE_UPLOAD_STATUS` (a Custom Audience upload processed), about no message or contact.
_IGNORED_NOTIFICATIONS = frozenset({"MARKETING_CLICK", "CLICKED", "AUDIENCE_UPLOAD_STATUS"})


def _json_reports(body: bytes) -> list[JsonObject]:
    data = parse_json_object(body)
    if "results" not in data:
        if (text_field(data, "notificationType") or "").upper() in _IGNORED_NOTIFICATIONS:
            return []
        raise NormalizeError("expected an Infobip webhook: a JSON object with a 'results' array")
    results = data["results"]
    if not isinstance(results, list):
        raise NormalizeError(f"'results' should be an array, got {type(results).__name__}")
    return list(iter_objects(results, "results"))


_XML_REPORT_TAGS = ("results", "result")


def _xml_reports(body: bytes, content_type: str) -> list[JsonObject]:
    """Reports from any of Infobip's XML nestings (`<results><results>`, `<results><result>`).

    Every `<result>` element is one report, as every item of the JSON `results` array is. A
    `<results>` element holding `<result>` or `<results>` elements lists reports; one holding
    other elements is a report itself (the Messages API's inner `<results>`). A `<results>` or
    `<result>` holding no elements at all is an error: a report that was lost, not an empty
    batch.
    """
    tree = parse_xml(body, content_type)  # its charset wins over the XML's own (RFC 7303)
    root = tree.pop("_root")
    if set(tree) == {"_text"}:  # the root element holds only text
        tree = tree["_text"]
    if root in _XML_REPORT_TAGS:
        pending = [(root, tree)]
    elif isinstance(tree, dict) and any(tag in tree for tag in _XML_REPORT_TAGS):
        pending = _xml_children(tree)
    else:
        raise NormalizeError(f"XML <{root}> has no <results> element; not an Infobip report")
    found: list[JsonObject] = []
    while pending:  # a stack, not recursion: documents can be deeply nested
        tag, node = pending.pop()
        children = _xml_children(node) if tag == "results" and isinstance(node, dict) else []
        if children:
            pending.extend(children)
        elif isinstance(node, dict) and node:
            found.append(node)
        else:
            raise NormalizeError(
                f"XML <{tag}> element holds no report (elements such as <messageId> and "
                f"<status>; attributes are not read), got {shown(node)}"
            )
    return found


def _xml_children(node: JsonObject) -> list[tuple[str, Any]]:
    """The `<results>` and `<result>` elements in `node`, last first (for popping)."""
    children = [(tag, child) for tag in _XML_REPORT_TAGS if tag in node
                for child in (node[tag] if isinstance(node[tag], list) else [node[tag]])]
    children.reverse()
    return children


def _normalize_report(request: WebhookRequest, report: JsonObject,
                      label: str | None = None) -> MessageEvent | None:
    """`label`: the URL's channel (`_query_channel`), for reports that name none."""
    event = text_field(report, "event")
    if event is None:
        if first(report, "status") is not None:
            return delivery_report(request, report, default_channel=label or "sms")
        if first(report, "seenAt") is not None:
            return seen_report(request, report, label, addressed=False)
        if first(report, "receivedAt", "text", "message") is not None:
            return sms_inbound(request, report, label)
        raise NormalizeError(
            "not a recognised Infobip report (no 'event', no 'status', no 'seenAt', "
            "no 'receivedAt')"
        )
    kind = event.upper()
    if kind == "DELIVERY":
        return delivery_report(request, report, default_channel=label)
    if kind == "SEEN":
        return seen_report(request, report, label)
    if kind == "MO":
        return messages_inbound(request, report, label)
    if kind in _IGNORED_EVENTS:
        return None
    if kind in _MESSENGER_CONSENT_EVENTS and \
            (text_field(report, "channel") or "").upper() == "MESSENGER":
        return None
    raise NormalizeError(f"unknown Infobip event {shown(event)}; expected DELIVERY, SEEN or MO")

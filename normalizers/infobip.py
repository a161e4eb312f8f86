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
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import partial
from typing import Any

from normalizers.base import DEFAULT_ACK, Ack, JsonObject, NormalizeError, WebhookRequest, shown
from normalizers.bodies import is_xml, parse_json_object, parse_xml
from normalizers.channels import channel
from normalizers.event_builders import add_file, each_event, inbound_event, status_event
from normalizers.fields import (
    EXACT_FLOAT_LIMIT,
    as_list,
    first,
    geo_uri,
    int_field,
    iter_objects,
    loose_keys,
    object_field,
    place_caption,
    text_field,
)
from normalizers.prices import price
from normalizers.times import parse_time
from switchboard.events import ErrorInfo, Media, MessageEvent, Price, ProviderStatus, Status

NAME = "infobip"

# Events that say something happened in a conversation but carry no message: typing
# indicators, and Messenger's consent updates (`SUBSCRIBE`/`UNSUBSCRIBE`: a contact opting in to
# or out of Meta's Marketing Messages, whose token only the marketing send uses). A consent
# update is not an opt-out of the conversation, and schema v1 has no event for it.
# Consent updates only on Messenger: another channel's UNSUBSCRIBE, if one ever came, might be
# a real opt-out, and is refused (kept as a dead letter) rather than dropped.
_IGNORED_EVENTS = frozenset({"TYPING_STARTED", "TYPING_STOPPED"})
_MESSENGER_CONSENT_EVENTS = frozenset({"SUBSCRIBE", "UNSUBSCRIBE"})

# Viber Bot events (a per-channel inbound's `message` `{type, messageToken, ...}`) that carry no
# message: Viber's receipt of one of the bot's messages (`DELIVERED`, named by Viber's
# `messageToken`, not our message id; Infobip's Viber Bot delivery reports say the status), a
# contact subscribing, and a contact opening the chat. `UNSUBSCRIBED` is not among them: the
# contact leaving the bot may be a real opt-out, and is refused (kept as a dead letter).
_VIBER_BOT_IGNORED_EVENTS = frozenset({"DELIVERED", "SUBSCRIBED", "CONVERSATION_STARTED"})

# Status names whose meaning is narrower than their group's (see docs/providers/infobip.md).
STATUS_BY_NAME: Mapping[str, Status] = {
    "MESSAGE_ACCEPTED": Status.ACCEPTED,
    "PENDING_ACCEPTED": Status.ACCEPTED,  # accepted, not yet handed to the operator
    "PENDING_ENROUTE": Status.SENT,
    "PENDING_WAITING_DELIVERY": Status.SENT,  # sent, waiting for the operator's DLR
    "PENDING_TIME_VIOLATION": Status.SCHEDULED,  # held until the allowed time window opens
    "DELIVERED_TO_OPERATOR": Status.SENT,  # intermediate: the handset has not confirmed
    "DELIVERED_TO_HANDSET": Status.DELIVERED,
}

_STATUS_BY_GROUP_NAME = {
    "ACCEPTED": Status.ACCEPTED,
    # Unknown PENDING_* names: Infobip has the message; we do not claim it left.
    "PENDING": Status.ACCEPTED,
    "UNDELIVERABLE": Status.UNDELIVERED,
    "DELIVERED": Status.DELIVERED,
    "EXPIRED": Status.EXPIRED,
    "REJECTED": Status.REJECTED,
}

_STATUS_BY_GROUP_ID = {
    0: Status.ACCEPTED,
    1: Status.ACCEPTED,
    2: Status.UNDELIVERED,
    3: Status.DELIVERED,
    4: Status.EXPIRED,
    5: Status.REJECTED,
}

_STATUS_BY_PREFIX = (
    ("UNDELIVERABLE_", Status.UNDELIVERED),
    ("EXPIRED_", Status.EXPIRED),
    ("REJECTED_", Status.REJECTED),
    ("DELIVERED_", Status.DELIVERED),
    ("PENDING_", Status.ACCEPTED),
)

_DELIVERED_TO_OPERATOR_ID = 2

# Error 603 EC_CONTENT_BLOCKED, "Content blocked by user opt-out (MO: STOP)": the contact sent
# STOP to the number. Infobip numbers errors per product, and the source speaks of SMS only:
# a wrong opt-out would silence a contact, so only there.
OPT_OUT_ERROR_CODES = frozenset({"603"})
OPT_OUT_CHANNELS = frozenset({"sms"})

# Messages API media part types; the part says only the kind, so the type is a MIME range.
_MEDIA_TYPES = {
    "IMAGE": "image/*",
    "AUDIO": "audio/*",
    "VIDEO": "video/*",
    "DOCUMENT": None,
    "FILE": None,
    "URL": None,
}


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
            return _delivery_report(request, report, default_channel=label or "sms")
        if first(report, "seenAt") is not None:
            return _seen_report(request, report, label, addressed=False)
        if first(report, "receivedAt", "text", "message") is not None:
            return _sms_inbound(request, report, label)
        raise NormalizeError(
            "not a recognised Infobip report (no 'event', no 'status', no 'seenAt', "
            "no 'receivedAt')"
        )
    kind = event.upper()
    if kind == "DELIVERY":
        return _delivery_report(request, report, default_channel=label)
    if kind == "SEEN":
        return _seen_report(request, report, label)
    if kind == "MO":
        return _messages_inbound(request, report, label)
    if kind in _IGNORED_EVENTS:
        return None
    if kind in _MESSENGER_CONSENT_EVENTS and \
            (text_field(report, "channel") or "").upper() == "MESSENGER":
        return None
    raise NormalizeError(f"unknown Infobip event {shown(event)}; expected DELIVERY, SEEN or MO")


# --- status reports --------------------------------------------------------------------------


def _delivery_report(
    request: WebhookRequest, report: JsonObject, *, default_channel: str | None
) -> MessageEvent:
    status_obj = _object(report, "status")
    if status_obj is None:
        raise NormalizeError("delivery report has no 'status' object")
    return status_event(
        request,
        channel=_channel(report, default_channel),
        status=map_status(status_obj),
        message_id=text_field(report, "messageId"),
        correlation_id=text_field(report, "callbackData"),
        sender=text_field(report, "sender", "from"),
        recipient=text_field(report, "destination", "to"),
        error=_error(report),
        provider_status=provider_status(status_obj),
        segments=int_field(report, "messageCount", "smsCount"),
        price=_price(report),
        occurred_at=parse_time(first(report, "doneAt", "sentAt")),
    )


def _seen_report(request: WebhookRequest, report: JsonObject, label: str | None, *,
                 addressed: bool = True) -> MessageEvent:
    """A seen report. A per-channel API's (WhatsApp's, Viber's, Messenger's, RCS's: `{messageId,
    from, to, sentAt, seenAt, ...}`, no `event`, no channel) is not `addressed`: its channel
    is the URL's label, else `unknown` (nothing in the report says it), and its `from` and `to`
    are not read: Infobip's descriptions and samples disagree on which of them is the contact
    (docs/providers/infobip.md), and a swapped pair would file the report under our own
    number."""
    return status_event(
        request,
        channel=_channel(report, label),
        status=Status.SEEN,
        message_id=text_field(report, "messageId"),
        correlation_id=text_field(report, "callbackData"),
        sender=text_field(report, "sender", "from") if addressed else None,
        recipient=text_field(report, "destination", "to") if addressed else None,
        occurred_at=parse_time(first(report, "seenAt")),
    )


def map_status(status_obj: JsonObject, by_name: Mapping[str, Status] = STATUS_BY_NAME
               ) -> Status:
    """An Infobip status object's status: specific names (`by_name`) first, then the group
    (name or id), then the name's prefix. infobip_omnichat maps the same objects with it."""
    name = (text_field(status_obj, "name") or "").upper()
    if name in by_name:
        return by_name[name]
    if "SCHEDULED" in name:
        return Status.SCHEDULED
    group = _group_status(status_obj)
    if (group is Status.DELIVERED and not name
            and _number(status_obj.get("id")) == _DELIVERED_TO_OPERATOR_ID):
        return Status.SENT
    if group is not None:
        return group
    for prefix, status in _STATUS_BY_PREFIX:
        if name.startswith(prefix):
            return status
    return Status.UNKNOWN


def _group_status(status_obj: JsonObject) -> Status | None:
    group_name = text_field(status_obj, "groupName")
    if group_name is not None and group_name.upper() in _STATUS_BY_GROUP_NAME:
        return _STATUS_BY_GROUP_NAME[group_name.upper()]
    group_id = _number(status_obj.get("groupId"))
    return _STATUS_BY_GROUP_ID.get(group_id) if group_id is not None else None


def provider_status(status_obj: JsonObject) -> ProviderStatus:
    """An Infobip status object, kept as the event's `provider_status`."""
    group = text_field(status_obj, "groupName")
    if group is None:
        group = text_field(status_obj, "groupId")
    return ProviderStatus.build(
        code=_code(status_obj),
        name=text_field(status_obj, "name"),
        group=group,
        description=text_field(status_obj, "description"),
    )


def _error(report: JsonObject) -> ErrorInfo | None:
    """The report's error, or None when Infobip says there is none (id 0, NO_ERROR)."""
    error_obj = _object(report, "error")
    if not error_obj:
        return None
    error = error_info(error_obj)
    if error is None or (error.code is None and error.description is None):
        return None
    return error


def error_info(error_obj: JsonObject) -> ErrorInfo | None:
    """An Infobip error object as ErrorInfo; None when it says there is no error (id 0,
    NO_ERROR, or no id and group 0). infobip_omnichat reads the same objects with it."""
    error_id = _number(error_obj.get("id"))
    name = text_field(error_obj, "name")
    if error_id == 0 or (name or "").upper() == "NO_ERROR":
        return None
    if error_id is None and _number(error_obj.get("groupId")) == 0:
        return None
    return ErrorInfo.build(code=_code(error_obj),
                           description=text_field(error_obj, "description") or name,
                           permanent=_flag(error_obj.get("permanent")))


# --- inbound messages ------------------------------------------------------------------------


def _messages_inbound(request: WebhookRequest, report: JsonObject,
                      label: str | None) -> MessageEvent | None:
    """A Messages API `MO` event: typed content parts become text, media and postback."""
    content = _Content()
    content.read_parts(iter_objects(report.get("content"), "content"))
    if content.retracted_only():
        return None
    metadata = _object(report, "metadata") or {}
    correlation_id = text_field(report, "callbackData") or text_field(metadata, "correlationData")
    return inbound_event(
        request,
        channel=_channel(report, label),
        message_id=text_field(report, "messageId"),
        sender=text_field(report, "sender", "from"),
        recipient=text_field(report, "destination", "to"),
        text=content.text(),
        media=content.media,
        postback=content.postback,
        in_reply_to=text_field(report, "pairedMessageId"),
        correlation_id=correlation_id,
        segments=int_field(report, "messageCount"),
        price=_price(report),
        occurred_at=parse_time(first(report, "receivedAt")),
    )


def _sms_inbound(request: WebhookRequest, report: JsonObject,
                 label: str | None) -> MessageEvent | None:
    """Inbound SMS (`MO_JSON_2`) or MMS (the same envelope with a `message[]` of parts).

    Infobip's per-channel inbound (WhatsApp without the MO_MESSAGES_API_JSON renderer, Apple
    Messages for Business, Viber) has the same envelope with one `message` object and an
    `integrationType`, which names the channel: such a message is not an MMS (nor is
    Messenger's, which has no `integrationType`); a Viber Bot's `message` is an event whose
    own `message` is the contact's (its other events give none, but `UNSUBSCRIBED`, refused). A
    per-channel typing indicator (Apple's) is not a message: no event, as for the Messages
    API's.
    """
    texts: list[str] = []
    media: list[Media] = []
    postback: str | None = None
    parts = report.get("message")
    if parts.__class__ is dict:
        kind = (text_field(parts, "type") or "").upper()
        if kind == "TYPING_INDICATOR":
            return None
        if kind == "MESSAGE":  # a Viber Bot event: the contact's message is nested in it
            parts = _viber_bot_message(object_field(parts, "message"))
        elif kind in _VIBER_BOT_IGNORED_EVENTS:
            return None
        elif kind == "UNSUBSCRIBED":
            raise NormalizeError(
                "Viber Bot event 'UNSUBSCRIBED' (the contact unsubscribed from the bot) is not "
                "read: it may be an opt-out, which schema v1 has no event for, so it is kept "
                "as a dead letter rather than dropped")
    for part in iter_objects(parts, "message"):
        if roadside := object_field(part, "rsaContent"):
            part = _roadside(roadside)
        for identifier, title in _choices(part):
            if title is not None:
                texts.append(title)
            postback = postback or identifier
        # Apple Messages for Business files come as the message's `attachments[]`
        for attachment in iter_objects(part.get("attachments"), "attachments"):
            if (attachment_url := text_field(attachment, "url")) is not None:
                media.append(Media.build(url=attachment_url))
        url = text_field(part, "url")
        content_type = text_field(part, "contentType")
        caption = text_field(part, "caption")
        # Coordinates first: a per-channel WhatsApp LOCATION may carry a `url`, the place's
        # website, which would otherwise stand in for the place.
        if (location := geo_uri(part)) is not None:
            media.append(Media.build(url=location, caption=_place(part)))
        elif url is not None or caption is not None:  # a file, fetchable or not
            add_file(media, texts, url, content_type=content_type, caption=caption)
        elif (content_type or "text/plain").lower().startswith("text/"):
            value = text_field(part, "value", "text")
            if value is not None:
                texts.append(value)
    text = text_field(report, "text", "cleanText")
    if text is None and texts:
        text = "\n".join(texts)
    return inbound_event(
        request,
        channel=_channel(report, label or _inbound_default_channel(parts)),
        # Messenger's carries no Infobip messageId, only Meta's `message.mid`.
        message_id=text_field(report, "messageId") or (
            text_field(parts, "mid") if parts.__class__ is dict else None),
        sender=text_field(report, "from", "sender"),
        recipient=text_field(report, "to", "destination"),
        text=text,
        media=media,
        postback=postback,
        in_reply_to=text_field(report, "pairedMessageId"),
        correlation_id=text_field(report, "callbackData"),
        segments=int_field(report, "smsCount", "messageCount"),
        price=_price(report),
        occurred_at=parse_time(first(report, "receivedAt")),
    )


def _viber_bot_message(message: JsonObject) -> JsonObject:
    """The contact's message in a Viber Bot event (`{type: MESSAGE, messageToken, sender,
    message}`) as a part of the shape the other per-channel messages have: a file's, image's
    or video's `text` (what goes with it, as an image's description) is its caption, and a
    LOCATION's `location{latitude, longitude, address}` the coordinates and the place."""
    part = dict(message)
    if part.get("url") is not None and part.get("caption") is None:
        part["caption"] = part.pop("text", None)
    if location := object_field(message, "location"):
        part.update(latitude=location.get("latitude"), longitude=location.get("longitude"),
                    address=location.get("address"))
    return part


def _inbound_default_channel(parts: Any) -> str:
    """The channel of an inbound report that names none: `sms` without parts, `mms` with MMS
    parts (`message[]` of `{contentType, value | url}`), `unknown` for one per-channel message
    object (`{type, ...}`: Messenger's has no `integrationType`, and nothing else says which
    channel sent it)."""
    if parts.__class__ is dict and "type" in parts and "contentType" not in parts:
        return "unknown"
    return "mms" if as_list(parts) else "sms"


# Per-channel WhatsApp replies to our interactive buttons and list rows: `{id, title}`.
_WHATSAPP_REPLIES = frozenset({"INTERACTIVE_BUTTON_REPLY", "INTERACTIVE_LIST_REPLY"})


def _choices(part: JsonObject) -> list[tuple[str | None, str | None]]:
    """What a contact picked in a per-channel message, as (identifier, title) pairs: the
    identifier is the postback, the title the text they saw, as for the Messages API's
    BUTTON_REPLY and LIST_REPLY.

    WhatsApp: a button or list row of ours (`INTERACTIVE_BUTTON_REPLY`/`_LIST_REPLY`, `{id,
    title}`), or a template's quick-reply `BUTTON`, whose `payload` is the postback (its `text`
    is read as any message's). Messenger: a template button's `POSTBACK` (`{payload, title}`),
    or a quick reply, a `TEXT` whose `text` is the reply's title and whose `quickReply.payload`
    is ours. Apple Messages for Business: a quick reply (`quickReplySelectedItem`) or list
    picker (`listPickerSelectedItems[]`); a time picker's pick is the time slot we offered
    (`selectedTimeslotIdentifier`) and its start as Infobip gives it (`selectedTime`, a UTC
    time): the reply names no title. A form's answers are titles without an identifier
    (`_form_answers`)."""
    kind = (text_field(part, "type") or "").upper()
    if kind in _WHATSAPP_REPLIES:
        return [(text_field(part, "id"), text_field(part, "title"))]
    if kind == "BUTTON":
        return [(text_field(part, "payload"), None)]
    if kind == "POSTBACK":
        return [(text_field(part, "payload"), text_field(part, "title"))]
    if quick_reply := object_field(part, "quickReply"):
        return [(text_field(quick_reply, "payload"), None)]
    if kind == "FORM_RESPONSE":
        return [(None, answer) for answer in _form_answers(part, "privateForm")]
    items = [*iter_objects(part.get("quickReplySelectedItem"), "quickReplySelectedItem"),
             *iter_objects(part.get("listPickerSelectedItems"), "listPickerSelectedItems")]
    choices = [(text_field(item, "identifier"), text_field(item, "title")) for item in items]
    slot = text_field(part, "selectedTimeslotIdentifier")
    time = text_field(part, "selectedTime")
    if slot is not None or time is not None:
        choices.append((slot, time))
    return choices


def _roadside(content: JsonObject) -> JsonObject:
    """An Apple roadside assistance message (over satellite; its content is the message's
    `rsaContent`) as a part of the shape the other messages have: a TEXT's `text`, what the
    contact typed, and a LOCATION's `position` (a REQUEST's `location.position`) as
    coordinates. A REQUEST's questionnaire and a STATUS have no place in schema v1."""
    position = (object_field(content, "position")
                or object_field(object_field(content, "location"), "position"))
    return {"text": content.get("text"), "latitude": position.get("latitude"),
            "longitude": position.get("longitude")}


# Form pages where the contact typed (INPUT) or picked a date (DATE_PICKER): the item's `value`
# is the answer (a date picker's is a date-time). On the other pages (SELECT, MULTI_SELECT,
# PICKER) they tapped one of our options, whose `title` is the text they saw.
_FORM_VALUE_PAGES = frozenset({"INPUT", "DATE_PICKER"})


def _form_answers(form: JsonObject, private_key: str) -> list[str]:
    """The answers of an Apple Messages for Business form (FORM_RESPONSE), one per page item, in
    page order. The per-channel reply has `selections[]` of `{type, item | items}`, the Messages
    API's of `{type, items}`. A private form (`private_key`) gives none: forms collect account
    numbers and passwords, the contact was told the answers are private, and the event's text
    is read by every consumer; the raw record keeps them."""
    if _flag(form.get(private_key)):
        return []
    answers: list[str] = []
    for selection in iter_objects(form.get("selections"), "selections"):
        page = (text_field(selection, "type") or "").upper()
        key = "value" if page in _FORM_VALUE_PAGES else "title"
        for item in (*iter_objects(selection.get("item"), "item"),
                     *iter_objects(selection.get("items"), "items")):
            if (answer := text_field(item, key)) is not None:
                answers.append(answer)
    return answers


class _Content:
    """What the content parts of one MO add up to."""

    __slots__ = ("media", "postback", "retracted", "subjects", "texts")

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.media: list[Media] = []
        self.postback: str | None = None
        self.retracted = False
        self.subjects = 0  # how many of `texts` are MMS subjects, which come first

    def text(self) -> str | None:
        return "\n".join(self.texts) if self.texts else None

    def retracted_only(self) -> bool:
        """A removed reaction withdraws something; it is not a message of its own."""
        return self.retracted and not (self.texts or self.media or self.postback)

    def read_parts(self, parts: Iterable[JsonObject]) -> None:
        for part in parts:
            kind = (text_field(part, "type") or "").upper()
            if kind == "TEXT":
                self._add_text(text_field(part, "text", "cleanText"))
            elif kind == "SUBJECT":
                self._add_subject(text_field(part, "text", "cleanText"))
            elif kind in _MEDIA_TYPES:
                add_file(self.media, self.texts, text_field(part, "url"),
                         content_type=_MEDIA_TYPES[kind], caption=text_field(part, "text"))
            elif kind in ("BUTTON_REPLY", "LIST_REPLY"):
                self._add_text(text_field(part, "text"))
                if self.postback is None:
                    self.postback = text_field(part, "payload", "id")
            elif kind == "LOCATION":
                self._add_location(part)
            elif kind == "REACTION":
                self._read_reaction(part)
            elif kind == "FORM_RESPONSE":
                for answer in _form_answers(part, "isPrivate"):
                    self._add_text(answer)
            # Other documented parts (AUTHENTICATION_RESPONSE, FLOW_RESPONSE,
            # PAYMENT_RESPONSE) and future ones have no place in schema v1: the event still
            # says a message arrived, and the raw body keeps the rest.

    def _read_reaction(self, part: JsonObject) -> None:
        if (text_field(part, "action") or "ADDED").upper() == "REMOVED":
            self.retracted = True
        else:
            self._add_text(text_field(part, "emoji"))

    def _add_text(self, text: str | None) -> None:
        if text is not None:
            self.texts.append(text)

    def _add_subject(self, subject: str | None) -> None:
        """An MMS subject is the text's first line, before the body, whatever the parts' order
        (Infobip's own sample sends it last), as Bird's MMS subject is."""
        if subject is not None:
            self.texts.insert(self.subjects, subject)
            self.subjects += 1

    def _add_location(self, part: JsonObject) -> None:
        """A place without coordinates or a map URL is no media item; its name is not taken
        for text the contact typed, as a file's caption is (add_file)."""
        if (url := _location_url(part)) is not None:
            self.media.append(Media.build(url=url, caption=_place(part)))


def _location_url(part: JsonObject) -> str | None:
    """A `geo:` URI (RFC 5870) when coordinates are given, else the part's map URL."""
    return geo_uri(part) or text_field(part, "url")


def _place(part: JsonObject) -> str | None:
    """A LOCATION's caption: the place's `name` and `address` (per-channel WhatsApp; read
    in the Messages API too, whose published part has neither)."""
    return place_caption(part, "name", "address")


# --- small field helpers ---------------------------------------------------------------------


def _channel(report: JsonObject, default: str | None) -> str:
    """`channel`, else `integrationType` (Infobip's per-channel APIs: an inbound WhatsApp
    message forwarded without the MO_MESSAGES_API_JSON renderer), else `apple` for a report
    with an Apple Messages for Business address, else `default` (the URL's label, else what
    the report's shape says)."""
    label = text_field(report, "channel", "integrationType")
    if label is None and _has_apple_address(report):
        label = "apple"
    return channel(label or default)


# Apple Messages for Business opaque ids, Apple's address of a customer (`urn:mbid:AQAA...`):
# the only thing in a per-channel Apple delivery report, whose shape is the SMS report's with
# no channel, that says which channel it is. No other channel's addresses look so.
_APPLE_ADDRESS_PREFIX = "urn:mbid:"


def _has_apple_address(report: JsonObject) -> bool:
    # Read raw: the addresses are checked where they are read; this runs for every SMS report.
    for key in ("to", "sender", "from", "destination"):
        value = report.get(key)
        if value.__class__ is str and value.startswith(_APPLE_ADDRESS_PREFIX):
            return True
    return False


def _object(data: JsonObject, key: str) -> JsonObject | None:
    """A nested object; XML gives "" for an empty element, which counts as absent."""
    value = data.get(key)
    if value.__class__ is dict:
        return value
    if value is None or value == "":
        return None
    if not isinstance(value, dict):
        raise NormalizeError(f"'{key}' should be an object, got {type(value).__name__}")
    return value


# Status and error ids and group ids are small numbers; a longer run of digits is not one.
_MAX_NUMBER_DIGITS = 18


def _number(value: Any) -> int | None:
    """An integer from JSON or from XML text (ASCII digits, at most _MAX_NUMBER_DIGITS of them);
    anything else is None."""
    if value.__class__ is int:
        return value
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) < EXACT_FLOAT_LIMIT:
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit() and len(text) <= _MAX_NUMBER_DIGITS:
            return int(text)
    return None


def _code(data: JsonObject) -> str | None:
    """The `id` as a string ("5", whether JSON gave 5 or XML gave "5")."""
    number = _number(data.get("id"))
    return str(number) if number is not None else text_field(data, "id")


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return value is True


def _price(report: JsonObject) -> Price | None:
    price_obj = _object(report, "price")
    if price_obj is None:
        return None
    return price(first(price_obj, "pricePerMessage"), first(price_obj, "currency"))

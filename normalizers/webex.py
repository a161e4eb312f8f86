"""Webex Connect (formerly IMIconnect) webhooks -> message events.

Webex posts two kinds of JSON body to a notify URL or an Outbound Webhook:

* receipts (delivery, failure, read): `{"deliveryInfoNotification": {"deliveryInfo": {...},
  "transid", "correlationid", "callbackData", ...}}`. `deliveryInfo` is one object; a list
  is accepted too, giving one event per item (an empty one, no receipt at all, is refused).
* inbound (MO) messages: a flat object, `oa`/`da`/`message` for SMS, `waid` for WhatsApp,
  `msisdn` for RCS, `psid` for the legacy Facebook channel, `abcUserId` for Apple Messages
  for Business, `event: "MO"` for legacy in-app (RTM) messages.

Key casing differs between Webex releases and samples (`Channel`/`channel`, `userld`/`userId`,
`Description`), so keys are matched case-insensitively. Mappings and sources are documented in
docs/providers/webex.md.

This module reads the bodies; what Webex's status words, failure codes and channel labels mean
is in the private module _webex_codes.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from normalizers._webex_codes import (
    EXPIRED_CODE,
    FAILURES,
    STATUSES,
    channel_from_label,
    error_info,
)
from normalizers.base import Ack, JsonObject, NormalizeError, WebhookRequest, key_list
from normalizers.bodies import parse_json_object, parse_json_text
from normalizers.event_builders import inbound_event, status_event
from normalizers.fields import (
    as_list,
    first,
    geo_uri,
    int_field,
    iter_objects,
    place_caption,
    text_field,
)
from normalizers.times import parse_time
from switchboard.events import Media, MessageEvent, ProviderStatus, Status

NAME = "webex"

# Webex expects exactly 200: it does not promise to treat 201/204 as success.
_ACK = Ack(status_code=200)

# Apple Messages for Business events that come with the contact's `abcUserId` but carry no
# message: a typing indicator (`type` typing_start/typing_end) and the contact deleting the
# conversation. Schema v1 has no event for either; the raw record keeps them.
_IGNORED_EVENTS = frozenset({"TYPINGINDICATOR", "CONVERSATIONCLOSED"})

_NOT_LETTERS = re.compile(r"[^a-z]+")
# `abcUserId`: Apple Messages for Business, the contact's opaque `urn:mbid:` id. It comes
# before `msisdn` (RCS's sender): an Apple invitation response has both, and its `msisdn` is
# the number the invitation went to, not the address a reply on Apple goes to.
_INBOUND_SENDERS = ("oa", "waid", "abcuserid", "msisdn", "psid")


def normalize(request: WebhookRequest) -> list[MessageEvent]:
    """One event per receipt or inbound message; interactions, typing indicators and URL
    checks give none."""
    if request.method.upper() in ("GET", "HEAD") and not request.body.strip():
        return []  # Webex checks a URL with an empty HEAD/GET before saving it
    raw = parse_json_object(request.body)
    payload = _lower_keys(raw)
    if "deliveryinfonotification" in payload:
        return _receipts(request, payload["deliveryinfonotification"])
    if any(key in payload for key in _INBOUND_SENDERS) or _is_mo_event(payload):
        if _event_name(payload) in _IGNORED_EVENTS:
            return []
        return [_inbound(request, payload)]
    raise NormalizeError(
        "not a Webex Connect webhook: expected a receipt with 'deliveryInfoNotification' or an "
        "inbound message with 'oa'/'da'/'message' (SMS), 'waid' (WhatsApp), 'msisdn' (RCS), "
        "'abcUserId' (Apple Messages for Business) or "
        f"'psid' (Facebook); got keys {key_list(raw)}"
    )


def acknowledge(request: WebhookRequest) -> Ack:
    """HTTP 200: Webex documents 200 as the expected answer, for HEAD checks too."""
    return _ACK


# --- receipts --------------------------------------------------------------------------------


def _receipts(request: WebhookRequest, notifications: Any) -> list[MessageEvent]:
    if notifications in (None, "", []):
        raise NormalizeError("'deliveryInfoNotification' is empty")
    events: list[MessageEvent] = []
    for notification in iter_objects(notifications, "deliveryInfoNotification"):
        envelope = _lower_keys(notification)
        infos = envelope.get("deliveryinfo")
        if infos in (None, ""):
            raise NormalizeError("'deliveryInfoNotification' has no 'deliveryInfo' object")
        if infos == []:
            # No Webex source sends a list, let alone an empty one (GSMA OneAPI's send response
            # has `deliveryInfo: []` for "no report yet"): no status, so no event, and a 200
            # would hide that a receipt never came. Refused, the body is kept as a dead letter.
            raise NormalizeError(
                "'deliveryInfo' is an empty list: no receipt in it (Webex sends one "
                "'deliveryInfo' object per receipt)"
            )
        for info in iter_objects(infos, "deliveryInfo"):
            event = _receipt(request, envelope, _lower_keys(info))
            if event is not None:
                events.append(event)
    return events


def _receipt(request: WebhookRequest, envelope: JsonObject, info: JsonObject
             ) -> MessageEvent | None:
    """One deliveryInfo. The status comes from deliveryStatus: `code` is unreliable alone."""
    raw_status = text_field(info, "deliverystatus")
    if raw_status is None:
        raise NormalizeError(
            "'deliveryInfo' has no 'deliveryStatus' (expected Submitted, Delivered, "
            "Un-Delivered, Failed, Read, ...)"
        )
    key = _NOT_LETTERS.sub("", raw_status.lower())
    status = STATUSES.get(key, Status.UNKNOWN)
    if status is None:
        return None
    code = text_field(info, "code")
    description = text_field(info, "description")
    if status is Status.UNDELIVERED and code == EXPIRED_CODE:
        status = Status.EXPIRED
    channel = channel_from_label(text_field(info, "deliverychannel"))
    return status_event(
        request,
        channel=channel,
        status=status,
        # Kept verbatim, `_n_m` suffix included: it tells apart the receipts of one request.
        message_id=text_field(envelope, "transid"),
        correlation_id=text_field(envelope, "correlationid", "callbackdata"),
        recipient=text_field(info, "destination"),
        error=error_info(code, description, channel) if status in FAILURES else None,
        provider_status=ProviderStatus.build(code=code, name=raw_status, description=description),
        segments=int_field(info, "messagecount"),
        occurred_at=parse_time(first(info, "timestamp")),
    )


# --- inbound ---------------------------------------------------------------------------------


def _event_name(payload: JsonObject) -> str | None:
    event = payload.get("event")
    return event.strip().upper() if isinstance(event, str) else None


def _is_mo_event(payload: JsonObject) -> bool:
    return _event_name(payload) == "MO"


def _inbound(request: WebhookRequest, payload: JsonObject) -> MessageEvent:
    """An MO message; `oa` is the end user and `da` our number (legacy template, samples)."""
    sender = text_field(payload, *_INBOUND_SENDERS, "userid", "userld")
    if sender is None:
        raise NormalizeError(
            "inbound message has no sender ('oa', 'waid', 'msisdn', 'psid', 'abcUserId' or "
            "'userId')")
    choices = _apple_choices(payload)
    # WhatsApp button taps give `buttonPayload`; RCS suggested replies give `postback`; Apple
    # picks, the identifier of what was picked.
    postback = text_field(payload, "buttonpayload", "postback") or next(
        (identifier for identifier, _ in choices if identifier is not None), None)
    text = text_field(payload, "message", "buttontext")
    titles = [title for _, title in choices if title is not None]
    if titles and (text is None or not text.strip()):  # Apple sends " " or "" with a pick
        text = "\n".join(titles)
    channel = _inbound_channel(payload)
    media = _attachments(payload.get("attachments")) + _location(payload)
    if channel == "mms" and (parts := _mms_parts(text)) is not None:
        text, media = None, parts + media
    return inbound_event(
        request,
        channel=channel,
        message_id=text_field(payload, "tid"),
        sender=sender,
        recipient=text_field(payload, "da", "abcaccountid"),
        text=text,
        media=media,
        postback=postback,
        segments=int_field(payload, "messagecount"),
        # `ts`/`timeStamp` carry a zone; `datetime` is zoneless in the legacy template.
        occurred_at=parse_time(first(payload, "ts", "timestamp", "datetime")),
    )


def _apple_choices(payload: JsonObject) -> list[tuple[str | None, str | None]]:
    """What the contact picked in an Apple Messages for Business interactive message, as
    (identifier, title) pairs: the identifier is the postback, the title the text they saw, as
    for Infobip's Apple replies. A list picker's `listPicker.selectedItems[]` (`{identifier,
    title}`); a time picker's `datePicker.timeslots[]`, the slot picked (`{identifier,
    startTime}`: a slot has no title, its start is what was picked); a quick reply's
    `quickreplies.selectedIdentifier`, titled by its item in `items[]`. Each is a JSON string,
    `""` when the message is no such reply; one that cannot be read gives no pick rather than
    cost the message its text (the raw record keeps it). A form's `formResponse` is not read:
    its answers' shape is not documented."""
    try:
        choices = [(text_field(item, "identifier"), text_field(item, "title"))
                   for item in _json_items(_json_object(payload, "listpicker"), "selecteditems")]
        choices += [(text_field(slot, "identifier"), text_field(slot, "starttime"))
                    for slot in _json_items(_json_object(payload, "datepicker"), "timeslots")]
        quick = _json_object(payload, "quickreplies")
        if (selected := text_field(quick, "selectedidentifier")) is not None:
            titles = [text_field(item, "title") for item in _json_items(quick, "items")
                      if text_field(item, "identifier") == selected]
            choices.append((selected, titles[0] if titles else None))
    except NormalizeError:
        return []
    return choices


def _json_object(payload: JsonObject, key: str) -> JsonObject:
    """A JSON-encoded object field (`"{...}"`), decoded with lower-cased keys; {} otherwise."""
    value = _json_text(payload.get(key), key)
    return _lower_keys(value) if isinstance(value, dict) else {}


def _json_items(parent: JsonObject, key: str) -> list[JsonObject]:
    """The objects of a list field of a decoded object, with lower-cased keys."""
    return [_lower_keys(item) for item in as_list(parent.get(key)) if isinstance(item, dict)]


def _inbound_channel(payload: JsonObject) -> str:
    label = text_field(payload, "channel", "message_source")
    if label is not None:
        return channel_from_label(label)
    if "waid" in payload:
        return "whatsapp"
    if "psid" in payload:
        return "messenger"
    if "abcuserid" in payload:
        return "apple"
    return "sms" if "oa" in payload else "unknown"


def _attachments(value: Any) -> list[Media]:
    """Attachment URLs: a URL string, a list of them, or objects with a `url` (WhatsApp) or a
    `payload.url` (RCS). Current Webex sends the list JSON-encoded in a string, `"[]"` when
    there is none (Data Streams samples); the legacy template sent a bare URL."""
    value = _json_text(value, "attachments")
    media: list[Media] = []
    for index, item in enumerate(as_list(value)):
        if isinstance(item, str) and item.startswith(("http://", "https://")):
            media.append(Media.build(url=item))
        elif isinstance(item, dict):
            fields = _lower_keys(item)
            url = text_field(fields, "url", "fileurl", "mediaurl", "link")
            if url is None and isinstance(fields.get("payload"), dict):
                url = text_field(_lower_keys(fields["payload"]), "url")
            if url is None:
                raise NormalizeError(f"attachments[{index}] has no 'url'")
            media.append(Media.build(
                url=url,
                content_type=text_field(fields, "contenttype", "mimetype", "mime_type"),
                caption=text_field(fields, "caption")))
        else:
            raise NormalizeError(
                f"attachments[{index}] is not a URL or an object with a 'url': {item!r:.60}"
            )
    return media


def _mms_parts(message: str | None) -> list[Media] | None:
    """An incoming MMS's parts: Webex puts them in `message`, a JSON-encoded list of `{"file":
    URL}` (the MMS outbound webhooks sample: a picture and the SMIL layout), each a media item,
    in order; None when `message` is not such a list (then it is the MMS's text)."""
    if message is None or message.lstrip()[:1] != "[":
        return None
    try:
        items = parse_json_text(message)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(items, list) or not items:
        return None
    urls = [_lower_keys(item).get("file") if isinstance(item, dict) else None for item in items]
    parts = [Media.build(url=url) for url in urls if isinstance(url, str) and url]
    # Anything else is not parts as Webex gives them: the text as it came.
    return parts if len(parts) == len(urls) else None


def _location(payload: JsonObject) -> list[Media]:
    """A shared location as one `geo:` media item. RCS puts `latitude` and `longitude` at the
    top level (`event: "Location"`); WhatsApp MOs have a `location` key, `""` when empty and
    assumed to hold the same two keys, as an object or JSON-encoded like `attachments`, and
    WhatsApp's `name` and `address` of the place, which caption the item."""
    try:
        place = _json_text(payload.get("location"), "location")
    except NormalizeError:
        place = None  # an unreadable location must not cost the message its text
    fields = _lower_keys(place) if isinstance(place, dict) else payload
    uri = geo_uri(fields)  # numbers or decimal strings: most Webex numbers come as strings
    if uri is None:
        return []
    # RCS sends no place name; top-level keys of the MO are not the place's.
    caption = place_caption(fields, "name", "address") if fields is not payload else None
    return [Media.build(url=uri, caption=caption)]


# --- small helpers ---------------------------------------------------------------------------


def _json_text(value: Any, name: str) -> Any:
    """A value Webex may send JSON-encoded in a string (`"[]"`, `"{...}"`), decoded; any other
    value as it is."""
    if isinstance(value, str) and value.lstrip()[:1] in ("[", "{"):
        try:
            return parse_json_text(value)
        except orjson.JSONDecodeError:
            raise NormalizeError(f"{name!r} is neither a URL nor JSON: {value!r:.60}") from None
    return value


def _lower_keys(data: JsonObject) -> JsonObject:
    return {key.lower(): value for key, value in data.items()}

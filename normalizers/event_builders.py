"""The two events a normalizer builds, `message.status` and `message.inbound`, with the
length limits every provider's ids and labels share.

Built here, not in each provider module, so every provider's events get the same ids (a
retried webhook keeps them) and the same refusal of oversized ids and labels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from normalizers.base import JsonObject, NormalizeError, WebhookRequest, shown
from switchboard.addresses import address
from switchboard.events import (
    Direction,
    ErrorInfo,
    EventType,
    Media,
    MessageEvent,
    Price,
    ProviderStatus,
    Status,
    event_id,
)

# Ids and labels (message ids, addresses, channel and status names, codes) longer than this are
# no real values. They are refused, also so that one copied from a batch's envelope into each of
# its events (Webex transid, Omnichat integrationType, Ubiqio event) cannot multiply a body.
# Message text, descriptions, postbacks and media URLs are content and are not limited here.
MAX_ID_LENGTH = 1000
# Correlation ids are senders' own data: Infobip's callbackData takes up to 4000 characters.
MAX_CORRELATION_ID_LENGTH = 4000
# Apple Messages for Business marks where each attachment sits in a message's text with U+FFFC
# OBJECT REPLACEMENT CHARACTER ("Adding Attachment Metadata to a Message", Apple's Business
# Chat API): a layout mark, not something the contact wrote, and the files are the media.
_ATTACHMENT_PLACEHOLDER = "\ufffc"
# An MMS carries a SMIL part, the layout that places its other parts on the handset's screen
# (OMA MMS conformance: the presentation part). It is not something the contact sent, and as
# a media item consumers took it for a file (Webex's sample MMS: a picture and its .smil).
_SMIL_TYPES = frozenset({"application/smil", "application/smil+xml"})


def _is_mms_layout(item: Media) -> bool:
    """An MMS's SMIL part: by its content type, or, when none is given, by its URL's path."""
    if item.content_type is not None:
        return item.content_type.split(";", 1)[0].strip().lower() in _SMIL_TYPES
    path = item.url.split("?", 1)[0].split("#", 1)[0]
    return path.lower().endswith(".smil")


def check_length(what: str, value: str | None, limit: int = MAX_ID_LENGTH) -> None:
    """Refuse an id or label longer than `limit` (a NormalizeError naming `what`)."""
    if value is not None and len(value) > limit:
        raise NormalizeError(f"{what} is longer than {limit} characters: {shown(value, 40)}")


def _check_ids(channel: str, message_id: str | None, correlation_id: str | None,
               sender: str | None, recipient: str | None) -> None:
    check_length("channel", channel)
    check_length("message id", message_id)
    check_length("correlation id", correlation_id, MAX_CORRELATION_ID_LENGTH)
    check_length("sender", sender)
    check_length("recipient", recipient)


def _check_names_message(message_id: str | None, correlation_id: str | None) -> None:
    """A status names its message by the provider's id or by the sender's own reference; with
    neither, no consumer can tell which message it is about (docs/events.md, "Missing senders
    and ids"), so it is refused, whichever provider sent it."""
    if not message_id and not correlation_id:
        raise NormalizeError(
            "status report names no message: it has neither a message id nor a correlation id "
            "(the sender's reference), so it cannot be matched to a message sent")


def _sender_of(sender: str | None, channel: str) -> str:
    """An inbound message's sender, as the event's `from`. Without one it could be neither
    answered nor opted out, and its Kafka key (provider, account, contact) would put it in one
    conversation with every other sender-less message of the account: refused, whichever
    provider sent it (docs/events.md, "Missing senders and ids")."""
    from_ = address(sender, channel)
    if from_ is None:
        raise NormalizeError("inbound message has no sender: it could be neither answered nor "
                             "kept in its conversation")
    return from_


def _status_fallback(message_id: str | None, correlation_id: str | None,
                     recipient: str | None, per_recipient: bool) -> str:
    """What a status event's id adds to the message id (see docs/events.md)."""
    if not message_id:
        return f"{correlation_id or ''}|{recipient or ''}"
    return (recipient or "") if per_recipient else ""


def status_event(
    request: WebhookRequest,
    *,
    channel: str,
    status: Status,
    message_id: str | None,
    correlation_id: str | None = None,
    sender: str | None = None,
    recipient: str | None = None,
    error: ErrorInfo | None = None,
    provider_status: ProviderStatus | None = None,
    segments: int | None = None,
    price: Price | None = None,
    occurred_at: datetime | None = None,
    per_recipient: bool = False,
) -> MessageEvent:
    """A `message.status` event about a message we sent (direction outbound).

    `per_recipient`: the provider's message id names a message sent to several recipients,
    each reported on its own (legacy MessageBird), so the recipient is part of the event id.

    Ids and labels longer than MAX_ID_LENGTH (correlation ids: MAX_CORRELATION_ID_LENGTH) are
    a NormalizeError, as is a status with neither a message id nor a correlation id.
    """
    _check_ids(channel, message_id, correlation_id, sender, recipient)
    _check_names_message(message_id, correlation_id)
    if provider_status is not None:
        check_length("provider status code", provider_status.code)
        check_length("provider status name", provider_status.name)
        check_length("provider status group", provider_status.group)
    if error is not None:
        check_length("error code", error.code)
    status_key = provider_status.name or provider_status.code if provider_status else None
    return MessageEvent.build(
        id=event_id(
            provider=request.provider,
            account=request.account,
            type=EventType.STATUS,
            message_id=message_id,
            status=status_key or status.value,
            occurred_at=occurred_at,
            fallback=_status_fallback(message_id, correlation_id, recipient, per_recipient),
        ),
        type=EventType.STATUS,
        provider=request.provider,
        account=request.account,
        channel=channel,
        direction=Direction.OUTBOUND,
        message_id=message_id,
        correlation_id=correlation_id,
        from_=address(sender, channel),
        to=address(recipient, channel),
        status=status,
        error=error,
        provider_status=provider_status,
        segments=segments,
        price=price,
        occurred_at=occurred_at,
        received_at=request.received_at,
        raw_id=request.raw_id,
    )


def inbound_event(
    request: WebhookRequest,
    *,
    channel: str,
    message_id: str | None,
    sender: str | None,
    recipient: str | None,
    text: str | None = None,
    media: list[Media] | None = None,
    postback: str | None = None,
    in_reply_to: str | None = None,
    correlation_id: str | None = None,
    segments: int | None = None,
    price: Price | None = None,
    occurred_at: datetime | None = None,
) -> MessageEvent:
    """A `message.inbound` event: a message from an end user. On channel `apple` the text
    loses Apple's attachment marks (_ATTACHMENT_PLACEHOLDER); a text of marks alone is None.
    On channel `mms` the media lose the SMIL layout part (_is_mms_layout).

    Ids and labels longer than MAX_ID_LENGTH (correlation ids: MAX_CORRELATION_ID_LENGTH) are
    a NormalizeError, as is a message without a sender; the text, postback and media are not
    limited.
    """
    _check_ids(channel, message_id, correlation_id, sender, recipient)
    from_ = _sender_of(sender, channel)
    check_length("in-reply-to message id", in_reply_to)
    if channel == "apple" and text is not None and _ATTACHMENT_PLACEHOLDER in text:
        text = text.replace(_ATTACHMENT_PLACEHOLDER, "") or None
    if channel == "mms" and media:
        media = [item for item in media if not _is_mms_layout(item)]
    return MessageEvent.build(
        id=event_id(
            provider=request.provider,
            account=request.account,
            type=EventType.INBOUND,
            message_id=message_id,
            status=None,
            occurred_at=occurred_at,
            fallback="" if message_id else "|".join(
                part or "" for part in (sender, recipient, text, postback)),
        ),
        type=EventType.INBOUND,
        provider=request.provider,
        account=request.account,
        channel=channel,
        direction=Direction.INBOUND,
        message_id=message_id,
        correlation_id=correlation_id,
        from_=from_,
        to=address(recipient, channel),
        text=text,
        media=media or (),
        postback=postback,
        in_reply_to=in_reply_to,
        segments=segments,
        price=price,
        occurred_at=occurred_at,
        received_at=request.received_at,
        raw_id=request.raw_id,
    )


def add_file(media: list[Media], texts: list[str], url: str | None, *,
             content_type: str | None = None, caption: str | None = None) -> None:
    """A file a contact sent: a media item, or, without a URL (the provider could not fetch
    it, or gave none), no item, since schema v1 media needs a URL. Then its caption, the words
    the contact typed with the file, goes to `texts`, to be the event's text, rather than being
    lost with the item (docs/events.md, `text`). Every provider reads files with it, so a
    file without a URL means the same whoever sent it."""
    if url is not None:
        media.append(Media.build(url=url, content_type=content_type, caption=caption))
    elif caption is not None:
        texts.append(caption)


def each_event(request: WebhookRequest, reports: Iterable[JsonObject],
               normalize_report: Callable[[WebhookRequest, JsonObject], MessageEvent | None],
               where: str = "results[{}]") -> list[MessageEvent]:
    """The events of a batch of reports, in order; reports that give none are skipped.

    An error names the report it came from (`where` formatted with its index), so a batch
    of a hundred reports says which one was wrong.
    """
    events: list[MessageEvent] = []
    for index, report in enumerate(reports):
        try:
            event = normalize_report(request, report)
        except NormalizeError as exc:
            raise NormalizeError(f"{where.format(index)}: {exc.reason}") from None
        if event is not None:
            events.append(event)
    return events

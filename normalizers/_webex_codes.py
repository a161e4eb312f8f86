"""What Webex Connect's words and codes mean: the `deliveryStatus` of a receipt as a status,
the receipt codes of a failure that sending again cannot fix, and Webex's own channel labels.

A private part of the webex provider module, which reads the receipts and inbound messages;
these tables come from Webex's pages (docs/providers/webex.md), kept apart from the reading.
"""

from __future__ import annotations

from normalizers.channels import channel
from switchboard.events import ErrorInfo, Status

# deliveryStatus, lower-cased with everything but letters removed ("Un-Delivered" ->
# "undelivered"). None marks interactions that happen after delivery: not a message status.
STATUSES: dict[str, Status | None] = {
    "queued": Status.ACCEPTED,
    "submitted": Status.SENT,
    "submited": Status.SENT,  # sic: Webex's own Messenger receipt sample spells it so
    "submit": Status.SENT,  # legacy IMIconnect in-app (RTM) and push receipts
    "sent": Status.SENT,  # v2 `requestedReceipts` alias of SUBMITTED
    "delivered": Status.DELIVERED,
    "undelivered": Status.UNDELIVERED,
    "bounce": Status.UNDELIVERED,  # email: the receiving server refused it
    "bounced": Status.UNDELIVERED,
    "failed": Status.FAILED,
    "rejected": Status.REJECTED,
    "expired": Status.EXPIRED,
    "read": Status.SEEN,
    "seen": Status.SEEN,
    "clicked": None,
    "complaint": None,
    "complained": None,
    "uninterested": None,
}
FAILURES = frozenset({Status.FAILED, Status.UNDELIVERED, Status.REJECTED, Status.EXPIRED})
# 7208 "Message expired" arrives as Un-Delivered; the schema's `expired` (validity ran out) is
# what Infobip and Bird report for the same thing.
EXPIRED_CODE = "7208"

# Receipt codes where sending the same message again cannot succeed (channel-specific status
# codes page, SMS section); every other failure code is treated as possibly temporary.
_PERMANENT_CODES = frozenset({
    "7003",  # mandatory parameters missing
    "7004",  # invalid parameters/values
    "7101",  # invalid sender id
    "7102",  # invalid address
    "7107",  # message length exceeded
    "7109",  # user in DnD
    "7111",  # spam content detected
    "7203",  # unknown subscriber address
    "7205",  # error in binary message
    "7283",  # invalid operator or landline
    "7720",  # recipient blocked
})
# The same for WhatsApp receipts (WhatsApp outbound webhooks page, Failed sample); codes are
# channel-specific, so these count on the WhatsApp channel only. 7710, the other Failed sample,
# is not listed: its meaning is not documented where we could read it.
_WHATSAPP_PERMANENT_CODES = frozenset({
    "7737",  # invalid WhatsApp destination (not a WhatsApp user, or not a valid number)
})

# Webex channel labels that normalizers.channels.channel does not know.
_CHANNELS = {
    "rt": "in-app",
    "rtm": "in-app",
    "appmessaging": "in-app",
    "applebusinesschat": "apple",
    "amb": "apple",
    "wa": "whatsapp",
    "fb": "messenger",
}


def error_info(code: str | None, description: str | None, channel: str) -> ErrorInfo:
    permanent = (code in _PERMANENT_CODES
                 or (channel == "whatsapp" and code in _WHATSAPP_PERMANENT_CODES)
                 or (description or "").lower().startswith("permanent"))
    return ErrorInfo.build(code=code, description=description, permanent=permanent)


def channel_from_label(label: str | None) -> str:
    if label is None:
        return "unknown"
    key = label.strip().lower()
    return _CHANNELS.get(key) or channel(key)

"""The schema's channel names for the labels providers give their channels.

One table for every provider, so `WHATSAPP`, `whatsapp` and `WhatsApp` from different
providers become the same channel in events.
"""

from __future__ import annotations

import re

from normalizers.event_builders import check_length

_CHANNELS = {
    "sms": "sms",
    "mms": "mms",
    "whatsapp": "whatsapp",
    "viber": "viber",
    "viber_bm": "viber",
    "viber_bot": "viber",
    "rcs": "rcs",
    "messenger": "messenger",
    "facebook": "messenger",
    "instagram": "instagram",
    "instagram_dm": "instagram",
    "line": "line",
    "line_on": "line",
    "line_oa": "line",  # Infobip's LINE Official Account
    "telegram": "telegram",
    "email": "email",
    "apple_mb": "apple",
    "apple_bc": "apple",  # Infobip's Apple Messages for Business inbound `integrationType`
    "apple": "apple",
    "kakao": "kakao",
    # Infobip's product names (its Java SDK's channel enums): a product's channel is its own.
    "kakao_alim": "kakao",
    "kakao_chingu": "kakao",
    "kakao_sangdam": "kakao",
    "zalo": "zalo",
    "zalo_notification_service": "zalo",  # Infobip's Zalo delivery reports
    "zalo_zns": "zalo",
    "zalo_follower": "zalo",
    "tiktok": "tiktok",
    "tiktok_bm": "tiktok",  # what Infobip's TikTok inbound sample calls TIKTOK
    "voice": "voice",
    "branded text": "rcs",
}


# The labels as providers usually spell them (`WHATSAPP`, `sms`), answered without strip/lower.
_CHANNELS_AS_SENT = {
    spelling: name
    for label, name in _CHANNELS.items()
    for spelling in (label, label.upper(), label.title())
}
_not_channel_chars = re.compile(r"[^a-z0-9_.-]+").sub


def channel(value: str | None) -> str:
    """The schema's lower-case channel name for a provider's channel label; a label longer
    than MAX_ID_LENGTH is a NormalizeError."""
    if not value:
        return "unknown"
    if value.__class__ is str:
        known = _CHANNELS_AS_SENT.get(value)
        if known is not None:
            return known
    check_length("channel label", value)
    key = value.strip().lower()
    if key in _CHANNELS:
        return _CHANNELS[key]
    cleaned = _not_channel_chars("-", key).strip("-_.")
    return cleaned or "unknown"

"""One spelling per end-user address, so that the same contact is the same key everywhere:
inbound events, conversation keys, the opt-out list and outbound commands.

Only a phone channel's addresses are phone numbers. Elsewhere a number is a platform's user id
(a Telegram chat id such as `123456789`), and a `+` added to it names a contact the provider
does not know.
"""

from __future__ import annotations

import re

_phone_match = re.compile(r"^\+?[0-9][0-9 ()./-]{6,20}$").match
_non_digits = re.compile(r"[^0-9]").sub


# The schema's channels (normalizers.channels) whose end user is addressed by phone number,
# and the provider labels for them that a command's `channel` may carry. Kakao (AlimTalk) and
# Zalo (ZNS) notifications are sent to phone numbers too; Viber Business Messages address a
# phone number, a Viber bot's user ids are not numbers. "unknown": the provider did not say.
_PHONE_CHANNELS = frozenset({
    "sms", "mms", "whatsapp", "rcs", "branded text", "viber", "viber_bm", "voice", "kakao",
    "zalo", "unknown",
})


def is_phone_channel(channel: str | None) -> bool:
    """Whether a channel's end users are phone numbers (a schema name or provider label). An
    unknown channel (None) is read as one, as before: Switchboard cannot tell, and the reports
    that leave the channel out are mostly SMS."""
    return (channel is None or channel in _PHONE_CHANNELS
            or channel.strip().lower() in _PHONE_CHANNELS)


def is_national_number(value: str, channel: str | None) -> bool:
    """Whether `value` is a phone number on a phone channel that `address` cannot make E.164:
    its trunk 0 where the country code belongs (also with a `+` typed before it: no country
    code begins with 0). Only its country could tell whose it is."""
    if _phone_match(value) is None or not is_phone_channel(channel):
        return False
    digits = _non_digits("", value)
    return digits.startswith("0") and (value[0] == "+" or not digits.startswith("00"))


def address(value: str | None, channel: str | None) -> str | None:
    """E.164 (`+` and digits) for phone numbers on a phone channel; other identifiers, and
    any address on another channel (platform user ids), unchanged.

    `00` is the international prefix and becomes `+`. A number in national format (one
    leading 0) or shorter than 8 digits (short and service codes) cannot be made E.164
    without knowing the country, so it stays as given; so do alphanumeric sender ids, user
    keys and platform ids.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if _phone_match(value) is None or not is_phone_channel(channel):
        return value
    digits = _non_digits("", value)
    if value[0] != "+":
        if digits.startswith("00"):
            digits = digits[2:]
        elif digits.startswith("0"):
            return value
    if len(digits) < 8 or len(digits) > 15 or digits.startswith("0"):
        return value
    return "+" + digits

"""One spelling per end-user address, so that the same contact is the same key everywhere:
inbound events, conversation keys, the opt-out list and outbound commands."""

from __future__ import annotations

import re

_phone_match = re.compile(r"^\+?[0-9][0-9 ()./-]{6,20}$").match
_non_digits = re.compile(r"[^0-9]").sub


def address(value: str | None) -> str | None:
    """E.164 (`+` and digits) for phone numbers; other identifiers unchanged.

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
    if _phone_match(value) is None:
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

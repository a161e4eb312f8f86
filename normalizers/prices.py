"""The price a report states, bounded so that an amount from a webhook stays small."""

from __future__ import annotations

from typing import Any

from normalizers.base import NormalizeError, shown
from switchboard.events import Price

# A price's amount is written out in full (`Price` serializes it with format "f"): its digits and
# exponent are bounded so that "1e999999999" cannot become a gigabyte of zeros in a record.
# Real per-message prices have a handful of digits and a few decimal places.
MAX_PRICE_DIGITS = 40
MAX_PRICE_EXPONENT = 30


def price(amount: Any, currency: Any) -> Price | None:
    """The price of a report, or None when it gives no amount or no currency.

    An amount that is not a decimal, or one with more than MAX_PRICE_DIGITS digits or an
    exponent beyond +-MAX_PRICE_EXPONENT, is an error, as a price is only ever read from a
    report that claims to state one.
    """
    if amount in (None, "") or not currency:
        return None
    try:
        result = Price(amount=str(amount), currency=str(currency).upper())
    except ValueError:
        raise NormalizeError(
            f"price {shown(amount)} {shown(currency)} is not a decimal amount") from None
    _, digits, exponent = result.amount.as_tuple()
    if len(digits) > MAX_PRICE_DIGITS or not (
            isinstance(exponent, int) and abs(exponent) <= MAX_PRICE_EXPONENT):
        raise NormalizeError(
            f"price {shown(amount)} is out of range: at most {MAX_PRICE_DIGITS} digits and an "
            f"exponent within +-{MAX_PRICE_EXPONENT}")
    return result

"""What a process logs of an unexpected failure: its type and where it was raised, not its text.
A bot's exception may quote the message it handled (a phone number, what was said), a send
client's the request it made, a normalizer's (pydantic's `input_value=`) the webhook it read; the
log is kept, shipped and read more widely than the dead-letter topic, which holds the whole
record anyway."""

from __future__ import annotations

import traceback


def _one(exc: BaseException) -> str:
    frames = "".join(traceback.format_tb(exc.__traceback__))
    return (f"Traceback (most recent call last):\n{frames}"
            f"{type(exc).__module__}.{type(exc).__qualname__} (its text left out)")


_CAUSE = "\nThe above exception was the direct cause of the following exception:\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n"


def traceback_without_text(exc: BaseException) -> str:
    """A traceback of `exc` and the exceptions it was raised from or while handling, as Python
    prints it, with each exception's type in place of its text."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:  # from the last raised back
        seen.add(id(current))
        parts.append(_one(current))
        if current.__cause__ is not None:
            current = current.__cause__
            parts.append(_CAUSE)
        elif current.__context__ is not None and not current.__suppress_context__:
            current = current.__context__
            parts.append(_CONTEXT)
        else:
            current = None
    if len(parts) % 2 == 0:  # a cycle cut short: no joint without an exception before it
        parts.pop()
    return "\n".join(reversed(parts))

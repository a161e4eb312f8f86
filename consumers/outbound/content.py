"""Building a send request from a command's content: what a provider cannot carry is refused
(permanent, nothing sent), buttons become numbered choices, media are told apart by type."""

from __future__ import annotations

import mimetypes
from collections.abc import Sequence
from typing import NoReturn
from urllib.parse import urlsplit

from consumers.outbound.base import SendError
from switchboard.commands import Button
from switchboard.events import Media


def refuse(reason: str) -> NoReturn:
    """A command the provider cannot carry: permanent, so it is never retried."""
    raise SendError(reason, retryable=False, code="unsupported_content", called=False)


# The channel events name when their webhook did not say it (normalizers.channels). A reply
# copies its inbound event's channel, so a reply to such an event names it too.
UNKNOWN_CHANNEL = "unknown"


def is_unknown_channel(channel: str) -> bool:
    return channel.strip().lower() == UNKNOWN_CHANNEL


def refuse_unknown_channel(provider: str, fix: str) -> NoReturn:
    """A command on the `unknown` channel, refused as any channel a client cannot send on
    (permanent, nothing sent), saying why it is unknown: the provider's own refusal would not
    (Infobip: a 400 on its channel enum), and the fix is where the inbound came in."""
    refuse(f"the command's channel is unknown: it answers an inbound event whose webhook did "
           f"not say its channel, so {provider} cannot tell which channel to send on; {fix}")


def refuse_media(why: str, otherwise: str) -> NoReturn:
    """Media on a channel that cannot carry it, refused with what the user can do instead: the
    link in the text reaches the contact on any channel, and `otherwise` names this provider's
    way to send the media itself."""
    refuse(f"{why}; send the media's link in the command's text instead, or {otherwise}")


def with_choices(text: str | None, buttons: Sequence[Button]) -> str:
    """Buttons on a channel without buttons: "1) Yes 2) No" after the text.

    The user answers with plain text, so every provider renders the choices the same way.
    """
    choices = " ".join(f"{number}) {button.title}" for number, button in enumerate(buttons, 1))
    return f"{text}\n{choices}" if text else choices


def guess_content_type(media: Media) -> str | None:
    """The media's content type as given, else a guess from the URL's extension, else None."""
    return media.content_type or mimetypes.guess_type(urlsplit(media.url).path)[0]


def media_kind(media: Media) -> str:
    """"image", "video", "audio" or "file", from the content type or else the URL's extension."""
    content_type = guess_content_type(media) or ""
    major = content_type.split("/", 1)[0].strip().lower()
    return major if major in ("image", "video", "audio") else "file"

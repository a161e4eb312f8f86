"""`send ACCOUNT TO --media URL` on an SMS account, end to end (Kafka, the sender, the
simulator): each provider's client sends the media only where its documents say the channel
carries it, and otherwise fails the command before calling, saying what to do instead."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from switchboard.events import Media
from switchboard.records import command_record
from switchboard.topics import OUTBOUND_RESULTS
from tests.integration.stack import Stack, command_for, results_for, running_stack
from tests.kafka_helpers import collect_until, publish

IMAGE = Media(url="https://cdn.test/offer.png")


@pytest.fixture(scope="module")
async def stack(kafka_bootstrap: str) -> AsyncIterator[Stack]:
    async with running_stack(kafka_bootstrap) as running:
        yield running


async def _send_media(stack: Stack, provider: str,
                      text: str | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The result of an image (with `text`, or alone) sent on `provider`'s SMS account, and
    the sends the simulator recorded for it."""
    command = command_for(provider).model_copy(update={"text": text, "media": [IMAGE]})
    async with stack.watching((OUTBOUND_RESULTS.name,)) as watcher:
        before = await watcher.snapshot()
        await publish(stack.kafka(), [command_record(command, provider)])
        found = await collect_until(watcher, before, lambda f: bool(results_for(f, command.id)))
    [result] = results_for(found, command.id)
    sends = [s for s in await stack.sends(command.account) if s["correlation_id"] == command.id]
    return result, sends


@pytest.mark.parametrize("provider", ["bird", "webex"])
@pytest.mark.parametrize("text", [None, "Our offer"])
async def test_media_on_an_sms_channel_without_media_is_refused_before_calling(
        provider: str, text: str | None, stack: Stack) -> None:
    # Bird: media only on SMS channels with an MMS-capable number (seed 001), which this
    # account does not claim (`mms`); Webex: SMS text only (seed 002).
    result, sends = await _send_media(stack, provider, text)
    assert result["status"] == "failed" and result["attempts"] == 0 and sends == []
    assert result["error"]["code"] == "unsupported_content"
    assert result["error"]["permanent"] is True
    assert "send the media's link in the command's text instead" in (
        result["error"]["description"])


async def test_infobip_sends_media_on_sms_for_its_adaptation_mode(stack: Stack) -> None:
    # Seed 003: adaptationMode, on by default, maps what SMS cannot show as best it can.
    result, [send] = await _send_media(stack, "infobip", None)
    assert result["status"] == "accepted"
    [message] = send["body"]["messages"]
    assert message["channel"] == "SMS"
    assert message["content"]["body"] == {"type": "IMAGE", "url": IMAGE.url}


async def test_ubiqio_sends_an_image_as_mms(stack: Stack) -> None:
    # Seed 000: `channel` "SMS or MMS", `imageUrl` (MMS only).
    result, [send] = await _send_media(stack, "ubiqio", "Our offer")
    assert result["status"] == "accepted"
    assert (send["body"]["channel"], send["body"]["imageUrl"]) == ("MMS", IMAGE.url)

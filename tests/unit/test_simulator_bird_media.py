"""The Bird simulator carries media on an SMS channel only with an MMS-capable number (seed
001: "SMS channels that are installed with MMS capable numbers ... also support media
messaging"), as the Bird client sends it; WhatsApp channels carry media."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.unit.test_simulator import CH, WS, bird_send, recorded, sim, sim_app

__all__ = ["sim", "sim_app"]  # the fixtures, used by name

MEDIA_BODIES = [
    {"type": "image", "image": {"images": [{"mediaUrl": "https://media.test/a.png"}],
                                "text": "Hello"}},
    {"type": "file", "file": {"files": [{"mediaUrl": "https://media.test/a.pdf",
                                         "contentType": "application/pdf"}]}},
]


@pytest.mark.parametrize("media_body", MEDIA_BODIES, ids=["image", "file"])
async def test_bird_sms_channel_without_an_mms_number_refuses_media(
        sim: httpx.AsyncClient, media_body: dict[str, Any]) -> None:
    # Seed 001: only "SMS channels that are installed with MMS capable numbers" carry media.
    body = bird_send()
    body["body"] = media_body
    response = await sim.post(f"/bird/workspaces/{WS}/channels/{CH}/messages", json=body,
                              headers={"authorization": "AccessKey bird-access-key"})
    assert response.status_code == 422, response.text
    assert "MMS-capable" in response.json()["details"]["body"][0]
    assert await recorded(sim) == []


@pytest.mark.parametrize("media_body", MEDIA_BODIES, ids=["image", "file"])
@pytest.mark.parametrize(("channel_id", "key"), [("ch-mms", "birdmms-access-key"),
                                                 ("ch-wa", "birdwa-access-key")])
async def test_bird_mms_and_whatsapp_channels_take_media(
        sim: httpx.AsyncClient, media_body: dict[str, Any], channel_id: str, key: str) -> None:
    body = bird_send()
    body["body"] = media_body
    response = await sim.post(f"/bird/workspaces/{WS}/channels/{channel_id}/messages",
                              json=body, headers={"authorization": f"AccessKey {key}"})
    assert response.status_code == 202, response.text
    assert len(await recorded(sim)) == 1

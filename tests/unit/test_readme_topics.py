"""README's *Topics* section against switchboard/topics.py and ingest: how long each topic keeps
its records (what an operator plans a replay or an outage around), and what a raw record holds
(where an event's `raw_id` leads)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import orjson

from ingest.app import create_app
from switchboard.accounts import load_accounts
from switchboard.settings import Settings
from switchboard.topics import ALL_TOPICS, DAY_MS, RAW
from tests.fakes import KeepingProducer

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"


def _retention_days_said() -> dict[str, int]:
    """Each topic's retention as the README's sentence gives it, by full topic name."""
    section = README.read_text().split("\n## Topics\n", 1)[1].split("\n## ", 1)[0]
    sentence = re.search(r"Records are kept \(`retention\.ms`.*?\)(.*?);", section, re.S)
    assert sentence is not None
    days: dict[str, int] = {}
    # "14 days on `raw`, 30 on `dead-letter`, 7 on the event, `outbound` and ... topics"
    for count, names in re.findall(r"(\d+)(?: days)? on ([^,]*(?:, `[^`]+`)*(?: and `[^`]+`)?)",
                                   sentence.group(1).replace("\n", " ")):
        for name in re.findall(r"`([a-z-]+)`", names):
            days[f"switchboard.{name}.v1"] = int(count)
        if "the event" in names:
            days["switchboard.message.inbound.v1"] = days["switchboard.message.status.v1"] = \
                int(count)
    return days


def test_the_readme_says_how_long_each_topic_keeps_its_records() -> None:
    expected = {spec.name: int(spec.config["retention.ms"]) // DAY_MS for spec in ALL_TOPICS
                if "retention.ms" in spec.config}
    assert _retention_days_said() == expected


def test_the_topic_the_readme_says_keeps_its_records_for_good_has_no_time_limit() -> None:
    section = README.read_text().split("\n## Topics\n", 1)[1]
    assert "`opt-outs` keeps each contact's latest state for good" in section
    opt_outs = next(spec for spec in ALL_TOPICS if spec.name == "switchboard.opt-outs.v1")
    assert opt_outs.config["cleanup.policy"] == "compact"
    assert "retention.ms" not in opt_outs.config


async def test_the_raw_record_has_the_fields_the_readme_lists() -> None:
    row = next(line for line in README.read_text().splitlines()
               if line.startswith("| `switchboard.raw.v1` |"))
    fields = re.sub(r"\([^)]*\)", "", row.split("replayable):", 1)[1])  # the asides out
    listed = re.findall(r"`([a-z_]+)`", fields)
    producer = KeepingProducer()
    accounts = load_accounts(REPO / "examples" / "accounts.toml")
    app = create_app(Settings(kafka_bootstrap_servers="127.0.0.1:1"), accounts)
    app.state.handler.producer = producer
    body = (REPO / "examples" / "webhooks" / "infobip-delivery.json").read_bytes()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://127.0.0.1:8080") as client:
        answer = await client.post("/webhooks/infobip/demo-infobip", content=body,
                                   auth=("infobip", "demo-infobip-password"),
                                   headers={"content-type": "application/json",
                                            "x-request-id": "r-1"})
    assert answer.status_code == 200
    raw = next(record for record in producer.published if record.topic == RAW.name)
    value = orjson.loads(raw.value)
    assert listed == list(value)
    assert "authorization" not in value["headers"]
    assert value["headers"]["x-request-id"] == "r-1"

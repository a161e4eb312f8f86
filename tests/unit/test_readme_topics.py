"""README's *Topics* section against switchboard/topics.py: how long each topic keeps its
records is what an operator plans a replay or an outage around."""

from __future__ import annotations

import re
from pathlib import Path

from switchboard.topics import ALL_TOPICS, DAY_MS

README = Path(__file__).resolve().parents[2] / "README.md"


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

"""The correlation index keeps at most max_entries results, dropping the one indexed longest
ago (a result indexed again is the newest), and looks them up by provider, account and the
provider's message id, each part its own."""

from __future__ import annotations

import orjson

from ingest.correlation import CorrelationIndex

PROVIDER = "infobip-omnichat"


def result(message_id: str, command_id: str, account: str = "acme") -> bytes:
    return orjson.dumps({"provider": PROVIDER, "account": account,
                         "provider_message_id": message_id, "command_id": command_id})


async def test_the_index_drops_the_result_indexed_longest_ago() -> None:
    index = CorrelationIndex("unused:9092", frozenset({PROVIDER}), max_entries=3, wait_s=0)
    for n in (1, 2, 3):
        index._index(result(f"m{n}", f"c{n}"))
    index._index(result("m1", "c1"))  # again: now the newest
    index._index(result("m4", "c4"))
    found = [await index.command_for(PROVIDER, "acme", f"m{n}") for n in (1, 2, 3, 4)]
    assert found == ["c1", None, "c3", "c4"]


async def test_each_part_of_the_key_counts() -> None:
    index = CorrelationIndex("unused:9092", frozenset({PROVIDER}), wait_s=0)
    index._index(result("m1", "c1", account="acme"))
    index._index(result("m1", "c2", account="other"))
    assert await index.command_for(PROVIDER, "acme", "m1") == "c1"
    assert await index.command_for(PROVIDER, "other", "m1") == "c2"
    assert await index.command_for(PROVIDER, "acmem1", "") is None
    assert await index.command_for("infobip", "acme", "m1") is None

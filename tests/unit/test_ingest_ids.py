"""Raw-request and dead-letter ids: valid version-4 UUIDs, as uuid.UUID would build them."""

from __future__ import annotations

import random
import uuid

from ingest.webhooks import new_id


def test_new_id_is_the_uuid4_of_the_same_random_bits() -> None:
    for seed in range(200):
        random.seed(seed)
        made = new_id()
        random.seed(seed)
        expected = uuid.UUID(int=random.getrandbits(128), version=4)
        assert made == str(expected)


def test_new_ids_parse_as_version_4_and_differ() -> None:
    ids = {new_id() for _ in range(1000)}
    assert len(ids) == 1000
    for text in list(ids)[:50]:
        parsed = uuid.UUID(text)
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == text

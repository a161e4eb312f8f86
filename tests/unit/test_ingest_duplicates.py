"""Exact repeats of a kept request: a stored one is answered as before, a dead-lettered one
with the same 4xx, and neither is published again."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from ingest.dedup import RecentRequests, Refused
from switchboard.producer import PublishError
from switchboard.records import OutRecord
from switchboard.topics import DEAD_LETTER, RAW
from tests.fakes import KeepingProducer, infobip_ingest

PASSWORD = "password-123"
HEADERS = {"authorization": "Basic " + base64.b64encode(f"u:{PASSWORD}".encode()).decode(),
           "content-type": "application/json"}
UNREADABLE = b'{"results": "not a list"}'


class OnceUnavailableProducer(KeepingProducer):
    """Kafka does not acknowledge the first publish (ingest answers 503), then takes them all."""

    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    async def publish(self, records: list[OutRecord]) -> None:
        if not self.failed:
            self.failed = True
            raise PublishError("Kafka did not acknowledge within 5.0s")
        await super().publish(records)


async def _post(app: Any, body: bytes, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="https://hooks.example") as client:
        return await client.post("/webhooks/infobip/acme", content=body,
                                 headers={**HEADERS, **headers})


def _count(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, {"provider": "infobip", "account": "acme",
                                            **labels}) or 0.0


async def test_a_repeat_of_a_dead_lettered_request_gets_its_answer_without_a_second_letter(
) -> None:
    # Providers retry a 4xx (Bird for 8 to 24 hours): each exact retry of an unreadable
    # payload was kept again, one raw record and one dead letter per retry.
    producer = KeepingProducer()
    app = infobip_ingest(producer, PASSWORD)
    duplicates = _count("switchboard_ingest_duplicates_total")
    letters = _count("switchboard_ingest_dead_letters_total")
    repeats = _count("switchboard_ingest_requests_total", outcome="duplicate_dead_letter")
    first = await _post(app, UNREADABLE)
    second = await _post(app, UNREADABLE)
    assert first.status_code == second.status_code == 400
    assert second.headers["content-type"] == "application/json"
    assert second.json() == first.json()
    assert first.json()["error"] == "unprocessable_payload"
    assert [record.topic for record in producer.published] == [RAW.name, DEAD_LETTER.name]
    assert _count("switchboard_ingest_duplicates_total") == duplicates + 1
    assert _count("switchboard_ingest_dead_letters_total") == letters + 1
    assert _count("switchboard_ingest_requests_total",
                  outcome="duplicate_dead_letter") == repeats + 1


async def test_another_unreadable_body_is_its_own_dead_letter() -> None:
    producer = KeepingProducer()
    app = infobip_ingest(producer, PASSWORD)
    assert (await _post(app, UNREADABLE)).status_code == 400
    assert (await _post(app, UNREADABLE + b" ")).status_code == 400
    assert [record.topic for record in producer.published] == [RAW.name, DEAD_LETTER.name] * 2


async def test_a_dead_letter_kafka_did_not_acknowledge_is_kept_when_retried() -> None:
    # Nothing was kept for the 503: its retry must be kept, not answered as a repeat.
    producer = OnceUnavailableProducer()
    app = infobip_ingest(producer, PASSWORD)
    first = await _post(app, UNREADABLE)
    assert first.status_code == 503
    second = await _post(app, UNREADABLE)
    assert second.status_code == 400
    assert [record.topic for record in producer.published] == [RAW.name, DEAD_LETTER.name]
    third = await _post(app, UNREADABLE)
    assert third.json() == second.json()
    assert len(producer.published) == 2


DELIVERY = (b'{"results": [{"messageId": "m-encoded", "to": "41793026727", "status": '
            b'{"groupName": "DELIVERED", "name": "DELIVERED_TO_HANDSET"}}]}')


async def test_a_compressed_request_of_a_stored_ones_bytes_is_refused_as_any_other() -> None:
    # Its Content-Encoding was not part of what a repeat is: the same bytes "gzip" were
    # answered 200 as a duplicate of the plain request kept before, and 415 otherwise. The
    # answer must not depend on what this process happens to remember.
    producer = KeepingProducer()
    app = infobip_ingest(producer, PASSWORD)
    assert (await _post(app, DELIVERY)).status_code == 200
    published = len(producer.published)
    refused = await _post(app, DELIVERY, **{"content-encoding": "gzip"})
    assert refused.status_code == 415
    assert refused.json()["error"] == "unsupported_content_encoding"
    assert [record.topic for record in producer.published[published:]] == [
        RAW.name, DEAD_LETTER.name]
    # Its own repeat is answered the same, without a second letter.
    again = await _post(app, DELIVERY, **{"content-encoding": "gzip"})
    assert (again.status_code, again.json()) == (415, refused.json())
    assert len(producer.published) == published + 2


async def test_a_plain_request_of_a_refused_compressed_ones_bytes_is_stored() -> None:
    producer = KeepingProducer()
    app = infobip_ingest(producer, PASSWORD)
    assert (await _post(app, DELIVERY, **{"content-encoding": "br"})).status_code == 415
    assert (await _post(app, DELIVERY)).status_code == 200
    assert [record.topic for record in producer.published][2:] == [
        RAW.name, "switchboard.message.status.v1"]


def test_a_dead_letters_entry_expires_like_a_stored_ones() -> None:
    recent = RecentRequests(ttl_s=600.0)
    recent.remember(b"stored", now=0.0)
    recent.remember_refused(b"letter", (400, "unprocessable_payload", "why"), now=0.0)
    stored = recent.seen(b"stored", now=600.0)
    assert stored == 0.0 and not isinstance(stored, Refused)
    assert recent.seen(b"stored", now=600.1) is None
    assert recent.seen(b"letter", now=600.1) is None
    recent.remember(b"later", now=1300.0)  # expires the old end
    assert len(recent) == 1


def test_a_dead_letter_retried_within_the_window_stays_remembered_while_it_is_retried(
) -> None:
    # Bird retries a 4xx for 8 hours: a retry more than 10 minutes after the letter was kept
    # was kept again, however often the provider had retried meanwhile (one letter per window).
    recent = RecentRequests(ttl_s=600.0)
    answer = (400, "unprocessable_payload", "why")
    recent.remember_refused(b"letter", answer, now=0.0)
    for now in range(300, 8 * 3600, 300):  # every 5 minutes, for 8 hours
        letter = recent.seen(b"letter", now=float(now))
        assert isinstance(letter, Refused) and letter.answer == answer
    assert recent.seen(b"letter", now=8 * 3600 - 300 + 600.1) is None  # then it stopped


def test_a_renewed_dead_letter_leaves_older_entries_to_expire() -> None:
    # Expiry reads entries oldest first and stops at the first one still fresh: a renewed
    # letter left in its old place would keep the entries after it from expiring.
    recent = RecentRequests(ttl_s=600.0)
    recent.remember_refused(b"letter", (400, "unprocessable_payload", "why"), now=0.0)
    recent.remember(b"stored", now=100.0)
    assert recent.seen(b"letter", now=500.0) is not None
    recent.remember(b"later", now=700.5)
    assert len(recent) == 2 and recent.seen(b"stored", now=700.5) is None


def test_a_dead_letters_entry_counts_against_the_bound() -> None:
    recent = RecentRequests(max_entries=2)
    recent.remember_refused(b"a", (400, "unprocessable_payload", "why"), now=0.0)
    recent.remember(b"b", now=1.0)
    recent.remember(b"c", now=2.0)
    assert recent.seen(b"a", now=3.0) is None and len(recent) == 2


@pytest.mark.parametrize("header", ["identity", " Identity ", ""])
async def test_a_request_saying_its_body_is_plain_is_a_repeat_of_one_saying_nothing(
        header: str) -> None:
    # `identity` (or no coding) is the plain body every other request sends: the same bytes
    # are one webhook, not stored again.
    producer = KeepingProducer()
    app = infobip_ingest(producer, PASSWORD)
    assert (await _post(app, DELIVERY)).status_code == 200
    published = len(producer.published)
    assert (await _post(app, DELIVERY, **{"content-encoding": header})).status_code == 200
    assert len(producer.published) == published


async def test_a_coding_named_in_capitals_is_a_repeat_of_it_in_small_letters() -> None:
    producer = KeepingProducer()
    app = infobip_ingest(producer, PASSWORD)
    assert (await _post(app, DELIVERY, **{"content-encoding": "gzip"})).status_code == 415
    published = len(producer.published)
    assert (await _post(app, DELIVERY, **{"content-encoding": "GZIP"})).status_code == 415
    assert len(producer.published) == published  # one dead letter, not two

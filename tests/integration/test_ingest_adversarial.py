"""An adversarial run against a real ingest (its HTTP protocol, as `serve` runs it) and the
session's Kafka: a seeded set of requests built from every provider's fixtures, signed and
not, their bodies, headers, queries, paths and methods mutated
(test_ingest_adversarial_requests builds them), each answered, and every answer held to what
README promises: never a 5xx; a 2xx's raw request and events in Kafka, on their topics; an
authenticated 400/415 kept raw with a dead letter giving its reason; a refusal (401, 404,
405, 413, 431, a request the parser cannot read) keeps nothing; no secret of the accounts in
an answer, a record or a log line, nor an event's phone number in a log line.
"""

from __future__ import annotations

import asyncio
import os
import random
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import orjson
import pytest
import uvicorn

from ingest.app import create_app
from switchboard.accounts import Accounts, parse_accounts
from switchboard.localkafka import free_port
from switchboard.logs import configure_logging
from switchboard.records import raw_body
from switchboard.serving import INGEST_HTTP, EmbeddedServer
from switchboard.settings import Settings
from switchboard.topics import DEAD_LETTER, MESSAGE_INBOUND, MESSAGE_STATUS, RAW
from tests.integration.conftest import TEST_ACCOUNTS, auth_of
from tests.integration.test_ingest_adversarial_requests import (
    INVALID,
    VALID,
    Attack,
    Target,
    build_attack,
    routing_attacks,
)
from tests.integration.webhooks import FIXTURES, accounts_for
from tests.kafka_helpers import TopicWatcher

# Another seed, or more attacks, for a longer hunt: ADVERSARIAL_SEED=7 ADVERSARIAL_ATTACKS=3000
SEED = int(os.environ.get("ADVERSARIAL_SEED", "20261126"))
ATTACKS = int(os.environ.get("ADVERSARIAL_ATTACKS", "300"))  # plus the routing ones
IN_FLIGHT = 8
SECRETS = [secret for name in TEST_ACCOUNTS for secret in auth_of(name)["secrets"]]
# Answers that keep nothing (README, "What a request gets back"), and the 2xx and 4xx that do.
REFUSALS = frozenset({401, 404, 405, 408, 413, 431})
KEPT_REFUSALS = frozenset({"unprocessable_payload", "unsupported_media_type",
                           "unsupported_content_encoding"})


@dataclass
class Answer:
    status: int  # 0: the connection ended without one
    body: bytes
    error: str | None = None  # the JSON error's code


@dataclass
class Kept:
    """What Kafka holds for one attack: its raw record, dead letters and events."""

    raw: list[dict[str, Any]] = field(default_factory=list)
    dead: list[dict[str, Any]] = field(default_factory=list)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


async def _send(port: int, attack: Attack, timeout_s: float = 30) -> Answer:
    """One attack on a connection of its own; its answer, read by its length."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(attack.wire(f"127.0.0.1:{port}".encode()))
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout_s)
        while head.startswith(b"HTTP/1.1 1"):  # 100 Continue: the answer comes after it
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout_s)
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await asyncio.wait_for(reader.readexactly(length), timeout_s) \
            if attack.method != "HEAD" else b""
    except (ConnectionError, asyncio.IncompleteReadError):
        return Answer(0, b"")
    finally:
        writer.close()
    error = orjson.loads(body).get("error") if body.startswith(b"{\"error\"") else None
    return Answer(int(head.split(b" ", 2)[1]), body, error)


@dataclass
class Ingest:
    port: int
    accounts: Accounts
    server: EmbeddedServer
    task: asyncio.Task[None]

    async def stop(self) -> None:
        """Stopped as `serve` stops (its held-back log lines flushed); once, whoever asks."""
        self.server.should_exit = True
        await asyncio.wait_for(asyncio.shield(self.task), 60)


@pytest.fixture
async def adversarial_ingest(kafka_bootstrap: str) -> AsyncIterator[Ingest]:
    """An ingest of its own (its dedup memory holds only this test's requests) for accounts
    named for this run (how its records are told from other tests' on the shared topics),
    served by uvicorn with ingest's protocol and proxy headers, as `serve` runs it."""
    run = uuid.uuid4().hex[:6]
    specs = {f"adv{run}-{name}": spec for name, spec in TEST_ACCOUNTS.items()}
    specs[f"adv{run}-café ü"] = TEST_ACCOUNTS["it-webex"]  # a name to %-escape
    accounts = parse_accounts({"accounts": specs})
    port = free_port()
    app = create_app(Settings(kafka_bootstrap_servers=kafka_bootstrap, http_port=port), accounts)
    server = EmbeddedServer(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                           access_log=False, lifespan="on", http=INGEST_HTTP,
                                           proxy_headers=True))
    ingest = Ingest(port, accounts, server, asyncio.create_task(server.serve()))
    try:
        for _ in range(600):  # bounded: 30 s to listen and connect to Kafka
            if server.started and app.state.producer.started:
                break
            await asyncio.sleep(0.05)
        assert server.started and app.state.producer.started, "ingest did not start"
        yield ingest
    finally:
        await ingest.stop()


def _attacks(port: int, accounts: Accounts, run: str) -> list[Attack]:
    rng = random.Random(SEED)
    target = Target(f"127.0.0.1:{port}")
    attacks = routing_attacks(accounts)
    for n in range(ATTACKS):
        fixture = rng.choice(FIXTURES)
        name = rng.choice(accounts_for(fixture))
        if fixture.provider == "webex" and rng.random() < 0.3:
            name = "café ü"
        account = accounts.get(fixture.provider, f"{run}-{name}")
        assert account is not None
        attacks.append(build_attack(rng, n, fixture, account, target))
    return attacks


def _kept_by_attack(found: dict[str, list[Any]], run: str) -> tuple[dict[str, Kept], list[str]]:
    """This run's records by the x-request-id of the attack that made them, and those of
    this run's accounts that no attack made."""
    kept: dict[str, Kept] = defaultdict(Kept)
    stray: list[str] = []
    raw_ids: dict[str, str] = {}
    for record in found.get(RAW.name, []):
        raw = orjson.loads(record.value)
        if raw["account"].startswith(run):
            request_id = raw["headers"].get("x-request-id", "")
            raw_ids[raw["id"]] = request_id
            kept[request_id].raw.append(raw)
    for record in found.get(DEAD_LETTER.name, []):
        letter = orjson.loads(record.value)
        if letter["account"].startswith(run):
            kept[letter["payload"]["headers"].get("x-request-id", "")].dead.append(letter)
    for topic in (MESSAGE_INBOUND.name, MESSAGE_STATUS.name):
        for record in found.get(topic, []):
            event = orjson.loads(record.value)
            if event["account"].startswith(run):
                if event["raw_id"] in raw_ids:
                    kept[raw_ids[event["raw_id"]]].events.append((topic, event))
                else:
                    stray.append(f"{topic}: {event['id']}")
    for topic, records in found.items():
        if topic not in (RAW.name, DEAD_LETTER.name, MESSAGE_INBOUND.name, MESSAGE_STATUS.name):
            stray += [f"{topic}: {r.key!r}" for r in records if run.encode() in (r.key or b"")
                      or run.encode() in r.value]
    return kept, stray


def _fingerprint(attack: Attack, raw: dict[str, Any]) -> tuple[Any, ...]:
    """What ingest's duplicate memory tells requests apart by (ingest.dedup), as kept."""
    coding = raw["headers"].get("content-encoding", "").strip().lower()
    return (attack.account, attack.method, raw["content_type"],
            "" if coding == "identity" else coding, raw["query"], raw_body(raw))


def _problems(attack: Attack, answer: Answer, kept: Kept,
              kept_before: dict[tuple[Any, ...], list[Answer]]) -> list[str]:
    """What is wrong with one attack's answer and records (empty: nothing); `kept_before`
    holds the answers to the requests kept, by what tells a repeat."""
    problems = []
    status = answer.status
    if status == 0 or status >= 500:
        problems.append("no answer" if status == 0 else f"a {status}")
    if status >= 400 and answer.error is None and attack.method != "HEAD":
        problems.append("an error answer that is not JSON")
    if any(secret.encode() in answer.body for secret in SECRETS):
        problems.append("a secret in the answer")
    if attack.credentials == VALID and status == 401:
        problems.append(f"valid credentials refused: {answer.body[:200]!r}")
    if attack.credentials == INVALID and (200 <= status < 300 or answer.error in KEPT_REFUSALS):
        problems.append("authenticated without valid credentials")
    stored = bool(kept.raw or kept.dead or kept.events)
    if (status in REFUSALS or answer.error in ("bad_request", "client_disconnected")
            or attack.credentials == INVALID) and stored:
        problems.append(f"a {status} refusal kept records")
    if 200 <= status < 300 and stored:
        if len(kept.raw) != 1 or kept.dead:
            problems.append(f"a 2xx kept {len(kept.raw)} raw records, {len(kept.dead)} letters")
        for topic, event in kept.events:
            wanted = MESSAGE_INBOUND.name if event["type"] == "message.inbound" \
                else MESSAGE_STATUS.name
            if topic != wanted:
                problems.append(f"a {event['type']} event on {topic}")
    if answer.error in KEPT_REFUSALS and stored:
        if len(kept.raw) != 1 or len(kept.dead) != 1 or kept.events:
            problems.append(f"a {status} kept {len(kept.raw)} raw, {len(kept.dead)} letters, "
                            f"{len(kept.events)} events")
        elif not kept.dead[0]["reason"] or kept.dead[0]["payload"]["id"] != kept.raw[0]["id"]:
            problems.append("a dead letter without its reason or its raw request")
    if attack.events is None and kept.raw and answer.error not in KEPT_REFUSALS:
        problems.append("a request its fixture says is refused was not")
    if attack.events not in (None, -1) and kept.raw \
            and (not 200 <= status < 300 or len(kept.events) != attack.events):
        problems.append(f"{len(kept.events)} events kept, its fixture has {attack.events}")
    if any(raw_body(raw) != _sent_body(attack) for raw in kept.raw):
        problems.append("the raw record's body is not the one sent")
    if not stored and (200 <= status < 300 or answer.error in KEPT_REFUSALS) \
            and attack.method == "POST" \
            and not any(earlier.status == status and earlier.body == answer.body
                        for key, answers in kept_before.items()
                        if key[0] == attack.account and key[5] == _sent_body(attack)
                        for earlier in answers):
        # Nothing kept: only a repeat of one kept, answered as that one was, may be so.
        alike = [f"{earlier.status} {earlier.body[:100]!r}"
                 for key, answers in kept_before.items()
                 if key[0] == attack.account and key[5] == _sent_body(attack)
                 for earlier in answers]
        problems.append(f"a {status} ({answer.body[:100]!r}) kept nothing and repeats no "
                        f"request kept; those of its body were answered {alike}")
    return problems


def _sent_body(attack: Attack) -> bytes:
    """The body as ingest reads it (a chunked one without its framing)."""
    if not any(name.lower() == b"transfer-encoding" for name, _ in attack.headers):
        return attack.body
    body, rest = b"", attack.body
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.partition(b";")[0], 16)
        if size == 0:
            break
        body, rest = body + rest[:size], rest[size + 2:]
    return body


async def test_adversarial_requests_hold_ingest_to_its_answers(
        capsys: pytest.CaptureFixture[str], adversarial_ingest: Ingest,
        kafka_bootstrap: str) -> None:
    configure_logging("INFO", "json")  # rendered as `serve` renders its lines: read below
    port, accounts = adversarial_ingest.port, adversarial_ingest.accounts
    run = next(iter(accounts)).name.partition("-")[0]
    attacks = _attacks(port, accounts, run)
    async with TopicWatcher(kafka_bootstrap) as watcher:
        before = await watcher.snapshot()
        in_flight = asyncio.Semaphore(IN_FLIGHT)  # concurrent: Kafka round trips shared

        async def answered(attack: Attack) -> Answer:
            async with in_flight:
                return await _send(port, attack)

        # Bounded: a few hundred requests take seconds.
        answers = await asyncio.wait_for(asyncio.gather(*map(answered, attacks)),
                                         240 + len(attacks) / 10)
        found = await watcher.records_since(before, timeout_s=60)
    kept, stray = _kept_by_attack(found, run)
    # Nor in Kafka: a token sent in the query is taken out of the query kept (README).
    stored_secrets = [(topic, secret) for topic, records in found.items() for r in records
                      if run.encode() in r.value for secret in SECRETS
                      if secret.encode() in r.value or quote(secret).encode() in r.value]
    assert not stored_secrets, f"a secret stored: {stored_secrets[:3]}"
    # The phone numbers of the events kept: masked in logs (README), never written whole.
    numbers = {contact.lstrip("+") for k in kept.values() for _, event in k.events
               for contact in (event.get("from"), event.get("to"))
               if isinstance(contact, str) and contact.lstrip("+").isdigit()
               and len(contact.lstrip("+")) >= 8}

    kept_before: dict[tuple[Any, ...], list[Answer]] = defaultdict(list)
    for attack, answer in zip(attacks, answers, strict=True):
        if kept[attack.request_id].raw:
            kept_before[_fingerprint(attack, kept[attack.request_id].raw[0])].append(answer)
    failures = []
    for attack, answer in zip(attacks, answers, strict=True):
        for problem in _problems(attack, answer, kept.pop(attack.request_id), kept_before):
            failures.append(f"{attack.request_id} {attack.method} {attack.account} "
                            f"[{attack.label}] -> {answer.status} {answer.error}: {problem}")
    assert not failures, f"seed {SEED}:\n" + "\n".join(failures[:40])
    assert not kept and not stray, f"records no attack made: {list(kept)[:5]} {stray[:5]}"

    await adversarial_ingest.stop()  # its last lines: the refusals counted, not yet said
    logged = capsys.readouterr().err
    assert logged, "no log line captured"
    leaked = [secret for secret in SECRETS if secret in logged]
    assert not leaked, "a secret in the log"
    assert numbers, "no event with a phone number: the check below checks nothing"
    unmasked = sorted(number for number in numbers if number in logged)
    assert not unmasked, f"phone numbers written whole in the log: {unmasked[:5]}"
    counted: dict[int, int] = defaultdict(int)
    for answer in answers:
        counted[answer.status] += 1
    print(f"{len(attacks)} attacks answered {dict(sorted(counted.items()))}")

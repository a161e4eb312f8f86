"""The ledger's state read from an old record's first bytes (a dict lookup of its beginning)
agrees with the rule it stands for: a final state's `{"state":"..."` followed by `,` or `}`,
else the parsed JSON's state, over values cut, altered and extended around those beginnings."""

from __future__ import annotations

import random

import orjson

from consumers.ledger import LEDGER_ARCHIVING

FINAL = ("sent", "failed")
PIECES = [b'{"state":"', b"sent", b"failed", b"pending", b"released", b'"', b",", b"}", b" ",
          b'"result":null', b"x", b"{", b"\xff", b'"state"', b":", b""]


def by_the_rule(value: bytes) -> int | None:
    for index, state in enumerate(FINAL):
        prefix = f'{{"state":"{state}"'.encode()
        if value.startswith(prefix) and value[len(prefix):len(prefix) + 1] in (b",", b"}"):
            return index
    try:
        state = orjson.loads(value).get("state")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return FINAL.index(state) if state in FINAL else None


def test_the_state_read_from_a_beginning_agrees_with_the_rule() -> None:
    rng = random.Random(7)
    values = {b"", b"{", b'{"state":"sent"', b'{"state":"failed"', b'{"state":"sent"}',
              b'{"state":"failed"}', b'{"state":"sent",', b'{"state":"failed",'}
    while len(values) < 20_000:
        value = b"".join(rng.choice(PIECES) for _ in range(rng.randrange(1, 8)))
        if rng.random() < 0.5:  # around a real beginning
            value = b'{"state":"' + rng.choice((b"sent", b"failed")) + value
        values.add(value[:rng.randrange(len(value) + 1)] if rng.random() < 0.2 else value)
    assert {value: LEDGER_ARCHIVING.state_of_record(value) for value in values} == {
        value: by_the_rule(value) for value in values}

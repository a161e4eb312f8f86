"""Every KAFKA_BOOTSTRAP_SERVERS entry the check takes is read the same by aiokafka
(collect_hosts), over generated entries: IPv6 addresses in their forms, with and without
brackets and ports, and strings of the characters that matter."""

from __future__ import annotations

import ipaddress
import random

from aiokafka.conn import collect_hosts

from switchboard.bootstrap_servers import bootstrap_server, check_bootstrap_servers


def _entries(rng: random.Random) -> list[str]:
    entries = ["".join(rng.choice(":[]019af.% ") for _ in range(rng.randint(1, 14)))
               for _ in range(4000)]
    for _ in range(2000):
        bits = rng.getrandbits(128) if rng.random() < 0.5 else rng.getrandbits(16)
        address = ipaddress.IPv6Address(bits)
        text = rng.choice([address.compressed, address.exploded])
        port = str(rng.choice([1, 9092, 65535, 0, 65536, rng.randint(1, 99999)]))
        entries += [text, f"[{text}]", f"[{text}]:{port}", f"{text}:{port}",
                    f"::ffff:1.2.3.{rng.randint(0, 255)}:{port}"]
    return entries


def test_an_entry_taken_is_read_the_same_by_aiokafka() -> None:
    rng = random.Random(20261126)
    taken = differ = 0
    for entry in _entries(rng):
        try:
            check_bootstrap_servers(entry)
        except ValueError:
            continue
        taken += 1
        if collect_hosts(entry)[0][:2] != bootstrap_server(entry.strip()):
            differ += 1
    assert taken > 3000  # the generator reaches what is taken, not only refusals
    assert differ == 0

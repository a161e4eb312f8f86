"""KAFKA_BOOTSTRAP_SERVERS read as the clients will (aiokafka), checked at start: a bad entry
would otherwise fail only when a client starts (a traceback from `worker`, `tail`, `send`...;
`serve` retrying for ever). Messages never quote a login's password."""

from __future__ import annotations

import re
import socket

from switchboard.logs import scrub


def check_bootstrap_servers(value: str) -> None:
    """ValueError naming the first entry of the comma-separated list that is not host:port."""
    if "@" in value and "://" not in value:  # before any entry: a password may hold a comma
        raise ValueError(f"{masked_logins(repr(value.strip()))}: a login does not go in the "
                         "address: set kafka_sasl_username and kafka_sasl_password")
    for entry in value.split(","):
        _not_another_form(entry.strip())
        bootstrap_server(entry.strip())


def masked_logins(text: str) -> str:
    """`text` (a repr()) with a login in an entry without a scheme (user:password@host)
    masked, which logs.scrub (URLs' logins) misses: all of it up to its last `@`, other entries
    too. A password may hold any character: a mask that stopped at a `/`, `;`, space or quote
    showed what came before it, and a comma splits the list."""
    _, at, after = text.rpartition("@")
    if not at:
        return text
    quote = text[:1] if text[:1] in ("'", '"') else ""
    return f"{quote}***@{after}"


def bootstrap_server(entry: str) -> tuple[str, int]:
    """`host:port` or `[ipv6]:port` as host and port (ValueError saying what is wrong). A host
    or an IPv6 address alone is Kafka's port 9092, as aiokafka takes it (`kafka`, `[::1]`,
    `::1`), except an address whose last group could be a port after another address
    (`::1:9092`: aiokafka connects to the address ::1:9092), which needs its brackets."""
    if not entry:
        raise ValueError("an empty entry (a comma too many?)")
    if ":" not in entry and not entry.startswith("["):
        return entry, 9092
    if entry.startswith("["):
        host, bracket, rest = entry[1:].partition("]")
        colon, port = rest[:1], rest[1:]
        if not bracket or (rest and colon != ":"):
            raise ValueError(f"{entry!r} is not [ipv6]:port")
        if host and not rest:
            return host, 9092
    else:
        host, colon, port = entry.rpartition(":")
        if ":" in host:
            return _ipv6_alone(entry, host, port), 9092
    if not host or not colon:
        raise ValueError(f"{entry!r} is not host:port (comma-separated, e.g. "
                         "broker-1:9092,broker-2:9092)")
    if not _is_port(port):
        raise ValueError(f"{entry!r}: the port must be 1-65535")
    return host, int(port)


def _ipv6_alone(entry: str, before: str, last: str) -> str:
    """An entry of several colons without brackets, as the IPv6 address it is. One that reads
    as an address and a port as well is refused, not guessed: taken as aiokafka takes it (the
    whole address, port 9092), `::1:9092` written for ::1 would connect elsewhere."""
    if _is_port(last) and _is_ipv6(before):
        raise ValueError(f"{entry!r}: write an IPv6 address in brackets: [{before}]:{last} "
                         f"for port {last}, [{entry}] for the address alone")
    if not _is_ipv6(entry):
        raise ValueError(f"{entry!r}: write an IPv6 address in brackets, e.g. [::1]:9092")
    return entry


def _is_ipv6(text: str) -> bool:
    """As aiokafka tells an address (inet_pton): no zone (`%eth0`), which it cannot read."""
    try:
        socket.inet_pton(socket.AF_INET6, text)
    except (OSError, ValueError):
        return False
    return True


def _is_port(text: str) -> bool:
    return text.isascii() and text.isdigit() and 1 <= int(text) <= 65535


def _not_another_form(entry: str) -> None:
    """Addresses as other tools write them, said as what they are: a broker's `listeners` line
    (`PLAINTEXT://kafka:9092`) read as a misplaced IPv6 address, and a space or `;` between
    entries as part of a host name, which failed only at each connection."""
    scheme, separator, rest = entry.partition("://")
    if separator:  # a URL may carry a login (user:password@): masked, and left out of the hint
        address = rest.rpartition("@")[2].rstrip("/")
        raise ValueError(f"{scrub(repr(entry))}: write host:port, without {scheme}:// "
                         f"({address})")
    if "@" in entry:  # taken for an IPv6 address without brackets, the password quoted
        raise ValueError(f"{masked_logins(repr(entry))}: a login does not go in the "
                         "address: set kafka_sasl_username and kafka_sasl_password")
    if re.search(r"[\s;]", entry):
        raise ValueError(f"{entry!r}: host:port entries are separated by commas, e.g. "
                         "broker-1:9092,broker-2:9092")

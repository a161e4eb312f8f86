"""Garbage-collector settings for the long-running services (ingest, workers).

Why: CPython's cycle collector runs a young collection every 700 net container allocations,
and each request or record allocates dozens that live until Kafka acknowledges them. Under
load that was about 8 % of ingest's CPU (measured with gc.callbacks), and the full
collections it kept triggering walked every object left from start-up (tens of ms each, a
latency spike per half second). Reference counting frees almost everything we allocate;
the collector is only for cycles, so it can run far less often.
"""

from __future__ import annotations

import gc

# Young collections run after this many net container allocations (CPython's default: 700).
# Cyclic garbage waits longer for collection; that is at most this many objects.
YOUNG_GENERATION_THRESHOLD = 10_000


def settle() -> None:
    """Call once start-up is done: what exists then (modules, app, clients) lives as long as
    the process, so it is moved out of the collector's sight (gc.freeze), and young
    collections are made rarer. Calling it again is harmless."""
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, middle, oldest)

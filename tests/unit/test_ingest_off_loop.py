"""Where ingest normalizes a body: on the event loop when it is small, on a worker thread when
it is large, one large body at a time (pure Python: more threads would not run together under
the GIL, only take the loop's turns)."""

from __future__ import annotations

import asyncio
import threading
import time

from ingest.normalizing import OFF_LOOP_BODY_BYTES, off_loop_if_large


async def test_a_small_body_is_handled_on_the_event_loop() -> None:
    assert await off_loop_if_large(OFF_LOOP_BODY_BYTES - 1, threading.get_ident) \
        == threading.get_ident()


async def test_large_bodies_are_handled_off_the_loop_one_at_a_time() -> None:
    lock = threading.Lock()
    running: list[int] = []
    most_at_once = 0

    def work(n: int) -> tuple[int, int]:
        nonlocal most_at_once
        with lock:
            running.append(n)
            most_at_once = max(most_at_once, len(running))
        time.sleep(0.02)  # long enough for any other thread to start meanwhile
        with lock:
            running.remove(n)
        return n, threading.get_ident()

    done = await asyncio.gather(*(off_loop_if_large(OFF_LOOP_BODY_BYTES, work, n)
                                  for n in range(4)))
    assert [n for n, _ in done] == [0, 1, 2, 3]
    assert threading.get_ident() not in {thread for _, thread in done}
    assert most_at_once == 1

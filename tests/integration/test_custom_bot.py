"""A user's bot function, run as a worker, answers through the sender; compliance still first."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from consumers import workers
from tests.integration.bots import new_contact, texts, wait_replies
from tests.integration.stack import Stack, running_stack


@pytest.fixture(scope="module")
async def stack(kafka_bootstrap: str) -> AsyncIterator[Stack]:
    factory = workers.custom_bot_worker("examples.echo_bot:bot")
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(workers.WORKERS, "echo", factory)
        async with running_stack(kafka_bootstrap, workers=("sender", "echo")) as running:
            yield running


async def test_example_bot_replies_and_compliance_comes_first(stack: Stack) -> None:
    contact = new_contact()
    await texts(stack, contact, "Hello there")
    assert await wait_replies(stack, contact, 1) == ["You said: Hello there"]
    await texts(stack, contact, "HELP")  # answered by Switchboard's compliance, not the bot
    replies = await wait_replies(stack, contact, 2)
    assert replies[1] == "Reply STOP to opt out, START to opt back in."


def test_bad_bot_spec_is_a_clear_error() -> None:
    for spec, message in [("nocolon", "module:function"), ("examples.echo_bot:nope",
                                                           "not a function")]:
        with pytest.raises(ValueError, match=message):
            workers.custom_bot_worker(spec)
    with pytest.raises(ImportError):
        workers.custom_bot_worker("no_such_module_xyz:bot")

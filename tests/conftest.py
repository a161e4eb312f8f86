"""Session-wide fixtures. The broker is real: started here unless KAFKA_BOOTSTRAP_SERVERS is set.

If it cannot start, every test that needs it errors with the reason: none is skipped.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest

from switchboard.localkafka import BrokerError, LocalKafka, free_port
from switchboard.settings import BOOTSTRAP_ENV, Settings
from switchboard.topics import ensure_topics


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = Settings()
    external = os.environ.get(BOOTSTRAP_ENV)
    broker: LocalKafka | None = None
    if external:
        bootstrap = external
    else:
        broker = LocalKafka(
            tmp_path_factory.mktemp("kafka"),
            cache_dir=settings.cache_dir,
            port=free_port(),
            controller_port=free_port(),
        )
        try:
            broker.start()
            asyncio.run(broker.wait_ready())
        except BrokerError as exc:
            broker.stop()
            pytest.fail(f"the test Kafka broker could not start: {exc}", pytrace=False)
        bootstrap = broker.bootstrap_servers
    asyncio.run(ensure_topics(bootstrap, partitions=3, replication_factor=1))
    try:
        yield bootstrap
    finally:
        if broker is not None:
            broker.stop()


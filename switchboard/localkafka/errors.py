"""The one error of the local broker, whichever step failed."""

from __future__ import annotations


class BrokerError(RuntimeError):
    """The local broker could not be fetched or started; the message says what to do."""


# What a machine without java or mvn can do instead of installing them: every user of the
# local broker (run, kafka, the tests, the benchmarks) starts none when this is set.
OWN_CLUSTER = "or set KAFKA_BOOTSTRAP_SERVERS to use your own cluster"

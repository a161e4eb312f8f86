"""A real single-node Apache Kafka (KRaft) started from Maven Central jars, without Docker
(or a node of a local cluster of such nodes, for the tests of a broker lost).

Used alike by `switchboard kafka`, the run command, the test session and the benchmarks, so
every one of them talks to the same real broker. Jars are fetched once into a cache outside the
repository; the data directory is the caller's (persistent for local use, temporary in tests).
"""

from switchboard.localkafka.broker import (
    READY_LINE,
    LocalKafka,
    data_dir_holder,
    new_cluster_id,
    stop_process,
)
from switchboard.localkafka.errors import BrokerError
from switchboard.localkafka.jars import KAFKA_VERSION, ensure_jars, jar_home
from switchboard.localkafka.ports import free_port
from switchboard.localkafka.readiness import wait_until_usable
from switchboard.localkafka.secured import SecuredListener

__all__ = ["KAFKA_VERSION", "READY_LINE", "BrokerError", "LocalKafka", "SecuredListener",
           "data_dir_holder", "ensure_jars", "free_port", "jar_home", "new_cluster_id",
           "stop_process", "wait_until_usable"]

"""docker-compose.yml cannot run here; this keeps it in agreement with the code."""

from __future__ import annotations

import re
import socket
import subprocess
from pathlib import Path
from typing import Any

import httpx
import yaml

from consumers.commits import COMMIT_TIMEOUT_S
from consumers.outbound.base import OutboundConfig
from switchboard.cli import build_parser
from switchboard.localkafka import KAFKA_VERSION
from switchboard.serving import shutdown_grace_s
from switchboard.settings import Settings, env_var_names

ROOT = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
APP_SERVICES = {name: s for name, s in SERVICES.items() if name != "kafka"}


def _subcommands() -> set[str]:
    parser = build_parser()
    actions = [a for a in parser._actions if a.dest == "command"]
    return set(actions[0].choices or {})


def test_kafka_image_matches_the_local_broker_version() -> None:
    assert SERVICES["kafka"]["image"] == f"apache/kafka:{KAFKA_VERSION}"


def test_kafka_is_single_node_kraft_with_explicit_topics() -> None:
    env = SERVICES["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_app_services_use_known_settings_and_reach_kafka() -> None:
    known = env_var_names()
    for name, service in APP_SERVICES.items():
        env = service["environment"]
        unknown = {key for key in env if key not in known}
        assert not unknown, f"{name} sets variables the settings do not read: {unknown}"
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
        assert set(service["depends_on"]) & {"kafka", "ingest"}


def test_workers_start_once_ingest_has_created_the_topics() -> None:
    """One creator of the topics at a time: ingest first (its /readyz answers 200 only once
    they are there), then the workers, which would otherwise race it to create them."""
    assert SERVICES["ingest"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert "/readyz" in " ".join(SERVICES["ingest"]["healthcheck"]["test"])
    for name, service in APP_SERVICES.items():
        if service["command"][0] == "worker":
            assert service["depends_on"] == {"ingest": {"condition": "service_healthy"}}, name


def test_app_services_run_existing_subcommands() -> None:
    subcommands = _subcommands()
    for name, service in APP_SERVICES.items():
        command = service["command"]
        first = command[0] if isinstance(command, list) else command.split()[0]
        assert first in subcommands, f"{name} runs unknown subcommand {first!r}"


def test_published_ports_match_settings() -> None:
    for service in APP_SERVICES.values():
        env = service["environment"]
        if "SWITCHBOARD_HTTP_PORT" in env:
            port = env["SWITCHBOARD_HTTP_PORT"]
            assert any(str(p).endswith(f":{port}") for p in service["ports"])
    assert Settings().http_port == 8080


def test_anchor_variables_are_settings() -> None:
    anchor = COMPOSE["x-switchboard-env"]
    assert set(anchor) <= env_var_names()


def test_config_files_the_services_read_are_mounted_and_exist() -> None:
    for name, service in APP_SERVICES.items():
        mounts = {m.split(":")[1]: m.split(":")[0] for m in service.get("volumes", [])}
        for key in ("SWITCHBOARD_ACCOUNTS_FILE", "SWITCHBOARD_RULES_FILE"):
            path = service["environment"].get(key)
            if path:
                directory, filename = path.rsplit("/", 1)
                assert directory in mounts, f"{name}: {path} is not in a mounted volume"
                assert (ROOT / mounts[directory] / filename).is_file(), f"{name}: {path}"


def _seconds(duration: str) -> float:
    """A compose duration as this file writes them: `90s`, `2m`, `1m30s`."""
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert match and duration, f"unexpected duration {duration!r}"
    return int(match[1] or 0) * 60 + int(match[2] or 0)


def test_every_service_is_started_again_after_it_stops_on_an_error() -> None:
    """A worker stops rather than skip a record it must not skip (an opt-out change Kafka
    refused, a dead letter it could not store) and counts on being started again; without a
    restart policy it stayed down, and nothing was sent or answered any more."""
    for name, service in SERVICES.items():
        assert service.get("restart") in ("unless-stopped", "always", "on-failure"), name


def test_services_are_given_the_time_their_clean_stop_takes() -> None:
    """Docker kills what has not stopped 10 s after SIGTERM: ingest's in-flight webhooks got a
    reset instead of their answer, and a send cut short is reported `outcome_unknown`."""
    settings = Settings()
    produce = settings.produce_timeout_s
    flush = 2 * produce + 2 * produce  # DurableProducer.stop: the flusher, then the client
    needed = {
        "ingest": shutdown_grace_s(produce) + flush,
        # a provider call in flight, its result and ledger mark, the commit, the flush
        "sender": OutboundConfig.model_fields["timeout_s"].default + produce
                  + COMMIT_TIMEOUT_S + flush,
        "keywords": settings.bot_timeout_s + produce + COMMIT_TIMEOUT_S + flush,
    }
    for name, seconds in needed.items():
        grace = _seconds(SERVICES[name].get("stop_grace_period", "10s"))
        assert grace >= seconds, f"{name}: {grace}s to stop, needs up to {seconds}s"


def test_workers_serve_metrics_and_probes_to_the_network_and_check_their_readiness() -> None:
    for name, service in APP_SERVICES.items():
        env = service["environment"]
        port = env.get("SWITCHBOARD_METRICS_PORT")
        assert port, f"{name}: no /metrics for Prometheus"
        assert port in [str(p) for p in service["expose"]], name
        probed = " ".join(service["healthcheck"]["test"])
        if service["command"][0] == "worker":
            # The workers' endpoint listens on SWITCHBOARD_HTTP_HOST: 127.0.0.1 unless set.
            assert env["SWITCHBOARD_HTTP_HOST"] == "0.0.0.0", name
            assert f"127.0.0.1:{port}/readyz" in probed, name
        else:
            assert f"127.0.0.1:{env['SWITCHBOARD_HTTP_PORT']}/readyz" in probed, name


def test_the_brokers_plaintext_listener_is_published_on_loopback_only() -> None:
    """It has neither TLS nor a login: on every interface of the host, anyone who reached it
    could read the webhooks and put commands on the outbound topic."""
    for port in SERVICES["kafka"]["ports"]:
        assert str(port).startswith("127.0.0.1:"), port


def _health_check_on(port: int) -> int:
    """The exit status of the broker's health check, run here against `port`."""
    test = SERVICES["kafka"]["healthcheck"]["test"]
    listener = SERVICES["kafka"]["environment"]["KAFKA_LISTENERS"]
    plaintext = re.search(r"PLAINTEXT://:(\d+)", listener)
    assert plaintext and plaintext[1] == "9092"  # the one KAFKA_BOOTSTRAP_SERVERS names
    command = [part.replace(f"/{plaintext[1]}", f"/{port}") for part in test[1:]]
    return subprocess.run(command, timeout=10, check=False).returncode


def test_the_brokers_health_check_starts_no_jvm_and_passes_once_it_listens() -> None:
    """It was kafka-broker-api-versions.sh: a JVM every 5 s for as long as the broker ran,
    about 1.5 s of CPU (30 % of a core) and 90 MB each time."""
    test = SERVICES["kafka"]["healthcheck"]["test"]
    assert test[0] == "CMD", test  # the image's /bin/sh (CMD-SHELL) may not open /dev/tcp
    assert not any("/opt/kafka" in part or "java" in part for part in test), test
    with socket.create_server(("127.0.0.1", 0)) as listening:
        port = listening.getsockname()[1]
        assert _health_check_on(port) == 0
    assert _health_check_on(port) != 0


def test_providers_are_not_given_a_url_only_this_network_can_reach() -> None:
    """The sender gave providers http://ingest:8080 as where to report, which none can reach,
    and the sender's warning about an unset public URL never came."""
    internal = set(SERVICES) | {s.get("hostname") for s in SERVICES.values()} - {None}
    for name, service in APP_SERVICES.items():
        url = service["environment"].get("SWITCHBOARD_PUBLIC_URL")
        if url is not None:
            assert httpx.URL(url).host not in internal, f"{name}: {url}"

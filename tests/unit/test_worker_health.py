"""A worker's probes and metrics, served on 127.0.0.1 from their own thread."""

from __future__ import annotations

import time

import httpx

from consumers.health import WorkerHealth, serve_worker_http
from switchboard.localkafka import free_port


def test_probes_report_a_stuck_loop_and_a_worker_not_consuming() -> None:
    health = WorkerHealth(stale_after_s=30)
    port = free_port()
    server = serve_worker_http(health, "127.0.0.1", port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            starting = client.get("/readyz")
            assert (starting.status_code, starting.json()["reason"]) == (503, "starting")
            health.readiness = lambda: None
            assert client.get("/readyz").json() == {"status": "ready"}  # as ingest's says

            alive = client.get("/healthz")
            assert (alive.status_code, alive.json()) == (200, {"status": "ok"})
            health.last_tick = time.monotonic() - 60  # the loop stopped ticking a minute ago
            stuck = client.get("/healthz")
            assert stuck.status_code == 503 and stuck.json()["status"] == "unavailable"
            assert stuck.json()["reason"].startswith("the event loop has not run for 6")

            assert "python_gc_objects_collected_total" in client.get("/metrics").text
    finally:
        server.shutdown()
        server.server_close()


def test_only_the_probes_and_metrics_are_served_and_refusals_are_json_like_ingests() -> None:
    health = WorkerHealth(stale_after_s=30)
    health.readiness = lambda: None
    port = free_port()
    server = serve_worker_http(health, "127.0.0.1", port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            for path in ("/", "/nothing-here", "/metrics/", "/favicon.ico", "/healthz/x"):
                missing = client.get(path)
                assert missing.status_code == 404, path
                assert missing.headers["content-type"] == "application/json"
                assert missing.json() == {"error": "http_error", "message": "Not Found"}
            assert client.post("/nothing-here").status_code == 404

            for path in ("/healthz", "/readyz", "/metrics"):
                wrong = client.post(path, content=b"x")
                assert wrong.status_code == 405, path
                assert wrong.headers["allow"] == "GET, HEAD"
                assert wrong.json() == {"error": "http_error", "message": "Method Not Allowed"}
                head = client.head(path)
                assert (head.status_code, head.content) == (200, b""), path
    finally:
        server.shutdown()
        server.server_close()

"""`switchboard normalize`: what people debugging an integration run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson

from tests.fixtures import load_fixtures


def _run(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "switchboard.cli", "normalize", *args],
                          input=stdin, capture_output=True, check=False, timeout=60)


def test_prints_events_as_json_lines_for_a_fixture(tmp_path: Path) -> None:
    fixture = next(f for f in load_fixtures() if f.spec.get("events"))
    body = tmp_path / "body"
    body.write_bytes(fixture.body())
    request = fixture.spec["request"]
    args = ["--provider", fixture.provider, str(body)]
    if request.get("content_type"):
        args += ["--content-type", request["content_type"]]
    if request.get("query"):
        args += ["--query", request["query"]]
    if request.get("method"):
        args += ["--method", request["method"]]
    result = _run(*args)
    assert result.returncode == 0, result.stderr
    events = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert len(events) == len(fixture.spec["events"])
    assert all(event["provider"] == fixture.provider for event in events)


def test_bad_input_prints_the_reason_and_exits_2() -> None:
    result = _run("--provider", "infobip", "-", stdin=b"{not json")
    assert result.returncode == 2
    assert b"error:" in result.stderr and result.stdout == b""


def test_unknown_provider_exits_2() -> None:
    result = _run("--provider", "nope", "-", stdin=b"{}")
    assert result.returncode == 2
    assert b"unknown provider" in result.stderr


def test_a_typed_query_is_read_as_ingest_reads_a_received_one() -> None:
    # Ingest hands the query's bytes on as Latin-1 text; a typed `é` must come out as `é`.
    result = _run("--provider", "bird", "--query",
                  "id=m1&recipient=31612345678&status=delivery_failed&statusReason=café", "-")
    assert result.returncode == 0, result.stderr
    [event] = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert event["provider_status"]["description"] == "café"


def test_output_to_a_reader_that_has_gone_ends_quietly() -> None:
    # `normalize … | head -c 0`, `tail | head`: the pipe closes before all is written. Its
    # stdout buffered, as a shell runs it: with PYTHONUNBUFFERED every write failed at once.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    done = subprocess.Popen(
        [sys.executable, "-m", "switchboard.cli", "normalize", "--provider", "bird", "--query",
         "id=m1&recipient=31612345678&status=delivered", "-"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert done.stdout is not None and done.stderr is not None
    done.stdout.close()  # before the command has even started
    error = done.stderr.read()
    assert done.wait(timeout=60) == 141  # as if SIGPIPE had ended it, what shells report
    assert b"Traceback" not in error and b"Exception ignored" not in error


def test_a_query_that_is_not_utf8_gets_the_normalizers_answer() -> None:
    # The shell passes the bytes of a query captured in Latin-1 as they are.
    result = subprocess.run(
        [sys.executable.encode(), b"-m", b"switchboard.cli", b"normalize", b"--provider",
         b"bird", b"--query", b"id=m1&recipient=316&status=delivered&statusReason=caf\xe9", b"-"],
        input=b"", capture_output=True, check=False, timeout=60)
    assert result.returncode == 2
    assert result.stderr == b"error: query string is not UTF-8\n"


def test_python_dash_m_switchboard_is_the_command() -> None:
    # Only `python -m switchboard.cli` worked: "No module named switchboard.__main__".
    done = subprocess.run([sys.executable, "-m", "switchboard", "schema"], capture_output=True,
                          timeout=60, check=False)
    assert done.returncode == 0 and orjson.loads(done.stdout)["title"]


def test_a_query_without_a_file_in_a_terminal_reads_no_body() -> None:
    # A GET status report typed in a terminal waited for a body on stdin until Ctrl-D.
    controller, terminal = os.openpty()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "switchboard.cli", "normalize", "--provider", "bird",
             "--query", "id=m1&recipient=31612345678&status=delivered"],
            stdin=terminal, capture_output=True, check=False, timeout=30)
    finally:
        os.close(terminal)
        os.close(controller)
    assert result.returncode == 0, result.stderr
    [event] = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert event["message_id"] == "m1" and event["status"] == "delivered"

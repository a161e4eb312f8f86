from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import quote, urlencode

import httpx
import orjson
import pytest

from switchboard.logs import (
    MIN_MASKED_CHARS,
    MIN_MASKED_WORD_CHARS,
    configure_logging,
    get_logger,
    register_secrets,
    scrub,
)


def test_secrets_never_reach_the_log(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")
    register_secrets(["s3cr3t-value-123"])
    log = get_logger("test")
    log.info("auth", client_secret="plain", detail="header was Bearer s3cr3t-value-123",
             nested={"password": "x", "ok": "fine"})
    logging.getLogger("third.party").warning("leaked s3cr3t-value-123 here")
    err = capsys.readouterr().err
    assert "s3cr3t-value-123" not in err and "plain" not in err
    lines = [orjson.loads(line) for line in err.splitlines()]
    assert lines[0]["client_secret"] == "***"
    assert lines[0]["nested"] == {"password": "***", "ok": "fine"}
    assert "***" in lines[1]["event"]


def test_a_secret_is_masked_as_a_url_carries_it_too(capsys: pytest.CaptureFixture[str]) -> None:
    # A token-scheme account's token goes into the webhook URL given to providers, %-encoded
    # (base64 tokens have + / =); the simulator logs that URL when ingest is unreachable, and
    # httpx logs it at DEBUG. Only the plain value was masked.
    configure_logging("INFO", "json")
    token = "Zm9v+YmFy/dG9rZW4="
    register_secrets([token])
    url = "https://hooks.example/webhooks/ubiqio/acme?" + urlencode({"token": token})
    get_logger("test").info("webhook not delivered", url=url, path=quote(token, safe=""))
    logging.getLogger("httpx").warning("HTTP Request: POST %s", url)
    err = capsys.readouterr().err
    assert "Zm9v" not in err
    assert orjson.loads(err.splitlines()[0])["url"] == "https://hooks.example/webhooks/ubiqio/acme?token=***"


def test_a_password_in_a_url_is_masked(capsys: pytest.CaptureFixture[str]) -> None:
    # A provider's base_url (or SWITCHBOARD_PUBLIC_URL) may carry Basic credentials; httpx
    # logs each request's URL as it is at DEBUG, and no setting registers that password.
    configure_logging("INFO", "json")
    url = "https://acme:pa55-word@api.example.com/send?to=1"
    logging.getLogger("httpx").warning("HTTP Request: POST %s", url)
    get_logger("test").info("posting", url=url)
    err = capsys.readouterr().err
    assert "pa55" not in err
    library, ours = (orjson.loads(line) for line in err.splitlines())
    assert library["event"] == "HTTP Request: POST https://acme:***@api.example.com/send?to=1"
    assert ours["url"] == "https://acme:***@api.example.com/send?to=1"


def test_a_short_secret_is_masked_where_it_stands_alone_and_warned_about(
        capsys: pytest.CaptureFixture[str]) -> None:
    # A Kafka password or a provider's key shorter than MIN_MASKED_CHARS was logged as it was,
    # in any line that quoted it (a URL, an error message), with nothing saying so at start.
    configure_logging("INFO", "json")
    short, long = "Kq9" + "z" * (MIN_MASKED_CHARS - 4), "m" * MIN_MASKED_CHARS
    register_secrets([short, long])
    register_secrets([short])  # the sender registers an account's keys for each client
    get_logger("test").info("login", detail=f"pw={short} https://u:{short}@h {long}",
                            words=f"x{short} {short}_y {short}Z")
    lines = [orjson.loads(line) for line in capsys.readouterr().err.splitlines()]
    warnings = [line for line in lines if line["level"] == "warning"]
    assert len(warnings) == 1 and short not in warnings[0]["event"]
    assert f"fewer than {MIN_MASKED_CHARS} characters" in warnings[0]["event"]
    assert lines[-1]["detail"] == "pw=*** https://u:***@h ***"
    # Inside a longer word it stays: masked anywhere, it would mask parts of ordinary words.
    assert lines[-1]["words"] == f"x{short} {short}_y {short}Z"
    readme = " ".join((Path(__file__).parents[2] / "README.md").read_text().split())
    assert (f"A secret shorter than {MIN_MASKED_CHARS} characters is masked only where it "
            "stands as a word of its own") in readme
    assert "masked in every log line |" not in readme


def test_a_secret_of_one_or_two_characters_is_not_masked_but_warned_about(
        capsys: pytest.CaptureFixture[str]) -> None:
    # Masked as a word, a password "1" turned every count in every line into "***".
    configure_logging("INFO", "json")
    register_secrets(["1", "k8"])
    get_logger("test").info("login", detail="attempt 1 of 3 on k8 nodes")
    lines = [orjson.loads(line) for line in capsys.readouterr().err.splitlines()]
    [warning] = [line for line in lines if line["level"] == "warning"]
    assert warning["count"] == 2 and f"not at all below {MIN_MASKED_WORD_CHARS}" in \
        warning["event"]
    assert lines[-1]["detail"] == "attempt 1 of 3 on k8 nodes"


@pytest.mark.parametrize(("level", "request_lines"), [("INFO", 0), ("DEBUG", 1)])
def test_httpx_request_lines_only_when_debugging(capsys: pytest.CaptureFixture[str],
                                                 level: str, request_lines: int) -> None:
    configure_logging(level, "json")
    logging.getLogger("httpx").info("HTTP Request: POST https://provider.example/send")
    logging.getLogger("httpx").warning("something went wrong")
    err = capsys.readouterr().err
    assert err.count("HTTP Request") == request_lines
    assert "something went wrong" in err
    configure_logging("INFO", "json")


def test_a_library_repeating_itself_is_shown_once_per_window_with_a_count(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr("switchboard.logs.time.monotonic", lambda: clock[0])
    configure_logging("INFO", "json")
    retrying = logging.getLogger("aiokafka.test")
    for _ in range(50):  # Kafka away: a retry every 100 ms
        retrying.error("Unable to update metadata from %s", [1])
        clock[0] += 0.1
    retrying.warning("Got error produce response: %s", "NodeNotReadyError")  # another message
    for _ in range(3):
        get_logger("switchboard.test").warning("ours are never held back")
    clock[0] += 60
    retrying.error("Unable to update metadata from %s", [1])
    events = [orjson.loads(line)["event"] for line in capsys.readouterr().err.splitlines()]
    assert events == [
        "Unable to update metadata from [1]",
        "Got error produce response: NodeNotReadyError",
        *["ours are never held back"] * 3,
        "Unable to update metadata from [1] (and 49 more like it in the 65s before)",
    ]


def test_an_error_without_text_is_named_by_its_type(capsys: pytest.CaptureFixture[str]) -> None:
    """A broker that never answers: aiokafka's line said only `Unable connect to "...": `."""
    configure_logging("INFO", "json")
    logging.getLogger("aiokafka").error('Unable connect to "%s:%s": %s', "10.0.0.9", 9092,
                                        TimeoutError())
    logging.getLogger("aiokafka").error("Unable connect to node with id %s: %s", 1,
                                        OSError("Connection refused"))
    events = [orjson.loads(line)["event"] for line in capsys.readouterr().err.splitlines()]
    assert events == ['Unable connect to "10.0.0.9:9092": TimeoutError',
                      "Unable connect to node with id 1: Connection refused"]


def test_a_secret_holding_another_is_masked_whole() -> None:
    # A password inside the credentials built from it: masked first, the shorter one left the
    # rest of the longer one in the line ("***-and-more").
    nested = [f"inner-secret-{'x' * n}" for n in range(20)]
    register_secrets(nested)
    assert scrub(f"got {nested[-1]}-and-more") == "got ***-and-more"
    assert scrub(f"got <{nested[-1]}>") == "got <***>"


def test_a_secret_inside_an_object_logged_as_it_is_is_masked(
        capsys: pytest.CaptureFixture[str]) -> None:
    # Only strings, dicts and lists were scrubbed: an exception or a URL object given as a
    # value was written as its repr() by the renderer, secret and all.
    configure_logging("INFO", "json")
    register_secrets(["obj-s3cr3t-value"])
    get_logger("test").warning("failed", error=ValueError("token obj-s3cr3t-value refused"),
                               url=httpx.URL("https://acme:pa55-word@api.example.com/send"),
                               attempts=3, ratio=0.5, nothing=None, ok=True)
    logging.getLogger("third.party").warning("with %s", "args")  # a library's record still works
    line, library = (orjson.loads(text) for text in capsys.readouterr().err.splitlines())
    assert line["error"] == "ValueError('token *** refused')"
    assert line["url"] == "URL('https://acme:***@api.example.com/send')"
    assert (line["attempts"], line["ratio"], line["nothing"], line["ok"]) == (3, 0.5, None, True)
    assert library["event"] == "with args"


def test_a_console_line_cannot_be_forged_by_a_value_from_a_request(
        capsys: pytest.CaptureFixture[str]) -> None:
    # An account name from a URL with %0A, or an ANSI sequence, was written as it was by the
    # console renderer (JSON lines escape it): a line of the attacker's making, or a terminal
    # cleared and recoloured, in the log someone reads.
    configure_logging("INFO", "console")
    forged = "acme\n2025-01-01T00:00:00Z [error    ] kafka lost everything"
    ansi = "acme\x1b[2K\x1b[1Gkafka-lost"  # no space nor quote: structlog wrote it raw
    try:
        get_logger("ingest.test").warning("webhook for unknown account", account=forged,
                                          path=ansi, separator="a\u2028b", plain="café")
        logging.getLogger("third.party").warning("unknown %s", "x\r\ny")
        try:
            raise ValueError("bad\x1b[31m value")
        except ValueError:
            get_logger("ingest.test").exception("crashed")
    finally:
        configure_logging("INFO", "json")
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\r" not in err and "\u2028" not in err
    lines = err.splitlines()
    assert not any(line.startswith("2025-01-01T00:00:00Z") for line in lines)
    assert r"account='acme\n2025-01-01T00:00:00Z [error    ] kafka lost everything'" in lines[0]
    assert r"path='acme\x1b[2K\x1b[1Gkafka-lost'" in lines[0]
    assert r"separator='a\u2028b'" in lines[0] and "plain=café" in lines[0]
    assert r"unknown x\r\ny" in lines[1]
    assert "crashed" in lines[2] and "Traceback" in err  # a traceback keeps its lines
    assert r"ValueError: bad\x1b[31m value" in err


def test_an_exception_message_cannot_forge_a_console_line(
        capsys: pytest.CaptureFixture[str]) -> None:
    # A traceback keeps its line breaks, so one in the message (request data quoted in an
    # error) started a line of the caller's making: every line of a traceback is indented now,
    # and a log line starts at its first column.
    configure_logging("INFO", "console")
    forged = "2025-01-01T00:00:00Z [error    ] kafka lost everything"
    try:
        try:
            try:
                raise RuntimeError(f"no account acme\n{forged}")
            except RuntimeError as exc:
                raise ValueError(f"bad\n{forged}") from exc
        except ValueError:
            get_logger("ingest.test").exception("crashed")
    finally:
        configure_logging("INFO", "json")
    lines = capsys.readouterr().err.splitlines()
    assert "crashed" in lines[0] and not lines[0].startswith(" ")
    assert all(line.startswith("    ") for line in lines[1:] if line), lines
    traceback = [line[4:] for line in lines[1:]]  # its structure is kept, one level in
    assert traceback.count(forged) == 2  # shown, each in its exception's message
    assert "Traceback (most recent call last):" in traceback
    assert "ValueError: bad" in traceback and "RuntimeError: no account acme" in traceback
    assert any(line.startswith("  File ") for line in traceback)

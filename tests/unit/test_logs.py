from __future__ import annotations

import logging

import orjson
import pytest

from switchboard.logs import configure_logging, get_logger, register_secrets


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

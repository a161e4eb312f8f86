"""`run` has one ingest process: SWITCHBOARD_HTTP_WORKERS, set for `serve` (perhaps in an env
file `run` shares), was ignored without a word, as SWITCHBOARD_METRICS_PORT no longer is."""

from __future__ import annotations

from pathlib import Path

import pytest

from switchboard.cli.run import _prepare
from switchboard.settings import Settings

REPO = Path(__file__).parents[2]


def test_http_workers_set_for_serve_are_said_to_be_unread_by_run(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(REPO)
    assert _prepare(Settings()) is not None
    assert "SWITCHBOARD_HTTP_WORKERS" not in capsys.readouterr().err
    assert _prepare(Settings().model_copy(update={"http_workers": 4})) is not None
    warning = capsys.readouterr().err
    assert warning.startswith("warning: SWITCHBOARD_HTTP_WORKERS=4 is not read by run: its "
                              "ingest is one process (`serve --workers N` runs more)")

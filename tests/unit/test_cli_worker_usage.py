"""`switchboard worker` without a name says which there are."""

from __future__ import annotations

import pytest

from switchboard.cli import main


def test_worker_without_a_name_lists_the_workers(capsys: pytest.CaptureFixture[str]) -> None:
    # It said only "the following arguments are required: name".
    with pytest.raises(SystemExit) as stopped:
        main(["worker"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "usage: switchboard worker [-h] [--bot BOT] {sender,keywords,autoreply,bot}" in err
    assert err.rstrip().endswith(
        "error: the following arguments are required: {sender,keywords,autoreply,bot}")

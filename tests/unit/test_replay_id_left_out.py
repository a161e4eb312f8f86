"""`switchboard replay --id X` with another filter that leaves X's letter out (`--reason`,
`--account`, ...): the letter is in the window, and is said so, with the filters that left it
out; it was said "not found in the window", then a hint about which id each source takes,
which sent one looking for another id. Exit 3 either way: an asked-for letter was not replayed.
Kafka is not needed: the window is a stand-in of letters."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest

from ingest.kept import Selection, read_kept
from ingest.replay import left_out_by
from switchboard.cli import main
from switchboard.settings import get_settings
from tests.unit.test_replay_reason_filter import letter_value, window_of


@pytest.fixture
def offline_replay(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    async def reached(*args: object) -> None:
        pass

    get_settings.cache_clear()
    monkeypatch.setattr("switchboard.cli.replay.reach_kafka", reached)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")  # nothing listens there
    monkeypatch.setattr("ingest.replay.read_window", window_of([
        letter_value("dl-1", "KeyError: 'results'"),  # of infobip, account acme, normalize
        letter_value("dl-2", "HTTPStatusError: 503 from the provider")]))
    yield
    get_settings.cache_clear()


@pytest.mark.usefixtures("offline_replay")
@pytest.mark.parametrize(("filters", "said"), [
    (["--reason", "HTTPStatusError"], "dl-1 (by --reason)"),
    (["--account", "other"], "dl-1 (by --account)"),
    (["--account", "other", "--reason", "timeout", "--provider", "infobip"],
     "dl-1 (by --account, --reason)"),
    (["--stage", "sender"], "dl-1 (by --stage)"),
])
def test_an_id_the_other_filters_left_out_is_said_to_be_in_the_window(
        capsys: pytest.CaptureFixture[str], filters: list[str], said: str) -> None:
    assert main(["replay", "--dry-run", "--id", "dl-1", *filters]) == 3
    out, err = capsys.readouterr()
    assert out == ""
    assert f"in the window, but left out by the other filters: {said}\n" in err
    assert "not found" not in err and "hint:" not in err


@pytest.mark.usefixtures("offline_replay")
def test_ids_left_out_and_ids_not_in_the_window_are_each_said(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "--dry-run", "--id", "dl-1", "--id", "dl-2", "--id", "dl-gone",
                 "--reason", "HTTPStatusError"]) == 3
    out, err = capsys.readouterr()
    assert [orjson.loads(line)["id"] for line in out.splitlines()] == ["dl-2"]
    assert "in the window, but left out by the other filters: dl-1 (by --reason)\n" in err
    assert "not found in the window: dl-gone\nhint: --id takes a dead letter's " in err


def test_only_the_filters_that_leave_the_letter_out_are_named() -> None:
    kept = read_kept("dead-letter", letter_value("dl-1", "KeyError: 'results'"))
    selection = Selection(ids=frozenset({"dl-1"}), providers=frozenset({"infobip"}),
                          accounts=frozenset({"acme", "other"}),
                          stages=frozenset({"worker:sender"}), reasons=frozenset({"timeout"}))
    assert left_out_by(selection, kept) == ["stage", "reason"]

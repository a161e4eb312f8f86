"""What `--help` tells a new user setting the simulator and a bot of their own up by hand."""

from __future__ import annotations

import pytest

from switchboard.cli import build_parser


def _help(command: str, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    return " ".join(capsys.readouterr().out.split())  # argparse wraps to the terminal


@pytest.mark.parametrize(("command", "says"), [
    # `simulate --port 18090` beside a `worker sender` on the demo accounts: every send failed
    # with "ConnectError: All connection attempts failed", and nothing said the accounts name
    # port 8090 (`run` moves them; `simulate` alone cannot).
    ("simulate", "the demo accounts': 127.0.0.1:8090): on another port, give the sender "
                 "accounts that name it"),
    # It said only SWITCHBOARD_PUBLIC_URL, which is unset in a demo: where did webhooks go?
    ("simulate", "default: SWITCHBOARD_PUBLIC_URL, else "
                 "http://SWITCHBOARD_HTTP_HOST:SWITCHBOARD_HTTP_PORT (127.0.0.1:8080)"),
    # `--bot mybot:bot` under a process manager (working directory /) cannot import it.
    ("worker", "as module:function, imported from the current directory or PYTHONPATH"),
])
def test_help_says_what_a_manual_setup_needs(command: str, says: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert says in _help(command, capsys)


@pytest.mark.parametrize("media", ["photo.jpg", "/tmp/photo.jpg", "file:///tmp/photo.jpg"])
def test_send_refuses_media_that_is_no_http_url(media: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    # `--media photo.jpg` ("a file to send", said the help) was published as it was: the
    # provider cannot fetch a path on this machine.
    with pytest.raises(SystemExit) as stopped:
        build_parser().parse_args(["send", "demo-infobip", "+41790001111", "--media", media])
    assert stopped.value.code == 2
    said = " ".join(capsys.readouterr().err.split())
    assert "argument --media: must be an http(s) URL, e.g. https://example.com/photo.jpg " \
           "(the provider fetches it; not a local file)" in said


def test_send_takes_media_urls() -> None:
    args = build_parser().parse_args(["send", "demo-infobip", "+41790001111",
                                      "--media", "https://example.com/a.png",
                                      "--media", "http://127.0.0.1:8000/b.pdf"])
    assert args.media == ["https://example.com/a.png", "http://127.0.0.1:8000/b.pdf"]

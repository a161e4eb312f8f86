"""What `--help` tells of tail, replay, send, worker and run: what a user would otherwise trip
over."""

from __future__ import annotations

import pytest

from switchboard.cli import build_parser


def _help(command: str, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    return " ".join(capsys.readouterr().out.split())  # argparse wraps to the terminal


def test_tail_says_it_starts_from_the_newest_and_how_topics_are_named(
        capsys: pytest.CaptureFixture[str]) -> None:
    # `tail --topic X` on a quiet topic printed nothing, and --help did not say why.
    said = _help("tail", capsys)
    assert "from the newest: records already there are shown only with --all" in said
    assert "(without SWITCHBOARD_KAFKA_NAME_PREFIX)" in said
    # Ctrl-C was listed as exit 0, unlike replay's and send's 130: a script could not tell
    # an interrupted tail from one that printed its --limit.
    assert "Exit 0 after --limit records, 130 on Ctrl-C, 1 when Kafka cannot be reached" in said


@pytest.mark.parametrize(("command", "says"), [
    ("replay", "3 when some still fail, were skipped or an --id was not found"),
    ("send", "3 when no result came within --wait"),
    ("send", "130 on Ctrl-C"),
    # A script or process manager could not tell a clean stop from one before the start.
    ("worker", "Exit 0 once stopped (SIGTERM, also while it starts; Ctrl-C; SIGHUP from its "
               "terminal closing: any other SIGHUP stops no worker, the bots reload their "
               "rules on it), 1 when Kafka cannot be reached, refuses it (ACLs, its group's "
               "session timeout) or ends its start otherwise, a topic is "
               "missing or a record stopped it"),
    ("worker", "130 for Ctrl-C before it started"),
    ("run", "Exit 0 once stopped (Ctrl-C, SIGTERM, SIGHUP), 1 when Kafka cannot be used"),
    ("run", "130 for Ctrl-C before Kafka was ready"),
    # `kafka --help` said nothing but -h: not where the data is kept, nor how it ends.
    ("kafka", "its data under SWITCHBOARD_DATA_DIR (.switchboard/kafka), kept across restarts"),
    # SIGHUP was missing: a closed terminal ended it at once, its JVM still shutting down.
    ("kafka", "Exit 0 once stopped (Ctrl-C, SIGTERM, SIGHUP), or at once when "
              "KAFKA_BOOTSTRAP_SERVERS is set"),
    ("kafka", "130 for Ctrl-C before it was ready"),
    # serve had no epilog: nothing said a closed terminal (SIGHUP) stops it cleanly too.
    ("serve", "Exit 0 once stopped (Ctrl-C, SIGTERM, SIGHUP: in-flight requests answered"),
    # simulate had no epilog: a closed terminal (SIGHUP) ended it at once, unsaid.
    ("simulate", "Exit 0 once stopped (Ctrl-C, SIGTERM, SIGHUP; not under nohup)"),
    ("tail", "129 when its terminal is closed (SIGHUP; not under nohup)"),
    ("send", "129 when its terminal is closed (SIGHUP; not under nohup)"),
    # normalize had no epilog: its exit codes were in the README only.
    ("normalize", "2 when the file cannot be read, the webhook is refused (the reason on "
                  "stderr)"),
])
def test_each_command_says_its_exit_codes(command: str, says: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert says in _help(command, capsys)


@pytest.mark.parametrize(("command", "says"), [
    # `run --help` showed only -h: not what it starts, on which ports, nor with which files.
    ("run", "ingest on SWITCHBOARD_HTTP_PORT (8080)"),
    ("run", "the provider simulator on SWITCHBOARD_SIMULATOR_PORT (8090)"),
    ("run", "with examples/accounts.toml and examples/rules.toml unless"),
    # serve, worker and simulate said nothing of the settings they need: a new user learnt
    # them one error at a time.
    ("serve", "Needs KAFKA_BOOTSTRAP_SERVERS and SWITCHBOARD_ACCOUNTS_FILE"),
    ("worker", "Needs KAFKA_BOOTSTRAP_SERVERS and SWITCHBOARD_ACCOUNTS_FILE; the bots read "
               "SWITCHBOARD_RULES_FILE"),
    ("simulate", "the accounts of SWITCHBOARD_ACCOUNTS_FILE (examples/accounts.toml when unset)"),
])
def test_the_services_say_what_they_start_and_the_settings_they_need(
        command: str, says: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert says in _help(command, capsys)


@pytest.mark.parametrize(("command", "says"), [
    # normalize and schema had no description: --help showed their options only.
    ("normalize", "print the events ingest would store for it, as JSON lines, with no Kafka "
                  "nor server"),
    ("schema", "Print the JSON Schema of the message event"),
    ("schema", "with --outbound those of the outbound command and of the sender's result"),
])
def test_the_tools_say_what_they_do(command: str, says: str,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert says in _help(command, capsys)


def test_the_command_list_says_schema_prints_outbound_schemas_too(
        capsys: pytest.CaptureFixture[str]) -> None:
    # It said "the JSON Schema of the message event" only, though --outbound exists.
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    said = " ".join(capsys.readouterr().out.split())
    assert "schema print a JSON Schema: the message event, or outbound commands and results" \
        in said

"""Rules reload on change or SIGHUP; an invalid new file keeps the old rules."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from consumers.bots import rules_source as rules_source_module
from consumers.bots.compiled import RuleSet
from consumers.bots.rules import RulesError, load_rules
from consumers.bots.rules_source import RulesSource

GOOD = '[accounts.a]\nhelp_text = "v{n}"\n'


def _write(path: Path, text: str, bump: int) -> None:
    path.write_text(text)
    stamp = time.time() + bump  # a distinct mtime even on coarse filesystems
    os.utime(path, (stamp, stamp))


def test_reloads_on_change_and_keeps_old_rules_when_new_are_invalid(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    _write(path, GOOD.replace("{n}", "1"), 0)
    source = RulesSource(path, check_every_s=0)
    assert source.rules_for("a").config.help_text == "v1"

    _write(path, GOOD.replace("{n}", "2"), 10)
    assert source.rules_for("a").config.help_text == "v2"

    _write(path, '[accounts.a]\nrules = [{ reply = "no matcher" }]\n', 20)
    assert source.rules_for("a").config.help_text == "v2", "invalid rules must not replace"


def test_a_requested_reload_reads_the_file_even_when_its_time_is_the_same(
        tmp_path: Path) -> None:
    """What SIGHUP does to a bot worker (WorkerRuntime.on_hang_up is request_reload)."""
    path = tmp_path / "rules.toml"
    _write(path, GOOD.replace("{n}", "1"), 0)
    source = RulesSource(path, check_every_s=3600)
    path.write_text(GOOD.replace("{n}", "9"))  # same second: mtime may not change
    source.request_reload()
    assert source.rules_for("a").config.help_text == "v9"


def test_invalid_file_fails_at_start_naming_file_account_and_rule(tmp_path: Path) -> None:
    path = tmp_path / "bots.toml"
    path.write_text('[accounts.shop]\nrules = [{ keyword = "a", reply = "x" }, '
                    '{ regex = "(", reply = "y" }]\n')
    with pytest.raises(RulesError) as caught:
        RulesSource(path)
    assert str(caught.value).startswith(f"{path}: account 'shop': rule 2: regex '(' is invalid")


def test_accounts_without_rules_still_get_compliance(tmp_path: Path) -> None:
    source = RulesSource(None)
    account = source.rules_for("anyone")
    assert "stop" in account.stop_words and account.fallback is None


async def test_changes_are_picked_up_without_any_message(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    _write(path, GOOD.replace("{n}", "1"), 0)
    source = RulesSource(path, check_every_s=0.05)
    watching = asyncio.create_task(source.watch())
    try:
        _write(path, GOOD.replace("{n}", "2"), 10)
        for _ in range(100):  # bounded: up to ~5 s
            if (found := source.current.for_account("a")) and found.config.help_text == "v2":
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the change was not loaded")
    finally:
        watching.cancel()


def test_an_edit_saved_as_latin1_keeps_the_old_rules_and_says_why(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    _write(path, GOOD.replace("{n}", "1"), 0)
    source = RulesSource(path, check_every_s=0)
    path.write_bytes('[accounts.a]\nhelp_text = "Répondez STOP"\n'.encode("latin-1"))
    os.utime(path, (time.time() + 10, time.time() + 10))
    assert source.rules_for("a").config.help_text == "v1"  # not a UnicodeDecodeError
    with pytest.raises(RulesError, match="cannot read it: not UTF-8 text"):
        RulesSource(path)


def _write_at(path: Path, text: str, stamp: float) -> None:
    path.write_text(text)
    os.utime(path, (stamp, stamp))


def test_a_save_ending_in_the_tick_of_a_half_written_read_is_still_loaded(
        tmp_path: Path) -> None:
    # Before: the time alone said whether the file changed. A read of the file half-written
    # (here: its first account) and the end of the save in the same clock tick left the bot
    # on half the rules until the next edit.
    path = tmp_path / "rules.toml"
    settled = time.time() - 60
    _write_at(path, GOOD.replace("{n}", "1"), settled - 60)
    source = RulesSource(path, check_every_s=0)
    whole = GOOD.replace("{n}", "2") + '[accounts.b]\nhelp_text = "b2"\n'
    _write_at(path, GOOD.replace("{n}", "2"), settled)  # the half a read caught
    assert source.rules_for("b").config.help_text != "b2"
    _write_at(path, whole, settled)  # the rest, the same tick
    assert source.rules_for("b").config.help_text == "b2"


def test_a_file_written_a_moment_ago_is_read_once_it_has_settled(tmp_path: Path) -> None:
    # An editor may still be writing it: read now, half the rules would apply until the
    # next check (or, half-written past a line, be refused as invalid: a false alarm).
    path = tmp_path / "rules.toml"
    _write_at(path, GOOD.replace("{n}", "1"), time.time() - 60)
    source = RulesSource(path, check_every_s=0)
    _write_at(path, GOOD.replace("{n}", "2"), time.time())
    assert source.rules_for("a").config.help_text == "v1"
    os.utime(path, (time.time() - 2, time.time() - 2))  # now settled
    assert source.rules_for("a").config.help_text == "v2"


@pytest.mark.parametrize(("edit", "reason"), [
    # re and regex refuse these with OverflowError and RecursionError, not their own errors.
    ('[accounts.a]\nrules = [{ regex = "a{99999999999}", reply = "x" }]\n',
     "rule 1: regex 'a{99999999999}' is invalid: the repetition number is too large"),
    ('[accounts.a]\nrules = [{ regex = "' + "(" * 5000 + ")" * 5000 + '", reply = "x" }]\n',
     "rule 1: regex '((((("),
    # tomllib reads nested arrays by recursion.
    ("[accounts.a]\nown_numbers = " + "[" * 5000 + "]" * 5000 + "\n",
     "cannot read it: arrays or tables nested too deeply"),
    ("[accounts.a]\nreply_limit = " + "9" * 5000 + "\n",  # Python's int() refuses it
     "not valid TOML: Exceeds the limit (4300 digits) for integer string conversion"),
], ids=["huge-repetition", "deep-regex", "deep-toml", "huge-integer"])
def test_an_edit_python_cannot_compile_or_parse_keeps_the_old_rules_and_says_why(
        tmp_path: Path, edit: str, reason: str) -> None:
    """Such an edit raised out of the reload: each message then failed (retried, dead-lettered)
    instead of being answered by the old rules, and the start-up said it with a traceback."""
    path = tmp_path / "rules.toml"
    _write(path, GOOD.replace("{n}", "1"), 0)
    source = RulesSource(path, check_every_s=0)
    _write(path, edit, 10)
    assert source.rules_for("a").config.help_text == "v1"
    with pytest.raises(RulesError) as caught:
        RulesSource(path)
    assert reason in str(caught.value)


def test_a_save_while_the_rules_are_first_read_is_loaded_at_the_next_check(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The file's state was taken after the first read: a save landing during it was taken
    as read, and the old rules served until the file changed again."""
    path = tmp_path / "rules.toml"
    _write(path, GOOD.replace("{n}", "1"), -10)
    def read_then_saved(where: Path) -> RuleSet:
        rules = load_rules(where)
        if rules.accounts["a"].config.help_text == "v1":
            _write(path, GOOD.replace("{n}", "2") + "# saved during the read\n", -5)
        return rules

    monkeypatch.setattr(rules_source_module, "load_rules", read_then_saved)
    source = RulesSource(path, check_every_s=0)
    assert source.rules_for("a").config.help_text == "v2"


def test_a_compliance_text_beginning_with_a_word_bots_answer_is_warned_of(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """"HELP: Acme alerts..." is answered by a bot like ours at the other end with its help
    text, and if that begins so too the two answer each other until compliance_reply_limit
    holds them back, in every window. Loaded as before (such files exist), with a warning at
    each load."""
    path = tmp_path / "rules.toml"
    _write(path, '[accounts.a]\nhelp_text = "Help: Acme alerts. Reply STOP to opt out."\n'
                 '[accounts.b]\nhelp_text = "Acme alerts. Reply STOP to opt out."\n', 0)
    source = RulesSource(path, check_every_s=0)
    assert source.rules_for("a").config.help_text.startswith("Help:")
    warned = [r for r in caplog.records if "begins with a word bots answer" in r.getMessage()]
    assert len(warned) == 1 and "'account': 'a'" in warned[0].getMessage()
    assert "help_text" in warned[0].getMessage()

    caplog.clear()
    _write(path, '[accounts.a]\nstop_confirmation = "STOP received: no more messages."\n', 10)
    assert source.rules_for("a").config.stop_confirmation.startswith("STOP")
    assert "'setting': 'stop_confirmation'" in caplog.text


def test_a_blank_compliance_text_is_warned_of(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """stop_confirmation = "" loaded silently, and every STOP then went unconfirmed (HELP
    unanswered for a blank help_text). Loaded (a provider may send the confirmation itself),
    with a warning at each load."""
    path = tmp_path / "rules.toml"
    _write(path, '[accounts.a]\nstop_confirmation = ""\nhelp_text = "  "\n'
                 '[accounts.b]\nhelp_text = "Acme alerts. Reply STOP to opt out."\n', 0)
    RulesSource(path, check_every_s=0)
    warned = [r.getMessage() for r in caplog.records
              if "a compliance text is blank" in r.getMessage()]
    assert len(warned) == 2 and all("'account': 'a'" in line for line in warned)
    assert "'setting': 'help_text'" in warned[0] and "stop_confirmation" in warned[1]

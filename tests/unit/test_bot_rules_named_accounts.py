"""A rules file that names what is not there: a section for an account the accounts file does
not have (a typo, warned of at each load), and a blank auto-reply or fallback (refused, as a
blank keyword is). Each loaded silently, and an account's messages went unanswered with no
word of why."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from consumers import workers
from consumers.bots.rules import RulesError, load_rules, parse_rules
from consumers.bots.rules_source import RulesSource
from switchboard.accounts import Accounts, parse_accounts
from switchboard.settings import Settings
from tests.fakes import CaughtUpTable

UNKNOWN = "a section for an account the accounts file does not have"


def _write(path: Path, text: str, bump: int) -> None:
    path.write_text(text)
    stamp = time.time() + bump  # a distinct mtime even on coarse filesystems
    os.utime(path, (stamp, stamp))


def _warned(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if UNKNOWN in r.getMessage()]


def test_a_section_for_an_account_not_in_the_accounts_file_is_warned_of_at_each_load(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "rules.toml"
    _write(path, '[accounts.acmee]\nfallback = "Reply HELP."\n'
                 '[accounts.shop]\nfallback = "Reply HELP."\n'
                 '[accounts."*"]\nhelp_text = "Reply STOP to opt out."\n', 0)
    source = RulesSource(path, check_every_s=0, accounts=["acme", "shop", "billing"])
    warned = _warned(caplog)
    # "*" and an account of the accounts file are not named; the typo is, with its account.
    assert len(warned) == 1
    assert "'account': 'acmee'" in warned[0] and "'did_you_mean': 'acme'" in warned[0]

    caplog.clear()
    _write(path, '[accounts.ACME]\nfallback = "Reply HELP."\n'
                 '[accounts.zzz-old]\nfallback = "Reply HELP."\n', 10)
    source.maybe_reload()
    assert "ACME" in source.current.accounts  # reloaded: the warning is of these rules
    warned = _warned(caplog)
    assert len(warned) == 2
    assert "'account': 'ACME'" in warned[0] and "'did_you_mean': 'acme'" in warned[0]
    # Nothing close (an account taken out of the accounts file first): named, no guess.
    assert "'account': 'zzz-old'" in warned[1] and "'did_you_mean': None" in warned[1]


def test_the_guess_is_an_account_without_a_section_of_its_own(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """acme has its rules: acmee is no typo of it, and billing is nothing like it."""
    path = tmp_path / "rules.toml"
    path.write_text('[accounts.acme]\nfallback = "A"\n[accounts.acmee]\nfallback = "B"\n')
    RulesSource(path, check_every_s=0, accounts=["acme", "billing"])
    warned = _warned(caplog)
    assert len(warned) == 1 and "'did_you_mean': None" in warned[0]


def test_without_the_accounts_nothing_is_said(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "rules.toml"
    path.write_text('[accounts.acmee]\nfallback = "Reply HELP."\n')
    RulesSource(path, check_every_s=0)
    assert _warned(caplog) == []


def test_the_example_rules_name_only_the_example_accounts(
        caplog: pytest.LogCaptureFixture) -> None:
    """`make run` reads both: its start says nothing of the kind."""
    from switchboard.accounts import load_accounts

    examples = Path(__file__).resolve().parents[2] / "examples"
    names = [account.name for account in load_accounts(examples / "accounts.toml")]
    RulesSource(examples / "rules.toml", check_every_s=0, accounts=names)
    assert _warned(caplog) == []


def _accounts(*names: str) -> Accounts:
    auth = {"scheme": "basic", "username": "ib", "secrets": ["named-accounts-webhook"]}
    return parse_accounts({"accounts": {name: {"provider": "infobip", "auth": auth}
                                        for name in names}})


@pytest.mark.parametrize("worker", ["keywords", "autoreply"])
async def test_a_bot_worker_starting_warns_of_a_section_for_no_account(
        worker: str, tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers, "CompactedTable", CaughtUpTable)
    rules = tmp_path / "rules.toml"
    rules.write_text('[accounts.acmee]\nauto_reply = { text = "Got it." }\n')
    settings = Settings(kafka_bootstrap_servers="127.0.0.1:1", create_topics=False,
                        metrics_port=None, rules_file=rules)
    async with workers.WORKERS[worker](settings, _accounts("acme", "billing")):
        warned = _warned(caplog)
        assert len(warned) == 1
        assert "'account': 'acmee'" in warned[0] and "'did_you_mean': 'acme'" in warned[0]


@pytest.mark.parametrize(("written", "text"), [('""', ""), ('"   "', "   "),
                                              ('"\\n\\t"', "\n\t")])
def test_a_blank_auto_reply_is_refused_naming_the_account(written: str, text: str,
                                                          tmp_path: Path) -> None:
    """It loaded, the start-up warning "no account has auto_reply" counted it as one, and
    `worker autoreply` ran answering no message."""
    path = tmp_path / "rules.toml"
    path.write_text(f"[accounts.acme]\nauto_reply = {{ text = {written}, cooldown_s = 60 }}\n")
    with pytest.raises(RulesError) as caught:
        load_rules(path)
    assert str(caught.value) == (
        f"{path}: account 'acme' (line 1): auto_reply.text: text {text!r} is blank: it would "
        "answer no message; to have no auto-reply, leave auto_reply out")


def test_an_auto_reply_of_a_template_that_may_render_blank_still_loads() -> None:
    """"{rest}" is blank for some messages only: those get no auto-reply (handler.py)."""
    rules = parse_rules({"accounts": {"acme": {"auto_reply": {"text": "{rest}"}}}})
    assert workers._no_auto_reply(rules, ["acme"]) is None


@pytest.mark.parametrize(("written", "text"), [('"   "', "   "), ('"\\n\\t"', "\n\t")])
def test_a_blank_fallback_is_refused_naming_the_account_and_its_line(
        written: str, text: str, tmp_path: Path) -> None:
    """It loaded as a fallback, and answered each message no rule answers with nothing."""
    path = tmp_path / "rules.toml"
    path.write_text(f'[accounts.shop]\nfallback = "Reply HELP."\n\n'
                    f"[accounts.acme]\nfallback = {written}\n")
    with pytest.raises(RulesError) as caught:
        load_rules(path)
    assert str(caught.value) == (
        f"{path}: account 'acme' (line 4): fallback: fallback {text!r} is blank: it would "
        "answer no message; to have no fallback, leave it out")


def test_an_empty_fallback_is_still_no_fallback() -> None:
    """As one left out: a file that says so loads as before."""
    rules = parse_rules({"accounts": {"acme": {"fallback": ""}}})
    account = rules.for_account("acme")
    assert account is not None and account.fallback is None


COMPOSED, DECOMPOSED = "caf\u00e9", "cafe\u0301"  # "café" both ways: they look the same


@pytest.mark.parametrize(("in_accounts", "in_rules"), [(COMPOSED, DECOMPOSED),
                                                      (DECOMPOSED, COMPOSED),
                                                      (COMPOSED, COMPOSED)])
def test_a_section_is_the_accounts_in_either_unicode_form(
        in_accounts: str, in_rules: str, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """The accounts file takes a name in either form, and events spell it as that file does:
    a section written the other way was never used (the account got "*"'s rules), and was
    warned of as for no account, its did_you_mean looking the same as it."""
    path = tmp_path / "rules.toml"
    path.write_text(f'[accounts."{in_rules}"]\nfallback = "Sorry, café closed."\n'
                    '[accounts."*"]\nfallback = "Reply HELP."\n', encoding="utf-8")
    names = [account.name for account in _accounts(in_accounts, "acme")]
    source = RulesSource(path, check_every_s=0, accounts=names)
    assert source.rules_for(in_accounts).config.fallback == "Sorry, café closed."
    assert source.rules_for("acme").config.fallback == "Reply HELP."
    assert _warned(caplog) == []


def test_case_still_tells_sections_apart(tmp_path: Path,
                                          caplog: pytest.LogCaptureFixture) -> None:
    """Only the Unicode form is read as the accounts file reads it: that file's names are
    compared in their case too."""
    path = tmp_path / "rules.toml"
    path.write_text('[accounts."CAF\u00c9"]\nfallback = "A"\n', encoding="utf-8")
    source = RulesSource(path, check_every_s=0, accounts=[COMPOSED])
    assert source.current.for_account(COMPOSED) is None
    assert len(_warned(caplog)) == 1


@pytest.mark.parametrize("text", [
    f'[accounts."{COMPOSED}"]\nfallback = "A"\n\n[accounts."{DECOMPOSED}"]\nfallback = "B"\n',
    f'accounts = {{ "{COMPOSED}" = {{ fallback = "A" }}, "{DECOMPOSED}" = {{}} }}\n'])
def test_two_sections_of_one_name_in_both_forms_are_refused(text: str, tmp_path: Path) -> None:
    """Either form is the account's: one of the two would never be used."""
    path = tmp_path / "rules.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RulesError) as caught:
        load_rules(path)
    where = " (lines 1 and 4)" if text.startswith("[") else ""
    assert str(caught.value) == (
        f"{path}: accounts 'caf\\xe9' and 'cafe\\u0301'{where} are the same name once "
        "Unicode-normalized (NFC): an account is looked up in either form, so one of them "
        "would never be used; merge them")


IDLE = "no account has auto_reply in the rules file"
GOT_IT = 'auto_reply = { text = "Got it." }\n'


@pytest.mark.parametrize(("rules_text", "idle"), [
    # Only under a section for no account: that counted, and nothing was said.
    (f"[accounts.acmee]\n{GOT_IT}", True),
    # "*"'s is no account's where each has its own section without one.
    (f'[accounts."*"]\n{GOT_IT}[accounts.acme]\n[accounts.billing]\n'
     f'[accounts."{COMPOSED}"]\n', True),
    (f'[accounts."*"]\n{GOT_IT}[accounts.acme]\n', False),  # billing gets it
    (f"[accounts.billing]\n{GOT_IT}", False),
    (f'[accounts."{DECOMPOSED}"]\n{GOT_IT}', False),  # the account café's, in its other form
])
async def test_autoreply_starting_counts_only_what_answers_an_account(
        rules_text: str, idle: bool, tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers, "CompactedTable", CaughtUpTable)
    rules = tmp_path / "rules.toml"
    rules.write_text(rules_text, encoding="utf-8")
    settings = Settings(kafka_bootstrap_servers="127.0.0.1:1", create_topics=False,
                        metrics_port=None, rules_file=rules)
    async with workers.WORKERS["autoreply"](settings, _accounts("acme", "billing", COMPOSED)):
        said = [r.getMessage() for r in caplog.records if IDLE in r.getMessage()]
        assert len(said) == (1 if idle else 0)

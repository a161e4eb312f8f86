"""A rules file's errors say the line of the rule they name, when it can be found surely."""

from __future__ import annotations

from pathlib import Path

import pytest

from consumers.bots.rules import RulesError, load_rules

GOOD_RULE = '[[accounts.acme.rules]]\nkeyword = "price"\nreply = "From 10 EUR"\n'


def error_of(tmp_path: Path, text: str, newline: str = "\n") -> str:
    path = tmp_path / "rules.toml"
    path.write_bytes(text.replace("\n", newline).encode())
    with pytest.raises(RulesError) as caught:
        load_rules(path)
    return str(caught.value)


@pytest.mark.parametrize(("bad_rule", "problem"), [
    ('keyword = "order"\n', "rule 2 (line 13).reply: Field required"),
    ('keyword = "order"\nreply = "Order {nope}"\n', "rule 2 (line 13): "),  # a template
    ('keyword = "cancel"\nreply = "x"\n', "rule 2 (line 13): keyword 'cancel' is the stop"),
    ('regex = "(unclosed"\nreply = "x"\n', "rule 2 (line 13): regex '(unclosed' is invalid"),
])
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_an_invalid_rule_is_named_with_its_tables_line(
        tmp_path: Path, bad_rule: str, problem: str, newline: str) -> None:
    """The schema's errors named the account and the rule's number: in a long file, the
    reader counted [[...]] headers by hand."""
    text = ('[accounts.other]\nhelp_text = "Other: reply STOP to opt out."\n\n'
            '[[accounts.other.rules]]\nkeyword = "a"\nreply = "x"\n\n'  # not acme's
            + GOOD_RULE + "\n# the third\n[[ accounts . \"acme\" . rules ]]  # order\n"
            + bad_rule + "\n" + GOOD_RULE)
    message = error_of(tmp_path, text, newline)
    assert message.startswith(f"{tmp_path / 'rules.toml'}: account 'acme': ")
    assert problem in message
    assert text.split("\n")[12].startswith("[[ accounts")


def test_a_header_written_inside_a_multi_line_string_gives_no_line_rather_than_a_wrong_one(
        tmp_path: Path) -> None:
    text = ('[accounts.acme]\nhelp_text = """Rules look like\n[[accounts.acme.rules]]\n'
            'in our docs."""\n\n' + GOOD_RULE + '[[accounts.acme.rules]]\nkeyword = "x"\n')
    message = error_of(tmp_path, text)
    assert "rule 2.reply: Field required" in message and "(line" not in message


def test_rules_written_inline_give_no_line(tmp_path: Path) -> None:
    text = '[accounts.acme]\nrules = [\n  {keyword = "a", reply = "x"},\n  {keyword = "b"},\n]\n'
    message = error_of(tmp_path, text)
    assert "rule 2.reply: Field required" in message and "(line" not in message


def test_lines_are_counted_as_editors_count_them(tmp_path: Path) -> None:
    """A line separator (U+2028) inside a string is no line of the file."""
    text = ('[accounts.acme]\nhelp_text = "One\u2028two. Reply STOP."\n\n'
            + GOOD_RULE + '[[accounts.acme.rules]]\nkeyword = "x"\n')
    assert "rule 2 (line 7).reply: Field required" in error_of(tmp_path, text)


@pytest.mark.parametrize(("setting", "problem"), [
    ("reply_limit = -1", "account 'acme' (line 4): reply_limit: Input should be greater"),
    ('help_text = "Hi {nope}"', "account 'acme' (line 4): template 'Hi {nope}'"),
    ('colour = "blue"', "account 'acme' (line 4): colour: Extra inputs are not permitted"),
])
def test_an_invalid_account_setting_is_named_with_its_tables_line(
        tmp_path: Path, setting: str, problem: str) -> None:
    text = ('[accounts.other]\nfallback = "x"\n\n[ accounts . acme ]  # the shop\n'
            'fallback = "Sorry."\n' + setting + "\n\n" + GOOD_RULE)
    assert problem in error_of(tmp_path, text)


def test_an_account_without_a_table_of_its_own_gives_no_line(tmp_path: Path) -> None:
    text = '[accounts]\nacme.reply_limit = -1\n'
    message = error_of(tmp_path, text)
    assert "account 'acme': reply_limit: Input should be" in message and "(line" not in message


def test_a_file_beginning_with_a_byte_order_mark_loads(tmp_path: Path) -> None:
    """Saved as "UTF-8 with BOM" (Notepad, some Windows editors): refused as 'Invalid statement
    (at line 1, column 1)', which names nothing to fix. Its lines are counted as without it."""
    path = tmp_path / "rules.toml"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD_RULE.encode())
    assert [rule.keyword for rule in load_rules(path).accounts["acme"].rules] == ["price"]
    path.write_bytes(b"\xef\xbb\xbf" + (GOOD_RULE + '[[accounts.acme.rules]]\nkeyword = "x"\n'
                                          ).encode())
    with pytest.raises(RulesError) as caught:
        load_rules(path)
    assert "rule 2 (line 4).reply: Field required" in str(caught.value)

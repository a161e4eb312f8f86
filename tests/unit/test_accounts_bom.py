"""An accounts file saved with a UTF-8 byte order mark (Notepad) is read as without it."""

from __future__ import annotations

from pathlib import Path

from switchboard.accounts import load_accounts

EXAMPLE_ACCOUNTS = Path(__file__).parents[2] / "examples" / "accounts.toml"


def test_a_byte_order_mark_is_not_part_of_the_file(tmp_path: Path) -> None:
    text = EXAMPLE_ACCOUNTS.read_text(encoding="utf-8")
    saved = tmp_path / "accounts.toml"
    saved.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    with_mark = load_accounts(saved)
    without = load_accounts(EXAMPLE_ACCOUNTS)
    assert [a.name for a in with_mark] == [a.name for a in without]
    assert len(with_mark) > 0

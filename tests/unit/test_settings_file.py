"""The settings file (SWITCHBOARD_CONFIG) as editors save it."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from switchboard.settings import Settings
from tests.unit.fakes import run_cli, settings_error


def test_a_config_file_with_a_byte_order_mark_is_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # As Notepad saves it; the accounts and rules files were already read so.
    config = tmp_path / "switchboard.toml"
    config.write_bytes(codecs.BOM_UTF8 + b'http_port = 9000\nlog_level = "DEBUG"\n')
    monkeypatch.setenv("SWITCHBOARD_CONFIG", str(config))
    settings = Settings()
    assert (settings.http_port, settings.log_level) == (9000, "DEBUG")


def test_a_command_starts_with_a_config_file_with_a_byte_order_mark(tmp_path: Path) -> None:
    config = tmp_path / "switchboard.toml"
    config.write_bytes(codecs.BOM_UTF8 + b'log_level = "DEBUG"\n')
    result = run_cli({"SWITCHBOARD_CONFIG": str(config)}, "schema")
    assert result.returncode == 0, result.stderr


def test_a_byte_order_mark_before_bad_toml_is_still_not_valid_toml(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "switchboard.toml"
    config.write_bytes(codecs.BOM_UTF8 + b"http_port = [\n")
    monkeypatch.setenv("SWITCHBOARD_CONFIG", str(config))
    assert str(settings_error()).startswith(f"SWITCHBOARD_CONFIG={config}: not valid TOML: ")


def test_a_byte_that_is_not_utf8_after_a_byte_order_mark_is_named_at_its_offset(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "switchboard.toml"
    config.write_bytes(codecs.BOM_UTF8 + '# café\n'.encode("latin-1"))
    monkeypatch.setenv("SWITCHBOARD_CONFIG", str(config))
    assert str(settings_error()) == (f"SWITCHBOARD_CONFIG={config}: cannot read it: not UTF-8 "
                                     "text (byte 0xe9 at offset 8)")

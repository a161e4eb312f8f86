"""SWITCHBOARD_LOG_LEVEL as operators write it."""

from __future__ import annotations

import pytest

from switchboard.settings import Settings, SettingsError, get_settings


@pytest.mark.parametrize("given", ["WARN", "warn", "Warn", "WARNING", "warning"])
def test_warn_is_the_warning_level(monkeypatch: pytest.MonkeyPatch, given: str) -> None:
    monkeypatch.setenv("SWITCHBOARD_LOG_LEVEL", given)
    assert Settings().log_level == "WARNING"


def test_a_level_that_is_none_is_still_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_LOG_LEVEL", "verbose")
    get_settings.cache_clear()
    try:
        with pytest.raises(SettingsError, match="SWITCHBOARD_LOG_LEVEL"):
            get_settings()
    finally:
        get_settings.cache_clear()

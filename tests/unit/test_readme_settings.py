"""README's *Configuration* table against switchboard/settings.py: a default changed in one and
not the other misleads whoever reads the table (test_settings checks only that each setting is
named there)."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic.fields import FieldInfo

from switchboard.settings import ENV_PREFIX, Settings, env_var_names, env_var_of

README = Path(__file__).resolve().parents[2] / "README.md"
# Defaults the command or the environment decides, not the field: the table says which.
CHOSEN_ELSEWHERE = {
    "SWITCHBOARD_ACCOUNTS_FILE",  # the demo accounts for `run`, required by `serve`
    "SWITCHBOARD_RULES_FILE",  # the demo rules for `run`
    "SWITCHBOARD_PUBLIC_URL",  # made of the HTTP host and port
    "SWITCHBOARD_CACHE_DIR",  # under $XDG_CACHE_HOME or the home directory
}


def _table() -> dict[str, str]:
    """Each variable of the table with its default as the README writes it."""
    section = README.read_text().split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    defaults: dict[str, str] = {}
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        names_cell, default_cell = line.strip("|").split(" | ")[:2]
        names = [ENV_PREFIX + name[1:] if name.startswith("_") else name
                 for name in re.findall(r"`([A-Z_]+)`", names_cell)]
        values = [default_cell] if len(names) == 1 else default_cell.split(" / ")
        if len(values) == 1:  # one default for each: "unset"
            values *= len(names)
        assert len(values) == len(names), line
        for name, value in zip(names, values, strict=True):
            # "unset: start a local broker" and "`.switchboard`" read as "unset", ".switchboard"
            defaults[name] = re.sub(r"\s*\(.*", "", value).split(": ")[0].strip().strip("`")
    return defaults


def _as_written(info: FieldInfo) -> str:
    if info.default_factory is not None:
        value = info.default_factory()  # type: ignore[call-arg]
        return "unset" if value == {} else str(value)
    value = info.default
    if value is None:
        return "unset"
    if value == "":
        return "empty"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def test_the_configuration_table_gives_the_defaults_the_code_has() -> None:
    table = _table()
    for field, info in Settings.model_fields.items():
        name = env_var_of(field)
        if name in CHOSEN_ELSEWHERE:
            continue
        assert table.get(name) == _as_written(info), name


def test_the_table_names_no_setting_the_code_lacks() -> None:
    others = {"HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY", "PROMETHEUS_MULTIPROC_DIR"}
    assert set(_table()) - others == env_var_names()
    assert env_var_names() >= CHOSEN_ELSEWHERE

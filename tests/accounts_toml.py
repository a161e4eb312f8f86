"""An accounts file written from accounts as data (a test stack's, the simulator fixtures'),
for a `switchboard` process started on it. Nested tables are written inline: valid TOML, and
all an accounts file needs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson


def accounts_toml(accounts: Mapping[str, Mapping[str, Any]]) -> str:
    return "\n".join(f'[accounts."{name}"]\n' + "\n".join(f"{key} = {_value(value)}"
                                                          for key, value in fields.items()) + "\n"
                     for name, fields in accounts.items())


def _value(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f'"{key}" = {_value(item)}' for key, item in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    return orjson.dumps(value).decode()

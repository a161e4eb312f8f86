"""How the settings' two sources are read: the environment, where a variable set to nothing
is unset (but for the settings whose empty value is a value), and the TOML file named by
SWITCHBOARD_CONFIG, which may start with a byte order mark.

Kept apart from switchboard.settings, which says what the settings are and explains them when
they are wrong: these two replace pydantic-settings' own sources where those would read an empty
variable or a file saved with a mark otherwise than its writer meant.
"""

from __future__ import annotations

import tomllib
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_settings import EnvSettingsSource, TomlConfigSettingsSource

# Text settings whose empty value is a value: no prefix, no cluster named (the local broker),
# an empty login or secret (refused where one is needed, as before). Given empty in the
# environment they stay empty, and still override the config file.
EMPTY_IS_A_VALUE = frozenset({
    "kafka_bootstrap_servers", "kafka_name_prefix",
    "kafka_sasl_username", "kafka_sasl_password", "kafka_ssl_key_password",
    "kafka_oauth_client_id", "kafka_oauth_client_secret", "kafka_oauth_scope",
})


class EnvSource(EnvSettingsSource):
    """The environment, where a variable set to nothing (`SWITCHBOARD_METRICS_PORT=`, as env
    files and compose `environment:` entries leave them) is unset, except for the settings
    of EMPTY_IS_A_VALUE. An empty number, choice, path or URL was an error that stopped every
    command (or, for a path, the working directory): never what the empty line meant."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        value, key, is_complex = super().get_field_value(field, field_name)
        if value == "" and field_name not in EMPTY_IS_A_VALUE:
            return None, key, is_complex
        return value, key, is_complex


class ConfigFileSource(TomlConfigSettingsSource):
    """The settings file, which may start with a byte order mark (Notepad saves one), as the
    accounts and rules files may: tomllib refuses it, as "not valid TOML"."""

    def _read_file(self, file_path: Path | Traversable) -> dict[str, Any]:
        with file_path.open(mode="rb") as file:
            data = file.read()
        # Decoded whole, then the mark dropped: a byte that is not UTF-8 is named at its
        # offset in the file, as before.
        return tomllib.loads(data.decode("utf-8").removeprefix("\ufeff"))

"""What the image's processes listen on, read from the Dockerfile (no Docker engine here)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from switchboard.settings import Settings, env_var_names

ROOT = Path(__file__).resolve().parents[2]


def _image_env() -> dict[str, str]:
    """The ENV instructions of the Dockerfile, as `ENV NAME=value` lines write them."""
    env: dict[str, str] = {}
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("ENV "):
            for pair in shlex.split(line.removeprefix("ENV ")):
                name, _, value = pair.partition("=")
                env[name] = value
    return env


def test_the_image_sets_only_settings_that_exist() -> None:
    unknown = {name for name in _image_env() if name.startswith("SWITCHBOARD_")} \
        - env_var_names()
    assert not unknown, unknown


def test_the_image_listens_on_every_interface_of_its_container(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """On 127.0.0.1, the default, ingest and a worker's probes were out of reach of everything
    outside the container: a published port, the other services, the kubelet's probes."""
    for name, value in _image_env().items():
        monkeypatch.setenv(name, value)
    assert Settings().http_host == "0.0.0.0"

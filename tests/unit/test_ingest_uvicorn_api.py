"""ingest.protocol extends uvicorn's HTTP protocol through names uvicorn keeps private: pinned
here against the installed uvicorn, so that a release renaming one fails this test (and
`serve`'s start, with their names), not ingest at its first request, or silently."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import uvicorn
from packaging.requirements import Requirement
from packaging.version import Version

from ingest.uvicorn_api import OLDEST_UVICORN, uvicorn_mismatches

ROOT = Path(__file__).resolve().parents[2]


def test_the_installed_uvicorn_has_what_ingest_protocol_takes_of_it() -> None:
    assert uvicorn_mismatches() == []


def _installed_uvicorn(monkeypatch: pytest.MonkeyPatch, version: str) -> None:
    """The version installed uvicorn's metadata says; other distributions' are left alone."""
    real = metadata.version
    monkeypatch.setattr(metadata, "version",
                        lambda name: version if name == "uvicorn" else real(name))


@pytest.mark.parametrize("version", ["0.52.4", "0.51.0", "0.9.0"])
def test_a_uvicorn_older_than_the_oldest_ingest_works_with_is_named_with_the_one_needed(
        monkeypatch: pytest.MonkeyPatch, version: str) -> None:
    # pip leaves one under --no-deps: it has every name, only its behaviour is older
    _installed_uvicorn(monkeypatch, version)
    assert uvicorn_mismatches() == [
        f"version {version} is installed, 0.53 or later is needed (below it a client sending "
        "`Connection: close` gets a reset in place of its 404 or 413)"]


@pytest.mark.parametrize("version", ["0.53.0", "0.53.0rc1", "0.54.0+local", "0.60.0", "1.0.0",
                                     "unknown"])
def test_a_uvicorn_as_new_as_needed_or_unreadable_is_left_to_the_names_check(
        monkeypatch: pytest.MonkeyPatch, version: str) -> None:
    # No upper bound: a newer release is refused only for a name it renamed (the next test).
    _installed_uvicorn(monkeypatch, version)
    assert uvicorn_mismatches() == []


def test_the_oldest_uvicorn_checked_is_pyprojects_lower_bound() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    [spec] = [Requirement(text).specifier for text in project["dependencies"]
              if Requirement(text).name == "uvicorn"]
    [floor] = [Version(bound.version) for bound in spec if bound.operator == ">="]
    assert (floor.major, floor.minor) == OLDEST_UVICORN
    assert floor.micro == 0  # the check reads major.minor only


def test_a_uvicorn_that_no_longer_calls_an_override_fails_the_import_with_its_name() -> None:
    # In a process of its own: importing the module again here would replace its classes
    # under the app the other tests serve.
    code = (
        "from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol\n"
        "def on_headers_complete(self):  # a release starting its tasks under another name\n"
        "    self._start_task()\n"
        "HttpToolsProtocol.on_headers_complete = on_headers_complete\n"
        "import ingest.protocol\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"RuntimeError: uvicorn {uvicorn.__version__} is not a version ")
    assert "HttpToolsProtocol.on_headers_complete uses no _start_asgi_task" in last
    assert "on_response_complete" not in last  # only what is missing is named


def test_pyproject_allows_no_uvicorn_release_that_has_not_been_tried() -> None:
    """An upper bound, so `make lock` and a plain `pip install` take no release newer than the
    one these tests passed with; raised on purpose."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    [spec] = [Requirement(text).specifier for text in project["dependencies"]
              if Requirement(text).name == "uvicorn"]
    installed = Version(uvicorn.__version__)
    assert spec.contains(installed)
    next_minor = Version(f"{installed.major}.{installed.minor + 1}")
    assert not spec.contains(next_minor)

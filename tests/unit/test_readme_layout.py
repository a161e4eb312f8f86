"""README's *Layout* table names every module of ingest/, consumers/ and switchboard/ (and each
of their subpackages) in its directory's row: the table had left out ten of ingest's, which a
reader looking for the code of a behaviour then did not find there."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
PACKAGES = ("ingest", "consumers", "switchboard")


def _layout_rows() -> dict[str, str]:
    """Each row of the Layout table by its path cell (`ingest/`, ...)."""
    section = README.read_text().split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        if line.startswith("| `"):
            path, what = line.removeprefix("| ").split(" | ", 1)
            rows[path] = what
    return rows


def _unnamed(package: str, row: str) -> list[str]:
    directory = REPO / package
    modules = [f"`{path.name}`" for path in sorted(directory.glob("*.py"))
               if path.stem not in ("__init__", "__main__")]
    # A subpackage is named by its directory, alone or before one of its modules.
    subpackages = [f"`{path.name}/" for path in sorted(directory.iterdir())
                   if (path / "__init__.py").exists()]
    return [name for name in modules + subpackages if name not in row]


@pytest.mark.parametrize("package", PACKAGES)
def test_the_layout_table_names_every_module_of(package: str) -> None:
    rows = _layout_rows()
    assert f"`{package}/`" in rows
    assert _unnamed(package, rows[f"`{package}/`"]) == []

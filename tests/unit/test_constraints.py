"""constraints.txt pins what `make` installs: every dependency must be in it, within its range.

A dependency added to pyproject.toml without `make lock` would install at whatever version is
newest on the day of each clean clone; a range raised past its pin fails only at install.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]


def pins() -> dict[str, Version]:
    pinned: dict[str, Version] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, version = line.partition("==")
        assert version, f"constraints.txt: {line!r} is not an exact pin (name==version)"
        pinned[canonicalize_name(name)] = Version(version)
    return pinned


def declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = [project["dependencies"], *project["optional-dependencies"].values()]
    return [Requirement(text) for group in groups for text in group]


def test_every_dependency_is_pinned_within_its_range() -> None:
    pinned = pins()
    problems = []
    for requirement in declared():
        version = pinned.get(canonicalize_name(requirement.name))
        if version is None:
            problems.append(f"{requirement.name} is not in constraints.txt")
        elif not requirement.specifier.contains(version, prereleases=True):
            problems.append(f"{requirement.name}=={version} is outside {requirement.specifier}")
    assert not problems, "; ".join(problems) + " (run `make lock`)"


def test_the_image_installs_with_the_constraints() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "constraints.txt" in dockerfile.split("RUN pip install", 1)[1].splitlines()[0]


def test_the_image_runs_as_a_numeric_user_other_than_root() -> None:
    """Kubernetes' runAsNonRoot refuses to start an image whose user is a name: it cannot
    tell that the name is not root."""
    users = [line.split()[1] for line in (ROOT / "Dockerfile").read_text().splitlines()
             if line.startswith("USER ")]
    assert users, "the image runs as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, users[-1]


def test_the_build_context_holds_only_what_the_image_copies() -> None:
    """Without .dockerignore every build sent the virtualenv, the local broker's data and any
    local accounts or .env files to the Docker daemon."""
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in ignore  # everything, but for the exceptions (!path) below
    kept = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    copied = {part.rstrip("/") for line in (ROOT / "Dockerfile").read_text().splitlines()
              if line.startswith("COPY ") for part in line.split()[1:-1]}
    assert copied == kept

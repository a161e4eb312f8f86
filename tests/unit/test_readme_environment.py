"""The environment variables Switchboard reads beyond its settings, against README's
*Configuration* section, and every `SWITCHBOARD_` name the docs give against the settings.
test_readme_settings checks the table's settings and their defaults; its other rows (proxies,
prometheus-client's directory) and uvicorn's variable were taken on trust: here each is shown
read, and the docs say where it applies."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
import uvicorn

from switchboard.oauth import ClientCredentialsToken
from switchboard.settings import Settings, env_var_names, env_var_of

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("switchboard", "ingest", "consumers", "simulator", "normalizers")
# Where users read or copy settings from.
DOCUMENTS = ("README.md", "Dockerfile", "docker-compose.yml", "docs/**/*.md", "examples/*")
# README's example of a misspelt variable, which start-up warns about.
MISSPELT_ON_PURPOSE = {"SWITCHBOARD_KAFKA_BOOTSTRAP"}
# `os.environ.get("NAME")`, `os.environ["NAME"]`, or the same through a module constant.
ENVIRON_READ = re.compile(r"""os\.(?:environ\.get|environ\[|getenv)\(?\s*([A-Z_]+|"[A-Z_]+")""")
CONSTANT = re.compile(r'^([A-Z_]+) = "([A-Z_]+)"', re.MULTILINE)
PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY")


def _configuration() -> str:
    """README's *Configuration* section, its lines joined (a phrase may be cut anywhere)."""
    section = (REPO / "README.md").read_text().split("\n## Configuration\n", 1)[1]
    return " ".join(section.split("\n## ", 1)[0].split())


def _row(first_variable: str) -> str:
    rows = [line for line in (REPO / "README.md").read_text().splitlines()
            if line.startswith(f"| `{first_variable}`")]
    assert len(rows) == 1, first_variable
    return rows[0]


def _read_by_our_code() -> set[str]:
    """Names read by our code itself; a constant may be imported from another module."""
    texts = [path.read_text(encoding="utf-8")
             for package in PACKAGES for path in (REPO / package).rglob("*.py")]
    constants = {name: value for text in texts for name, value in CONSTANT.findall(text)}
    return {read.strip('"') if read.startswith('"') else constants.get(read, read)
            for text in texts for read in ENVIRON_READ.findall(text)}


def test_every_variable_our_code_reads_is_in_the_configuration_section() -> None:
    read = _read_by_our_code()
    assert {"XDG_CACHE_HOME", "PROMETHEUS_MULTIPROC_DIR"} <= read  # the pattern finds them
    section = _configuration()
    assert sorted(name for name in read if name not in section) == []


def test_every_switchboard_name_in_the_docs_and_examples_is_a_setting() -> None:
    """A name no setting has is ignored (with a warning): a user copying it keeps the default."""
    named: dict[str, set[str]] = {}
    for pattern in DOCUMENTS:
        for path in REPO.glob(pattern):
            if path.is_file():
                for name in re.findall(r"\bSWITCHBOARD_[A-Z0-9_]*[A-Z0-9]", path.read_text()):
                    named.setdefault(name, set()).add(str(path.relative_to(REPO)))
    assert "SWITCHBOARD_HTTP_HOST" in named  # the pattern finds them
    unknown = set(named) - env_var_names() - MISSPELT_ON_PURPOSE
    assert {name: named[name] for name in unknown} == {}


def test_defaults_given_in_the_readme_text_are_the_code_s() -> None:
    """Outside the table too: "`SWITCHBOARD_BODY_TIMEOUT_S` (30 s", "(`SWITCHBOARD_X`, 6 by
    default)"."""
    text = " ".join((REPO / "README.md").read_text().split())
    given = re.findall(r"`(SWITCHBOARD_[A-Z_]+)` \(([\d,.]+)(?: s)?[;)]", text)
    given += re.findall(r"`(SWITCHBOARD_[A-Z_]+)`, ([\d,.]+) by default", text)
    assert len(given) >= 3, given  # the patterns find them
    fields = {env_var_of(field): info.default for field, info in Settings.model_fields.items()}
    for name, value in given:
        assert float(value.replace(",", "")) == fields[name], name


async def _answer_as_a_proxy(seen: list[str], reader: asyncio.StreamReader,
                             writer: asyncio.StreamWriter) -> None:
    seen.append((await reader.readline()).decode().strip())  # "POST http://.../token HTTP/1.1"
    await reader.readuntil(b"\r\n\r\n")
    body = b'{"access_token": "token-through-the-proxy", "expires_in": 3600}'
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
                 + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body)
    await writer.drain()
    writer.close()


async def test_the_proxy_row_names_the_kafka_oauth_token_fetch(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The Kafka OAuth token endpoint, which ingest, workers and tools ask, is reached through
    the proxy too (a token endpoint inside the network needs NO_PROXY), not only the
    providers."""
    seen: list[str] = []
    proxy = await asyncio.start_server(lambda r, w: _answer_as_a_proxy(seen, r, w), "127.0.0.1", 0)
    port = proxy.sockets[0].getsockname()[1]
    for name in PROXY_VARIABLES:  # lower-case names win in httpx: none of the runner's
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
    # A name that resolves nowhere: only the proxy reaches it (loopback is asked directly).
    source = ClientCredentialsToken("http://login.invalid/token", "app", "client-secret")
    async with proxy:
        assert await asyncio.wait_for(source.token(), 10) == "token-through-the-proxy"
    assert seen == ["POST http://login.invalid/token HTTP/1.1"]
    row = _row("HTTPS_PROXY")
    assert "sender" in row and "OAuth token endpoint" in row, row


def test_forwarded_allow_ips_paragraph_names_uvicorn_s_default(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`serve` leaves it to uvicorn, which reads the variable, and trusts these addresses'
    X-Forwarded-Proto without it: a proxy on one of them needs no setting."""
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    default = uvicorn.Config("ingest.app:create_app").forwarded_allow_ips
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.0.0.7")
    assert uvicorn.Config("ingest.app:create_app").forwarded_allow_ips == "10.0.0.7"
    paragraph = _configuration().split("Behind a load balancer", 1)[1].split("A managed", 1)[0]
    assert "`FORWARDED_ALLOW_IPS`" in paragraph
    assert isinstance(default, str)
    assert [address for address in default.split(",") if address not in paragraph] == []


def test_prometheus_multiproc_dir_is_read_by_ingest(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from prometheus_client import REGISTRY

    from ingest.app import metrics_registry

    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    assert metrics_registry() is REGISTRY
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    assert metrics_registry() is not REGISTRY  # the counts summed from the directory
    assert "`PROMETHEUS_MULTIPROC_DIR`" in _row("PROMETHEUS_MULTIPROC_DIR")

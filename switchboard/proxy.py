"""The proxy variables of the environment, read as httpx reads them, in one place: the sender's
transport and the Kafka OAuth token requests route by them, and every start that makes an httpx
client (the sender's, the token requests') checks them first, so that one httpx cannot use is
said once, at start, not as a failure of every request later.

One rule is ours, not httpx's: a loopback destination (localhost, 127.0.0.0/8, ::1) is reached
directly, whatever the variables say. httpx sends it to the proxy unless NO_PROXY names it, and
a proxy reaching "127.0.0.1" reaches its own machine, never ours: with HTTP_PROXY set, `run`'s
sender never reached the simulator beside it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from urllib.request import getproxies, proxy_bypass

import httpx

from switchboard.logs import register_secrets, scrub

# The proxy variables httpx reads, by the scheme of the URLs they carry ("all": any scheme).
PROXY_SCHEMES = ("http", "https", "all")


class ProxySettingError(ValueError):
    """A proxy variable of the environment names a proxy httpx cannot use (an unknown scheme,
    SOCKS without the socksio package): every request through it would fail, so the process
    does not start."""


def check_proxy_environment() -> None:
    """ProxySettingError if a proxy variable of the environment names a proxy httpx cannot
    use: for a start to say so before it starts anything (`run` starts a broker first)."""
    proxy_urls(getproxies())


def proxy_urls(settings: Mapping[str, str]) -> dict[str, str]:
    """The proxy URL for each scheme, as httpx reads it (a bare host:port is an http://
    proxy), each checked; their passwords are masked in every later log line and result.
    No proxy at all under NO_PROXY=*: httpx then reads no proxy variable (`*` as any one of
    NO_PROXY's comma-separated entries, spaces around it ignored), so none is used, and one
    it could not use refuses nothing."""
    if "*" in (host.strip() for host in settings.get("no", "").split(",")):
        return {}
    proxies = {scheme: url if "://" in url else f"http://{url}"
               for scheme in PROXY_SCHEMES if (url := settings.get(scheme, "").strip())}
    for scheme, url in proxies.items():
        try:
            register_secrets([httpx.URL(url).password])
            httpx.AsyncHTTPTransport(proxy=url, verify=False)  # SOCKS needs socksio
        except (ValueError, ImportError, httpx.InvalidURL) as exc:
            # httpx's own text shows the URL with its password replaced ("[secure]")
            raise ProxySettingError(
                f"{scheme.upper()}_PROXY (or {scheme}_proxy) of the environment names a proxy "
                f"httpx cannot use: {scrub(str(exc))}") from None
    return proxies


def proxy_for(proxies: Mapping[str, str], url: httpx.URL) -> str | None:
    """The proxy of `proxies` (proxy_urls) to send `url` through: its scheme's, else ALL_PROXY's,
    unless NO_PROXY names its host or the host is loopback (the module's docstring)."""
    proxy = proxies.get(url.scheme) or proxies.get("all")
    if proxy is None or is_loopback(url.host) or proxy_bypass(url.host):
        return None
    return proxy


def is_loopback(host: str) -> bool:
    """Whether `host` (httpx.URL.host: lower case, an IPv6 address without brackets) is this
    machine's loopback: localhost, 127.0.0.0/8, ::1 (an IPv4-mapped 127.x too)."""
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback

"""Reading a provider's answer, whatever it is: JSON or not, a web page where base_url
points wrong, a 2xx that is not the API's, ids and codes as strings or numbers."""

from __future__ import annotations

import re
from typing import Any

import httpx

from consumers.outbound.base import SendError


def json_body(response: httpx.Response) -> Any:
    """The parsed JSON body, or None when there is none or it is not JSON.

    Error answers from gateways and proxies are often HTML or empty: reading must not fail.
    Nor may JSON nested deeper than Python's parser goes (RecursionError, not a ValueError):
    an error escaping a client is reported as a bug (`outcome_unknown`), not as the answer.
    """
    try:
        return response.json()
    except (ValueError, RecursionError):
        return None


def media_type(response: httpx.Response) -> str:
    """The response's Content-Type without its parameters, lower case ("" if none)."""
    content_type: str = response.headers.get("content-type", "")
    return content_type.split(";", 1)[0].strip().lower()


_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})


def is_html_page(response: httpx.Response) -> bool:
    """Whether the body is a web page: an HTML type, and markup. No send API answers so: a
    website, a login page or a proxy's welcome page does, where base_url points wrong. A short
    text (or JSON) under a framework's default text/html is the API's own answer."""
    return (media_type(response) in _HTML_TYPES
            and response.content.lstrip()[:1] == b"<")


def web_page(response: httpx.Response, base_url: str) -> str | None:
    """What a web page answered for the API says of base_url; None if it is no web page."""
    if not is_html_page(response):
        return None
    return (f"HTTP {response.status_code} with an HTML page ({media_type(response)}), not the "
            f"API's JSON: is base_url {base_url} the API's root? The page: "
            f"{page_title(response) or snippet(response)}")


def no_acceptance(response: httpx.Response, missing: str) -> SendError:
    """A 2xx without what the provider's every acceptance carries (`missing`, the field and
    whose documents say so): not its answer, so not one that says the message was taken (a
    base_url pointing at another API, most likely). The request reached something that may
    have acted on it: maybe sent, so never sent again."""
    try:
        url = response.request.url.copy_with(query=None, fragment=None)
        sent_to = f"sent to {url}: "
    except RuntimeError:  # a response without its request
        sent_to = ""
    return SendError(f"HTTP {response.status_code} without {missing}: not the API's answer "
                     f"({sent_to}is base_url the API's root?). The answer: {snippet(response)}",
                     retryable=True, code="bad_response", maybe_sent=True)


def body_text(response: httpx.Response) -> str:
    """The body as text, in the charset it is labelled with, else UTF-8, what cannot be read
    replaced. Not httpx's `response.text`: it decodes with whatever codec the label names, and
    some raise for any body (UTF-16 without a byte order mark, a codec of bytes like base64):
    the provider's answer would escape its client as a bug."""
    charset = response.charset_encoding
    if charset:
        try:
            return response.content.decode(charset, "replace")
        except (LookupError, UnicodeError):  # unknown, not a text encoding, or idna's
            pass
    return response.content.decode("utf-8", "replace")


_TITLE = re.compile(r"<title[^>]*>([^<]{1,200})", re.IGNORECASE)


def page_title(response: httpx.Response) -> str | None:
    """An HTML page's title ("Sign in", "Welcome to nginx!"): what tells where a request went,
    where the page's start is scripts and styles."""
    found = _TITLE.search(body_text(response)[:20_000])
    title = " ".join(found.group(1).split()) if found else ""
    return title or None


def snippet(response: httpx.Response) -> str:
    """A short description of a body we could not read: its start, or the reason phrase."""
    text = " ".join(body_text(response).split())[:200]
    return text or response.reason_phrase or "no body"


def as_str(value: Any) -> str | None:
    """A non-empty string field, else None (for fields that are strings only)."""
    return value if isinstance(value, str) and value else None


def as_text(value: Any) -> str | None:
    """A non-empty string, or an int as its digits, else None: ids and codes come as either."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    return str(value) or None

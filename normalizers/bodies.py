"""Decoding webhook bodies: JSON objects, urlencoded forms and query strings, and XML.

Providers send all three; decoding them in one place means every provider refuses a broken
body with the same explained NormalizeError, and XML is only ever read safely.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

import orjson
from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException

from normalizers.base import JsonObject, NormalizeError, WebhookRequest, shown

# Senders on .NET or PowerShell put one before UTF-8 text; RFC 8259 lets a parser ignore it.
UTF8_BOM = b"\xef\xbb\xbf"


def parse_json_object(body: bytes) -> JsonObject:
    """Decode a JSON object body (after one UTF-8 byte order mark, if any), or explain why it
    is not one."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if not body.startswith(UTF8_BOM):  # looked for only here: no copy of every good body
            raise _not_json(body, exc) from None
        try:
            value = orjson.loads(body[len(UTF8_BOM):])
        except orjson.JSONDecodeError as after_bom:
            raise _not_json(body[len(UTF8_BOM):], after_bom) from None
    if not isinstance(value, dict):
        raise NormalizeError(f"expected a JSON object, got a JSON {type(value).__name__}")
    return value


def _not_json(body: bytes, exc: orjson.JSONDecodeError) -> NormalizeError:
    # Only a body that is not JSON can be empty or blank: no copy of every good body.
    if not body.strip():
        return NormalizeError("empty body; expected a JSON object")
    return NormalizeError(f"body is not valid JSON: {exc}")


def parse_form(text: bytes | str) -> dict[str, str]:
    """Decode a urlencoded form body, or a query string from query_text; a repeated key keeps
    its last value. A body or %-escape that is not UTF-8 is an error."""
    return dict(form_pairs(form_text(text)))


def form_text(form: bytes | str) -> str:
    """A urlencoded form body as text: the one place its bytes are decoded, so every reader
    refuses a body that is not UTF-8 with the same reason."""
    if isinstance(form, bytes):
        try:
            return form.decode("utf-8")
        except UnicodeDecodeError:
            raise NormalizeError("form body is not UTF-8") from None
    return form


def query_text(query: str) -> str:
    """A request's query string (`WebhookRequest.query`) as the text its bytes encode in UTF-8.

    Normalizers read it through `WebhookRequest.query_fields` / `query_pairs`, which call this.
    Ingest keeps the query as ASGI gives it, its bytes decoded as Latin-1, and the CLI hands a
    typed query on the same way, so bytes sent without %-escapes (`café` as raw UTF-8) are
    recovered by encoding it back; if they are not UTF-8 it is an error, as for a form body.
    Only a request built directly with text (as tests and fixtures do) can hold characters
    beyond Latin-1; such a query is taken as the text it already is.
    """
    if query.isascii():
        return query
    try:
        raw = query.encode("latin-1")
    except UnicodeEncodeError:
        return query
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise NormalizeError("query string is not UTF-8") from None


def form_pairs(text: str) -> list[tuple[str, str]]:
    """`urllib.parse.parse_qsl(text, keep_blank_values=True, errors="strict")`: the fields of
    a urlencoded form, in order, `+` and `%xx` decoded; it calls the decoder only for a part
    that needs it. %-escapes that are not UTF-8 (`caf%E9`) are a NormalizeError, as a form body
    that is not UTF-8 is, instead of U+FFFD in place of what was sent."""
    pairs: list[tuple[str, str]] = []
    for part in text.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        if "+" in name:
            name = name.replace("+", " ")
        if "%" in name:
            name = _unquote(name, "form field name")
        if "+" in value:
            value = value.replace("+", " ")
        if "%" in value:
            value = _unquote(value, f"form field {shown(name, 40)}")
        pairs.append((name, value))
    return pairs


def _unquote(text: str, what: str) -> str:
    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise NormalizeError(
            f"{what} has %-escapes that are not UTF-8: {shown(text, 40)}") from None


def parse_xml(body: bytes) -> JsonObject:
    """Decode XML safely (no entities, no external references) into nested dicts.

    Repeated child elements become lists; text-only elements become strings. The root element
    name is kept under the key `_root` so callers can tell document kinds apart.
    """
    try:
        root = SafeET.fromstring(body)
    except SafeET.ParseError as exc:
        raise NormalizeError(f"body is not well-formed XML: {exc}") from None
    except DefusedXmlException as exc:  # entities, DTDs, external references
        raise NormalizeError(f"XML refused: {type(exc).__name__}") from None
    except (ValueError, LookupError) as exc:  # UnicodeError is a ValueError
        # The declared encoding is looked up among Python's codecs: an unknown name
        # (LookupError), a codec that is not a text encoding (rot13, base64), a multi-byte one
        # that expat cannot read (UTF-16-LE, Shift_JIS, ValueError) or one failing (idna).
        declared = _DECLARED_ENCODING.match(body)
        if declared is None:
            raise NormalizeError(f"XML cannot be decoded: {shown(str(exc))}") from None
        name = declared.group(1).decode("ascii", "replace")
        raise NormalizeError(
            f"XML declares encoding {shown(name)}, which is not supported; send UTF-8") from None
    try:
        converted = _xml_element(root)
    except RecursionError:
        raise NormalizeError("XML is nested too deeply") from None
    result: JsonObject = converted if isinstance(converted, dict) else {"_text": converted}
    result["_root"] = _local_name(root.tag)
    return result


# The encoding in an XML declaration (XML 1.0 section 4.3.3: EncName is ASCII).
_DECLARED_ENCODING = re.compile(
    rb"""\s*<\?xml\s[^>]{0,200}?encoding\s*=\s*["']([A-Za-z0-9._-]{0,60})""")


def _local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1] if "}" in tag else tag


def _xml_element(element: Any) -> Any:
    if not len(element):
        return (element.text or "").strip()
    result: JsonObject = {}
    for child in element:
        name = _local_name(child.tag)
        value = _xml_element(child)
        if name in result:
            existing = result[name]
            if isinstance(existing, list):
                existing.append(value)
            else:
                result[name] = [existing, value]
        else:
            result[name] = value
    return result


def is_xml(request: WebhookRequest) -> bool:
    if request.media_type.endswith("/xml"):
        return True
    start = request.body[:1]
    # Strip (a copy of the body) only when it starts with whitespace.
    return start == b"<" or (start.isspace() and request.body.lstrip()[:1] == b"<")


def is_form(request: WebhookRequest) -> bool:
    return request.media_type == "application/x-www-form-urlencoded"

"""Decoding webhook bodies: JSON objects, urlencoded forms and query strings, and XML.

Providers send all three; decoding them in one place means every provider refuses a broken
body with the same explained NormalizeError, and XML is only ever read safely. Which charset a
form or XML body is read in, and which are refused, is decided in normalizers.charsets.
"""

from __future__ import annotations

import codecs
import functools
import json
import math
import re
from typing import Any
from urllib.parse import unquote

import orjson
from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException

from normalizers.base import JsonObject, NormalizeError, WebhookRequest, shown
from normalizers.charsets import (
    LATIN1_AS_WINDOWS_1252,
    ascii_compatible_codec,
    charset_label,
    charset_parameter,
    declared_charset,
)

# Senders on .NET or PowerShell put one before UTF-8 text; RFC 8259 lets a parser ignore it.
UTF8_BOM = b"\xef\xbb\xbf"


def parse_json_object(body: bytes) -> JsonObject:
    """Decode a JSON object body (after one UTF-8 byte order mark, if any), or explain why it
    is not one."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if not body.startswith(UTF8_BOM):  # looked for only here: no copy of every good body
            value = _with_lone_surrogates(body, exc)
        else:
            body = body[len(UTF8_BOM):]
            try:
                value = orjson.loads(body)
            except orjson.JSONDecodeError as after_bom:
                value = _with_lone_surrogates(body, after_bom)
    if not isinstance(value, dict):
        raise NormalizeError(f"expected a JSON object, got a JSON {type(value).__name__}")
    return value


# A UTF-16 surrogate that is not half of a pair: no character, so no text can hold it.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_REPLACEMENT_CHARACTER = "\ufffd"


def _with_lone_surrogates(body: bytes, exc: orjson.JSONDecodeError) -> Any:
    """A body orjson refused for a lone surrogate escape (`"\\ud83d"` with no low half),
    decoded with each lone surrogate read as U+FFFD; any other refusal is explained.

    RFC 8259 (8.2) lets such strings through its grammar. Java (Jackson) and .NET write them
    for a text cut inside a surrogate pair, such as an emoji split where a long SMS was cut
    into parts, so a real inbound message can carry one, and refusing the body would dead-letter
    a whole batch for one broken character."""
    if "surrogate" not in exc.msg or exc.msg.startswith("str is not valid UTF-8"):
        raise _not_json(body, exc) from None
    try:
        return _stdlib_json(body.decode("utf-8"))
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError included
        raise _not_json(body, exc) from None


def parse_json_text(text: str) -> Any:
    """JSON nested in a field as text (Webex's `attachments`: `"[{...}]"`), read as a body is:
    a lone surrogate escape is U+FFFD. Raises orjson.JSONDecodeError when it is not JSON."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        if "surrogate" not in exc.msg:
            raise
        try:
            return _stdlib_json(text)
        except (ValueError, RecursionError):
            raise exc from None


def _stdlib_json(text: str) -> Any:
    """JSON the stdlib reads (lone surrogates included), with values as orjson gives them."""
    value = json.loads(text, parse_int=_orjson_int, parse_float=_orjson_float,
                       parse_constant=_no_constant)
    return _without_lone_surrogates(value)


def _orjson_int(text: str) -> int | float:
    """An integer as orjson reads it (what the normalizers were written against): beyond
    64 bits, a float; beyond a float's range, no number."""
    number = float(text) if len(text) > 20 else int(text)
    if isinstance(number, int) and -(2**63) <= number < 2**64:
        return number
    as_float = float(text)
    if math.isinf(as_float):
        raise ValueError("number is infinity when parsed as double")
    return as_float


def _orjson_float(text: str) -> float:
    number = float(text)
    if math.isinf(number):  # 1e400: orjson refuses it, the stdlib would read infinity
        raise ValueError("number is infinity when parsed as double")
    return number


def _no_constant(text: str) -> Any:
    raise ValueError(f"{text} is not JSON")  # the stdlib reads NaN and Infinity; orjson not


def _without_lone_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return _LONE_SURROGATE.sub(_REPLACEMENT_CHARACTER, value)
    if isinstance(value, list):
        return [_without_lone_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {_without_lone_surrogates(key): _without_lone_surrogates(item)
                for key, item in value.items()}
    return value


def _not_json(body: bytes, exc: orjson.JSONDecodeError) -> NormalizeError:
    # Only a body that is not JSON can be empty or blank: no copy of every good body.
    if not body.strip():
        return NormalizeError("empty body; expected a JSON object")
    if exc.msg.startswith("str is not valid UTF-8"):
        # orjson says "surrogates not allowed" at char 0 for any byte that is not UTF-8 (a
        # Latin-1 `é`, UTF-16): say what and where, and that the charset is the problem.
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as bad:
            return NormalizeError(
                f"body is not UTF-8 (byte 0x{body[bad.start]:02X} at offset {bad.start}); "
                "JSON must be UTF-8 (RFC 8259), whatever charset the content type names")
    return NormalizeError(f"body is not valid JSON: {exc}")


def parse_form(text: bytes | str) -> dict[str, str]:
    """Decode a UTF-8 urlencoded form body, or a query string from query_text; a repeated key
    keeps its last value. A body or %-escape that is not UTF-8 is an error."""
    return dict(form_pairs(form_text(text)))


def request_form_pairs(request: WebhookRequest) -> list[tuple[str, str]]:
    """The fields of a request's urlencoded form body, in order, read in the charset its
    Content-Type names (UTF-8 when it names none): legacy SMS gateways send ISO-8859-1 or
    windows-1252 and say so, and their `%E9` is an `é`. Bytes and %-escapes alike."""
    charset = declared_charset(request.content_type)
    return form_pairs(form_text(request.body, charset), charset)


def form_text(form: bytes | str, charset: str = "utf-8") -> str:
    """A urlencoded form body as text, in `charset` (a name declared_charset gave): the one
    place its bytes are decoded, so every reader refuses a body that is not in its charset
    with the same reason.

    A UTF-8 byte order mark before it is dropped, as parse_json_object drops one, and so is
    raw CR/LF after its last field: neither can be part of a field (a form escapes CR and LF
    as %0D and %0A), they are what the sender's tooling put around it (.NET, PowerShell, a
    file sent with curl --data-binary). urllib.parse would keep them in the first name and
    the last value. Signatures are checked over the raw bytes, which stay as sent."""
    if isinstance(form, bytes):
        try:
            form = form.decode(charset)
        except ValueError:  # UnicodeDecodeError, or a codec's plain UnicodeError
            raise NormalizeError(f"form body is not {charset_label(charset)}") from None
        if form.startswith(_TEXT_BOM) and charset == "utf-8":
            form = form[len(_TEXT_BOM):]
    if form.endswith(("\r", "\n")):
        form = form.rstrip("\r\n")
    return form


_TEXT_BOM = UTF8_BOM.decode("utf-8")


def query_text(query: str) -> str:
    """A request's query string (`WebhookRequest.query`) as the text its bytes encode in UTF-8.

    Normalizers read it through `WebhookRequest.query_fields` / `query_pairs`, which call this.
    Ingest keeps the query as ASGI gives it, its bytes decoded as Latin-1, and the CLI hands a
    typed query on the same way, so bytes sent without %-escapes (`café` as raw UTF-8) are
    recovered by encoding it back; if they are not UTF-8 it is an error (a query has no charset).
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


def form_pairs(text: str, charset: str = "utf-8") -> list[tuple[str, str]]:
    """`urllib.parse.parse_qsl(text, keep_blank_values=True, encoding=charset,
    errors="strict")`: the fields of a urlencoded form, in order, `+` and `%xx` decoded; it
    calls the decoder only for a part that needs it. %-escapes that are not in the charset
    (`caf%E9` in UTF-8) are a NormalizeError, as a form body that is not is, instead of U+FFFD
    in place of what was sent."""
    pairs: list[tuple[str, str]] = []
    for part in text.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        if "+" in name:
            name = name.replace("+", " ")
        if "%" in name:
            name = _unquote(name, "form field name", charset)
        if "+" in value:
            value = value.replace("+", " ")
        if "%" in value:
            value = _unquote(value, f"form field {shown(name, 40)}", charset)
        pairs.append((name, value))
    return pairs


def _unquote(text: str, what: str, charset: str) -> str:
    try:
        return unquote(text, encoding=charset, errors="strict")
    except ValueError:  # UnicodeDecodeError, or a codec's plain UnicodeError
        raise NormalizeError(f"{what} has %-escapes that are not {charset_label(charset)}: "
                             f"{shown(text, 40)}") from None


def parse_xml(body: bytes, content_type: str = "") -> JsonObject:
    """Decode XML safely (no entities, no external references) into nested dicts.

    A `charset` in the request's Content-Type is the body's encoding, whatever its XML
    declaration says (RFC 7303 section 3; the same charsets as for a form, a NormalizeError
    naming any other); without one, the declaration or byte order mark says, else UTF-8.
    ISO-8859-1, named either way, is read as windows-1252 (see LATIN1_AS_WINDOWS_1252).
    Repeated child elements become lists; text-only elements become strings. The root element
    name is kept under the key `_root` so callers can tell document kinds apart.
    """
    document: bytes | str = body
    if (charset := charset_parameter(content_type)) is not None:
        codec = ascii_compatible_codec(charset, "XML")
        try:  # expat reads text as it is, its declaration's encoding set aside
            document = body.decode(codec)
        except ValueError:  # UnicodeDecodeError, or a codec's plain UnicodeError
            raise NormalizeError(f"XML body is not {charset_label(codec)}") from None
    elif (declared := _DECLARED_ENCODING.match(body)) and _names_latin1(declared.group(1)):
        document = body.decode(LATIN1_AS_WINDOWS_1252)  # as a Content-Type's Latin-1 is read
    try:
        root = SafeET.fromstring(document)
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


@functools.lru_cache(maxsize=32)
def _names_latin1(encoding: bytes) -> bool:
    try:
        return codecs.lookup(encoding.decode("ascii")).name == "iso8859-1"
    except LookupError:
        return False


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

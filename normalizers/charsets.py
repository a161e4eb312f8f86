"""Which text encoding a Content-Type's `charset` names, refused when it is not a charset a
form or XML body can be read in (unknown, or not keeping ASCII as ASCII), and ISO-8859-1 read as
windows-1252, as the WHATWG Encoding Standard reads it.

Kept apart from normalizers.bodies, which decodes the bodies: a charset is looked up and checked
the same way for forms and for XML, and this module registers the one codec it adds.
"""

from __future__ import annotations

import codecs
import functools
import re

from normalizers.base import NormalizeError, shown


def declared_charset(content_type: str) -> str:
    """The codec a Content-Type's `charset` parameter names ("utf-8" without one), or a
    NormalizeError for a name Python does not know or a charset that is not ASCII-compatible
    (UTF-16, EBCDIC: `&`, `=` and `%` are no longer those bytes) or not a text encoding."""
    charset = charset_parameter(content_type)
    return "utf-8" if charset is None else ascii_compatible_codec(charset, "a form")


def charset_parameter(content_type: str) -> str | None:
    """The `charset` parameter of a Content-Type as written, or None when it has none."""
    if ";" not in content_type:  # the usual case: no parameters to look through
        return None
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"').strip()
    return None


# Printable ASCII, which an ASCII-compatible charset decodes to itself, and what Python's codecs
# that are no charsets would decode to something else (escapes, IDNA and UTF-7 forms). Its
# backslashes all start valid escapes: an invalid one has unicode_escape warn.
_ASCII_PROBE = bytes(c for c in range(0x20, 0x7F) if c != 0x5C) + \
    rb" \x41\u0041 xn--ls8h.xn--ls8h +AGE-"
# A charset name (RFC 2978 mime-charset; IANA names are ASCII and at most 40 characters).
_CHARSET_NAME = re.compile(r"[A-Za-z0-9!#$%&'+^_`{}~.-]{1,40}")


# ISO-8859-1 read as the WHATWG Encoding Standard reads it (the label means windows-1252): what
# senders that say Latin-1 send is windows-1252, whose 0x80-0x9F are `€`, `„`, `…`, `™` and
# such, not the invisible C1 controls Latin-1 has there. The five bytes windows-1252 leaves
# undefined stay those controls, as WHATWG has them, so every byte still decodes.
LATIN1_AS_WINDOWS_1252 = "switchboard-whatwg-windows-1252"
_WHATWG_1252 = "".join(bytes([byte]).decode("cp1252", "ignore") or chr(byte)
                       for byte in range(256))
_WHATWG_1252_ENCODING = codecs.charmap_build(_WHATWG_1252)


def _whatwg_1252(name: str) -> codecs.CodecInfo | None:
    if name != LATIN1_AS_WINDOWS_1252.replace("-", "_"):  # lookup() turns `-` into `_`
        return None
    return codecs.CodecInfo(
        name=LATIN1_AS_WINDOWS_1252,
        encode=lambda text, errors="strict": codecs.charmap_encode(
            text, errors, _WHATWG_1252_ENCODING),
        decode=lambda data, errors="strict": codecs.charmap_decode(
            data, errors, _WHATWG_1252))


codecs.register(_whatwg_1252)  # by name: bytes.decode and unquote find it as any codec


@functools.lru_cache(maxsize=32)
def ascii_compatible_codec(name: str, what: str) -> str:
    # Cached: a provider names the same charset on every request; a refusal raises, so it is
    # not cached, and only names of the form charset names have are looked up at all.
    if not _CHARSET_NAME.fullmatch(name):
        raise NormalizeError(f"charset {shown(name, 40)} is not a charset name; send UTF-8")
    try:
        codec = codecs.lookup(name).name
        ascii_compatible = _ASCII_PROBE.decode(codec) == _ASCII_PROBE.decode("ascii")
    except LookupError:  # an unknown name, or a codec that is not a text encoding (rot13)
        raise NormalizeError(
            f"charset {shown(name)} is not a known text encoding; send UTF-8") from None
    except ValueError:  # a codec failing on plain ASCII (UTF-16 on an odd length, idna)
        ascii_compatible = False
    if not ascii_compatible:
        raise NormalizeError(
            f"charset {shown(name)} is not supported for {what} (it does not keep ASCII as "
            "ASCII); send UTF-8 or a charset such as ISO-8859-1")
    if codec == "iso8859-1":  # every alias of Latin-1 (latin1, l1, cp819, ...)
        return LATIN1_AS_WINDOWS_1252
    return "utf-8" if codec == "utf-8" else name


def charset_label(charset: str) -> str:
    return "UTF-8" if charset == "utf-8" else repr(charset)

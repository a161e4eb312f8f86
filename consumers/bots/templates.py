"""Reply templates: `{name}` placeholders filled from the inbound message, nothing else.

Deliberately tiny and safe: no attribute access, no indexing, no expressions, no format
specs that could be abused; unknown names are rejected when the rules file is loaded, not
when a customer writes in. `{{` and `}}` are literal braces.

Each placeholder the contact fills puts at most ECHO_CHARS characters into a reply: `{text}`
and `{rest}` (and `{keyword}`, `{postback}`, a regex group) are what the contact wrote, and a
reply echoing a megabyte would be sent, and paid for, as hundreds of SMS parts.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

FIELDS = frozenset({
    "from", "to", "text", "keyword", "rest", "account", "channel", "provider", "postback",
})
_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
# One SMS's worth (GSM-7): a message that fit one SMS is echoed whole, a longer one cut, so the
# echo alone never makes a reply more than one segment longer (UCS-2 text: three).
ECHO_CHARS = 160
# Three full stops, not "\u2026": that is no GSM-7 character, and would have the whole reply
# sent as UCS-2, 70 characters a segment instead of 160.
ELLIPSIS = "..."
_JOINER = "\u200d"  # inside an emoji sequence: not cut after
# Kept with the character before them: skin tones (category Sk, not a mark) and emoji tags
# (a subdivision flag's letters, category Cf).
_MODIFIERS = re.compile("[\U0001F3FB-\U0001F3FF\U000E0020-\U000E007F]")
_REGIONAL = re.compile("[\U0001F1E6-\U0001F1FF]")  # two make a flag
# Not what the contact wrote: an address (an Apple `urn:mbid:` is 169 characters) or names.
_WHOLE = frozenset({"from", "to", "account", "channel", "provider"})


def _joined(value: str, cut: int) -> bool:
    """Whether value[cut] belongs with the character before it."""
    here = value[cut]
    return (unicodedata.category(here)[0] == "M" or here == _JOINER
            or value[cut - 1] == _JOINER or _MODIFIERS.match(here) is not None)


def bounded(value: str, limit: int = ECHO_CHARS) -> str:
    """`value`, or its start and ELLIPSIS if longer than `limit` characters (code points). Not
    cut between a letter and its accents, inside an emoji sequence, or between a flag's two
    letters: what would be left half goes too."""
    if len(value) <= limit:
        return value
    cut = limit - len(ELLIPSIS)
    while cut > 0 and _joined(value, cut):
        cut -= 1
    if _REGIONAL.match(value[cut]):
        start = cut
        while start > 0 and _REGIONAL.match(value[start - 1]):
            start -= 1
        cut -= (cut - start) % 2  # an odd count before the cut: the last is half a flag
    return value[:cut].rstrip() + ELLIPSIS


class TemplateError(ValueError):
    pass


class Template:
    def __init__(self, source: str, allowed: frozenset[str] = FIELDS,
                 written: frozenset[str] = frozenset()) -> None:
        """`written`: names whose values the contact wrote whatever their name (a regex rule's
        groups: one named `from` is no address), cut as the others the contact fills are."""
        self.source = source
        self.whole = _WHOLE - written
        self.parts: list[tuple[bool, str]] = []  # (is_placeholder, text or name)
        position = 0
        for match in _TOKEN.finditer(source):
            if match.start() > position:
                self.parts.append((False, source[position:match.start()]))
            token = match.group(0)
            if token in ("{{", "}}"):
                self.parts.append((False, token[0]))
            elif match.group(1) is None:
                raise TemplateError(f"template {source!r}: unmatched {token!r} "
                                    "(write {{ or }} for a literal brace)")
            else:
                name = match.group(1).strip()
                # An identifier, as a regex group's name is ("orderNo", "número"): no
                # attribute, index or conversion; which names are known is checked below.
                if not name.isidentifier():
                    raise TemplateError(f"template {source!r}: {{{name}}} is not a plain name")
                self.parts.append((True, name))
            position = match.end()
        if position < len(source):
            self.parts.append((False, source[position:]))
        names = {text for is_name, text in self.parts if is_name}
        unknown = names - allowed
        if unknown:
            raise TemplateError(f"template {source!r}: unknown field(s) "
                                f"{', '.join(sorted(unknown))}; "
                                f"known: {', '.join(sorted(allowed))}")

    def render(self, values: Mapping[str, str | None]) -> str:
        return "".join((values.get(text) or "") if is_name and text in self.whole
                       else bounded(values.get(text) or "") if is_name else text
                       for is_name, text in self.parts)

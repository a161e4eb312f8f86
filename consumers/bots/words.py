"""How a keyword is read: a message's first word folded (case, accents, compatibility forms),
with punctuation around it, invisible characters inside it and lookalike letters taken off,
compared in bounded pieces (README *How a keyword is read*).

Compliance's words, keyword rules and a button's payload are all compared in these forms.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Collection


def fold(text: str) -> str:
    """Case- and accent-insensitive form: 'Stöp' and 'STOP' compare equal."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _decoration(char: str) -> bool:
    category = unicodedata.category(char)
    return category[0] in "PSZ" or category in ("Cf", "Cc")  # Cc: a NUL padding an SMS


def _mark(char: str) -> bool:
    return unicodedata.category(char)[0] == "M"


def _bare(folded: str) -> str:
    """A folded word without the punctuation, symbols and invisible characters around it:
    "Stop." and "STOP!" are STOP, as "Stop please" is. A mark (category M) goes only with the
    character it follows: an emoji's variation selector goes with the emoji, but a vowel sign
    (Devanagari's ा, ी: fold() keeps them) is part of its word ("बंदा" is not "बंद")."""
    start, end = 0, len(folded)
    while start < end and (_decoration(folded[start]) or _mark(folded[start])):
        start += 1  # a mark at the start has no character of the word before it
    while end > start:
        base = end
        while base > start and _mark(folded[base - 1]):
            base -= 1
        if base == start or not _decoration(folded[base - 1]):
            break
        end = base - 1
    return folded[start:end]


def _cuts(char: str) -> bool:
    """A comma, full stop or the like, an emoji or other symbol, or a zero-width space (a
    space in scripts written without them): each ends a word typed without a space after it.
    Not a dash, an apostrophe or a joiner, which join words ("stop-motion", a Devanagari
    conjunct)."""
    category = unicodedata.category(char)
    return (category == "Po" and char not in "'\u2019") or category == "So" or char == "\u200b"


# Invisible characters that are no format character (Cf): a combining grapheme joiner,
# Hangul fillers, variation selectors (Unicode's default-ignorable code points).
_IGNORABLE = frozenset("\u034f\u115f\u1160\u17b4\u17b5\u3164\uffa0"
                       + "".join(map(chr, [*range(0x180B, 0x1810), *range(0xFE00, 0xFE10),
                                           *range(0xE0100, 0xE01F0)])))


def _joined(folded: str) -> str:
    """A folded word without the invisible characters inside it, and with any dash or
    underscore written as a hyphen: a contact who sees "STOP" or "opt-out" wrote it, whatever
    a keyboard or a copied text put between the letters (a zero-width space, a non-breaking
    hyphen)."""
    def dash(char: str) -> bool:
        return unicodedata.category(char) in ("Pd", "Pc") or char == "\u2212"  # minus sign

    return "".join("-" if dash(c) else c for c in folded
                   if c not in _IGNORABLE and unicodedata.category(c) != "Cf")


def _head(bare: str) -> str:
    """A bare word up to a comma, full stop or the like inside it: "Stop,please" and
    "STOP.Thanks" (typed without a space) start with STOP."""
    for index, char in enumerate(bare):
        if _cuts(char):
            return bare[:index]
    return bare


# Letters that read as Latin ones, folded (lower case), beyond what NFKD maps already
# (full-width, mathematical, circled and squared letters): Cyrillic and Greek letters that
# look like Latin ones in upper or lower case (typed on another keyboard layout, or pasted to
# dodge a filter), small capitals and the letter emoji ("fancy text" generators).
_LOOKALIKES = str.maketrans(
    "\u0430\u0432\u0435\u04bb\u0456\u0458\u043a\u043c\u043d\u043e\u0440\u0441\u0455"
    "\u0442\u0443\u0445\u0501\u051b\u051d\u04cf"  # Cyrillic
    "\u03b1\u03b2\u03b5\u03b7\u03b9\u03ba\u03bc\u03bd\u03bf\u03c1\u03c4\u03c5\u03c7"
    "\u03b6"  # Greek
    "\u1d00\u0299\u1d04\u1d05\u1d07\ua730\u0262\u029c\u026a\u1d0a\u1d0b\u029f\u1d0d"
    "\u0274\u1d0f\u1d18\u0280\ua731\u1d1b\u1d1c\u1d20\u1d21\u028f\u1d22",  # small caps
    "abehijkmhopcstyxdqwl" "abehikmnoptyxz" "abcdefghijklmnoprstuvwyz",
) | {first + n: chr(ord("a") + n) for n in range(26)
     for first in (0x1F1E6, 0x1F150, 0x1F170)}  # regional indicators, negative circled/squared


def lookalike(folded: str) -> str:
    """A folded word with the letters that look like Latin ones read as those: STOP in
    Cyrillic letters (DZE, TE, O, ER) is STOP."""
    return folded.translate(_LOOKALIKES)


def whole_forms(folded: str) -> set[str]:
    """The forms of a folded word read whole: as written (a keyword may hold punctuation),
    bare, and bare without what is invisible inside it, in Latin letters or lookalikes."""
    joined = _joined(folded)
    return {folded, _bare(folded), _bare(joined), _bare(lookalike(joined))}


def compliance_forms(folded: str) -> set[str]:
    """The forms of a folded first word compliance looks up in its words: read whole, or up
    to punctuation inside it. More forms only ever add matches: a missed opt-out is a
    compliance failure, an extra one is cheap."""
    joined = _joined(folded)
    heads = {_head(_bare(form)) for form in (folded, joined, lookalike(joined))}
    return whole_forms(folded) | heads


# How much of a first word is compared with keywords, on either side of where its letters
# start (after quotes, emoji; looked for in the first LEAD_CHARS, a whole WhatsApp or Telegram
# message): a keyword is one word, and a megabyte sent without a space must not hold the event
# loop for seconds, each form a pass over all of it.
WORD_CHARS = 256
LEAD_CHARS = 4096


def _compared(word: str) -> str:
    start, end = 0, min(len(word), LEAD_CHARS)
    while start < end and (_decoration(word[start]) or _mark(word[start])):
        start += 1
    return word[max(0, start - WORD_CHARS):start + WORD_CHARS]


def word_forms(word: str, *, whole: bool = False) -> set[str]:
    """The forms of a first word as written (compliance_forms; whole: only whole_forms)."""
    folded = fold(_compared(word))
    return whole_forms(folded) if whole else compliance_forms(folded)


def split_head(word: str, words: Collection[str]) -> tuple[str, str] | None:
    """`word` (as written) cut where punctuation inside it ends one of `words` (folded), and
    what follows the punctuation: "price,shoes" is ("price", "shoes"), so a rule's {rest}
    is "shoes". None if no such cut makes one of them (then the word is read whole)."""
    started, tries = False, 0
    for index, char in enumerate(_compared(word)):
        folded = fold(char)
        if started and any(_cuts(c) for c in folded):
            if not word_forms(word[:index], whole=True).isdisjoint(words):
                after = word[index:]
                start = 0
                while start < len(after) and all(_decoration(c) or _mark(c)
                                                 for c in fold(after[start])):
                    start += 1
                return word[:index], after[start:]
            tries += 1
            if tries == 3:  # bounded: each try folds the word so far
                return None
        started = started or any(not (_decoration(c) or _mark(c)) for c in folded)
    return None

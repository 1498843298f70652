"""Text from webhook payloads made storable, and message previews cut without breaking a character apart.

JSON may carry what no database stores: a NUL (PostgreSQL refuses it) or a lone UTF-16 surrogate (no
encoding has one). Identifiers with either are not ours; message text keeps everything else.
"""

from __future__ import annotations

import unicodedata

PREVIEW_LENGTH = 200
ZWJ = "\u200d"
_REGIONAL_INDICATORS = range(0x1F1E6, 0x1F200)
# Code points that belong to the character before them: variation selectors, emoji skin tones, tag characters.
_EXTENDERS = (range(0xFE00, 0xFE10), range(0x1F3FB, 0x1F400), range(0xE0020, 0xE0080), range(0xE0100, 0xE01F0))


def is_storable(value: str) -> bool:
    """True when every database can store `value` as it is (no NUL, no lone surrogate)."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def storable_text(value: str) -> str:
    """`value` without NULs and with each lone surrogate replaced by U+FFFD."""
    if is_storable(value):
        return value
    repaired = value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return repaired.replace("\x00", "")


def _continues_previous(char: str) -> bool:
    """True for a code point that is drawn as part of the character before it."""
    point = ord(char)
    return (
        char == ZWJ or unicodedata.category(char) in ("Mn", "Me", "Mc") or any(point in block for block in _EXTENDERS)
    )


def _is_regional_indicator(char: str) -> bool:
    return ord(char) in _REGIONAL_INDICATORS


def cut_preview(text: str, limit: int = PREVIEW_LENGTH) -> str:
    """At most `limit` code points of `text`, ending on a whole character.

    A cut never leaves a letter without its accents, an emoji without its skin tone or the rest of its
    ZWJ sequence, or half of a flag; text that is one huge cluster is cut hard at `limit`.
    """
    if len(text) <= limit:
        return text
    end = limit
    while end > 0 and (_continues_previous(text[end]) or text[end - 1] == ZWJ):
        end -= 1
    if end > 0 and _is_regional_indicator(text[end]) and _is_regional_indicator(text[end - 1]):
        run = 0
        while end - run > 0 and _is_regional_indicator(text[end - run - 1]):
            run += 1
        if run % 2:  # the kept part ends with the first half of a flag
            end -= 1
    return text[:end] if end > 0 else text[:limit]

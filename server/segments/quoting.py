"""How a text (``"sports/running"``) and a quoted name (`` `my feature` ``) are written in the DSL.

Both use one escape scheme, JSON's plus ``\\U`` for code points past U+FFFF and ``\\``` for a
backtick. Writing escapes every character that does not print (controls, line separators,
bidirectional overrides, unassigned code points), so rule text shown to a reviewer holds no
invisible character that could make it read differently from what it does. Reading refuses an
unknown escape or a lone surrogate; the message says which rule was broken, never the text.
"""

from __future__ import annotations

from typing import Final

__all__ = ["BACKTICK", "DOUBLE_QUOTE", "TextLiteralError", "quote", "unquote"]

DOUBLE_QUOTE: Final = '"'
BACKTICK: Final = "`"

_SIMPLE_ESCAPES: Final = {
    '"': '"',
    "`": "`",
    "\\": "\\",
    "/": "/",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
}
_WRITTEN_ESCAPES: Final = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_HEX_DIGITS: Final = {"u": 4, "U": 8}
_SURROGATES: Final = range(0xD800, 0xE000)


class TextLiteralError(ValueError):
    """A quoted text that breaks the escape rules; the message names the rule, not the text."""


def quote(value: str, mark: str = DOUBLE_QUOTE) -> str:
    """``value`` between ``mark``s, escaped so that :func:`unquote` gives it back exactly."""
    written = [mark]
    for character in value:
        if character == mark:
            written.append("\\" + mark)
        elif character in _WRITTEN_ESCAPES:
            written.append(_WRITTEN_ESCAPES[character])
        elif character.isprintable():
            written.append(character)
        elif ord(character) <= 0xFFFF:
            written.append(f"\\u{ord(character):04x}")
        else:
            written.append(f"\\U{ord(character):08x}")
    written.append(mark)
    return "".join(written)


def unquote(written: str) -> str:
    """The text a quoted literal (marks included, as the lexer matched it) stands for."""
    body = written[1:-1]
    read: list[str] = []
    index = 0
    while index < len(body):
        character = body[index]
        if character != "\\":
            read.append(character)
            index += 1
            continue
        escape = body[index + 1 : index + 2]
        if escape in _SIMPLE_ESCAPES:
            read.append(_SIMPLE_ESCAPES[escape])
            index += 2
        elif escape in _HEX_DIGITS:
            width = _HEX_DIGITS[escape]
            read.append(_code_point(body[index + 2 : index + 2 + width], width))
            index += 2 + width
        else:
            raise TextLiteralError("a text has an unknown escape; a backslash is written \\\\")
    return "".join(read)


def _code_point(digits: str, width: int) -> str:
    if len(digits) != width or any(digit not in "0123456789abcdefABCDEF" for digit in digits):
        raise TextLiteralError(f"a \\u escape takes 4 hexadecimal digits, a \\U escape 8 (this one wants {width})")
    code = int(digits, 16)
    if code > 0x10FFFF:
        raise TextLiteralError("a \\U escape names a code point past U+10FFFF")
    if code in _SURROGATES:
        raise TextLiteralError("a text holds no surrogate code point; write the character itself or a \\U escape")
    return chr(code)

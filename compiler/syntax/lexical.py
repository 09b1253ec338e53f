"""The lexical level of M/s (SPEC sections 2 and 11): tokens, literal values
and lexical errors.

The parse pass matches the grammar (compiler/syntax/grammar.peg) against the
text; this module independently splits the same text into tokens, which serves
three purposes:

- it finds the first *lexical* error (an unknown character, an unterminated
  comment or literal, a bad escape, an integer literal that is too large...)
  with a precise position and message;
- it decodes every literal once, so building the AST is a lookup by offset;
- it tells a syntax error what token was found where the grammar failed, and
  where the token before it ended.

Its token boundaries agree with the grammar's tokens (the same regular
expressions for numbers and names; literals are scanned here character by
character so that errors point at the offending character), with one
exception: `>>` is one token here, while the grammar reads it as two `>`
where it closes nested types (`vector<vector<int>>`).
"""
from __future__ import annotations

import re
from typing import NamedTuple, Optional

import attrs

KEYWORDS = frozenset("""
    master job remote struct vector map int double bool char string void if else
    while for return break continue true false running finished failed
    cancelled jobstate""".split())

INT_MAX = 9223372036854775807

_ESCAPES = {"n": 10, "t": 9, "r": 13, "0": 0, "\\": 92, "'": 39, '"': 34}

_TRIVIA = re.compile(r"(?:[ \t\r\n\f\v]+|//[^\n]*|/\*[\s\S]*?\*/)+")
_DOUBLE = re.compile(
    r"(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+")
_INT = re.compile(r"[0-9]+")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SUFFIX = re.compile(r"[A-Za-z0-9_]+")
_PUNCT = re.compile(
    r"->|::|&&|\|\||<<=|>>=|<<|>>|==|!=|<=|>=|\+=|-=|\*=|/=|%=|&=|\|=|\^="
    r"|[-+*/%<>=!~&|^()\[\]{},;]")


# Characters of C operators M/s lacks, with what to write instead. (`& | ^ ~`
# are not here: they become operators in v1.1.)
_C_HINTS = {
    ".": " (M/s accesses a struct's fields with '->', as in p->x)",
    "?": " (M/s has no '?:' operator; use if/else)",
}


class Token(NamedTuple):
    kind: str    # name, keyword, int, double, char, string, punct
    text: str
    start: int   # offset of the first character in the source text
    end: int     # offset just past the last character
    value: object = None  # decoded value of a literal


@attrs.frozen
class LexError:
    offset: int
    message: str


@attrs.frozen
class Lexed:
    """The tokens of a text, up to its first lexical error (if any)."""
    tokens: tuple
    error: Optional[LexError]


class _Stop(Exception):
    def __init__(self, offset: int, message: str):
        super().__init__(message)
        self.offset = offset
        self.message = message


def describe_char(c: str) -> str:
    """How an error message shows one source character."""
    if c.isprintable() and not c.isspace():
        return f"'{c}'"
    return f"U+{ord(c):04X}"


def _scan_quoted(text: str, start: int, quote: str) -> tuple[int, bytes]:
    """Scan a char or string literal opening at `start`; return (end, bytes)."""
    what = "character" if quote == "'" else "string"
    out = bytearray()
    i = start + 1
    n = len(text)
    while True:
        if i >= n or text[i] == "\n":
            raise _Stop(start, f"unterminated {what} literal")
        c = text[i]
        if c == quote:
            return i + 1, bytes(out)
        if c == "\\":
            if i + 1 >= n or text[i + 1] == "\n":
                raise _Stop(start, f"unterminated {what} literal")
            e = text[i + 1]
            if e in _ESCAPES:
                out.append(_ESCAPES[e])
                i += 2
                continue
            if e == "x":
                digits = text[i + 2:i + 4]
                if len(digits) == 2 and all(d in "0123456789abcdefABCDEF"
                                            for d in digits):
                    out.append(int(digits, 16))
                    i += 4
                    continue
                raise _Stop(i, "escape '\\x' needs two hexadecimal digits")
            shown = "\\" + e if e.isprintable() else "\\" + describe_char(e)
            raise _Stop(i, f"unknown escape sequence '{shown}'")
        out += c.encode("utf-8", "surrogatepass")
        i += 1


def _char_value(text: str, start: int, end: int, data: bytes) -> int:
    if not data:
        raise _Stop(start, "empty character literal")
    if len(data) > 1:
        body = text[start:end]
        if "\\" not in body and len(body) == 3:
            raise _Stop(start, f"character literal {body} is {len(data)} "
                               "bytes in UTF-8; a char is one byte")
        raise _Stop(start, f"character literal {body} holds more than "
                           "one character")
    return data[0]


def _number(text: str, start: int) -> Token:
    m = _DOUBLE.match(text, start)
    if m:
        kind = "double"
    else:
        m = _INT.match(text, start)
        kind = "int"
    end = m.end()
    s = m.group()
    suffix = _SUFFIX.match(text, end)
    if suffix:
        noun = "integer" if kind == "int" else "double"
        raise _Stop(end, f"invalid suffix '{suffix.group()}' on {noun} "
                         "literal")
    if kind == "int":
        value = int(s)
        if value > INT_MAX:
            raise _Stop(start, f"integer literal {s} is too large "
                               f"(the largest int is {INT_MAX})")
    else:
        value = float(s)
        if value == float("inf"):
            raise _Stop(start, f"double literal {s} is too large "
                               "(it overflows to infinity)")
    return Token(kind, s, start, end, value)


def tokenize(text: str) -> Lexed:
    """Split `text` into tokens, stopping at the first lexical error."""
    tokens = []
    i = 0
    n = len(text)
    try:
        while i < n:
            m = _TRIVIA.match(text, i)
            if m:
                i = m.end()
                continue
            c = text[i]
            if c == "/" and text.startswith("/*", i):
                raise _Stop(i, "unterminated comment")
            if c.isdigit() and c.isascii() or (
                    c == "." and i + 1 < n and text[i + 1].isascii()
                    and text[i + 1].isdigit()):
                tok = _number(text, i)
            elif c.isascii() and (c.isalpha() or c == "_"):
                m = _WORD.match(text, i)
                word = m.group()
                kind = "keyword" if word in KEYWORDS else "name"
                tok = Token(kind, word, i, m.end())
            elif c == "'":
                end, data = _scan_quoted(text, i, "'")
                tok = Token("char", text[i:end], i, end,
                            _char_value(text, i, end, data))
            elif c == '"':
                end, data = _scan_quoted(text, i, '"')
                tok = Token("string", text[i:end], i, end, data)
            else:
                m = _PUNCT.match(text, i)
                if not m:
                    raise _Stop(i, f"unexpected character {describe_char(c)}"
                                   + _C_HINTS.get(c, ""))
                tok = Token("punct", m.group(), i, m.end())
            tokens.append(tok)
            i = tok.end
    except _Stop as e:
        return Lexed(tuple(tokens), LexError(e.offset, e.message))
    return Lexed(tuple(tokens), None)

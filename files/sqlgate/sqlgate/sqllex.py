# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""Lexical analysis of one SQL text, shared by the classifier and the validator.

``lex`` reads the text once, left to right, in time linear in its length, the way MySQL and MariaDB
read it in the sql_mode the proxy pins (no ANSI_QUOTES, no NO_BACKSLASH_ESCAPES, no PIPES_AS_CONCAT,
no IGNORE_SPACE): backslash escapes and ``''`` doubling in ``'...'`` and ``"..."`` strings, backtick
identifiers with ````` doubling, ``N'...'``, ``X'...'`` and ``B'...'`` literals, ``0x``/``0b``
numbers (the prefix is case-sensitive, as in MySQL), decimals and exponents, pymysql's ``%s``
placeholders, punctuation and operators.

Where the servers' reading is subtle, or where the driver's substitution of ``%s`` could glue two
tokens into one, the text is refused rather than guessed at:

* every comment (``#``, ``--``, ``/* */``; MySQL *executes* ``/*! */``, ``/*M! */`` and ``/*+ */``);
* a second statement after ``;``;
* characters outside a small allow-list outside literals (``@``, ``$``, ``\\``, ``?``, braces,
  brackets, non-ASCII and control characters);
* unterminated literals (400);
* ``ambiguous_token``: a number directly followed by a letter, digit, ``_`` or ``$`` (``1.5from``,
  ``0x1where``, ``1_000``: MySQL reads some of these as one identifier, some as two tokens); a name
  part after ``.`` that starts with a digit (``t.1e1``); a quoted string or backtick name directly
  followed by a letter or digit (``'x'where``); a name directly followed by a quote (``abc'x'``),
  except the prefixes ``N``, ``X`` and ``B``; a ``%s`` directly touching a name, a number, a quote or a
  ``.`` (``%swhere``, ``x%s``, ``%s%s``: once the driver writes the value in, MySQL would read a
  different token);
* ``unsupported_syntax`` (400): character set introducers (``_utf8mb4'x'``, ``_binary 'x'``: they
  change how the literal's bytes are read; pass such values as parameters) and ``:=`` assignments.

Parentheses are matched here; each token carries its depth (``(`` and ``)`` carry the depth
outside them), which is capped at ``MAX_DEPTH``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

# Deeper nesting serves no sakila query and would let a hostile text exhaust the analysis.
MAX_DEPTH = 64

_WHITESPACE = frozenset(' \t\r\n')
_WS_RUN = re.compile(r'[ \t\r\n]+')
_WORD_RUN = re.compile(r'[A-Za-z0-9_]+')
_NUMBER = re.compile(r'0x[0-9a-fA-F]+|0b[01]+|(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?')
_STRING_RUN = {"'": re.compile(r"[^'\\]*"), '"': re.compile(r'[^"\\]*')}
_HEX_BODY = re.compile(r"[0-9a-fA-F]*'")
_BIT_BODY = re.compile(r"[01]*'")
_LETTERS = frozenset('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_')
_DIGITS = frozenset('0123456789')
_WORD_CHARS = _LETTERS | _DIGITS
# After a number: characters that MySQL could read as part of the same token.
_NUMBER_GLUE = _WORD_CHARS | {'$'}
# Characters after which a '.' is a qualifier's dot, not the start of a number.
_NAME_END = _WORD_CHARS | {'`'}
# Characters that must not touch a %s placeholder: the value the driver writes in would merge with them.
_PLACEHOLDER_GLUE = _WORD_CHARS | {"'", '"', '`', '.', '$'}
_OPERATORS3 = frozenset({'<=>', '->>'})
_OPERATORS2 = frozenset({'<=', '>=', '<>', '!=', '<<', '>>', '&&', '||', '->'})
_OPERATORS1 = frozenset('=<>!~^&|+-*/')
_PUNCT = frozenset('(),.')
_CHAR_HINTS = {
    '@': 'variables are not allowed',
    '\\': 'a backslash is only allowed inside a quoted string',
    '?': "'?' placeholders are not supported; use %s",
    '$': "'$' is only allowed inside a quoted string",
    ':': "':' is only allowed inside a quoted string",
}
# MySQL and MariaDB character set names: '_<name>' is an introducer, not an identifier.
_CHARSETS = frozenset({
    'armscii8', 'ascii', 'big5', 'binary', 'cp1250', 'cp1251', 'cp1256', 'cp1257', 'cp850', 'cp852', 'cp866',
    'cp932', 'dec8', 'eucjpms', 'euckr', 'filename', 'gb18030', 'gb2312', 'gbk', 'geostd8', 'greek', 'hebrew', 'hp8',
    'keybcs2', 'koi8r', 'koi8u', 'latin1', 'latin2', 'latin5', 'latin7', 'macce', 'macroman', 'sjis', 'swe7',
    'tis620', 'ucs2', 'ujis', 'utf16', 'utf16le', 'utf32', 'utf8', 'utf8mb3', 'utf8mb4',
})


class LexError(Exception):
    """The text cannot be analysed; ``status`` 400 for malformed input, 403 for refused syntax."""

    def __init__(self, code: str, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Literal:
    """A quoted span ``text[start:end]`` as MySQL reads it; ``quote`` is ``'``, ``"`` or a backtick.

    For ``N'x'``, ``X'0F'`` and ``B'01'`` the span starts at the quote, after the prefix."""

    start: int
    end: int
    quote: str


@dataclass(frozen=True)
class Scan:
    literals: tuple[Literal, ...]
    # Number of '%s' placeholders outside literals.
    placeholders: int
    # Why the text cannot go through pymysql's %-formatting (None when it can).
    format_problem: str | None
    # Offset just after the last significant character, before an optional trailing ';'.
    code_end: int


class Tok(NamedTuple):
    """A significant token with what the policy needs to know about it."""

    kind: str  # word, qword (backtick-quoted), string, number, placeholder, punct ( ) , . and op
    value: str  # the raw text
    up: str  # words: upper case; everything else: the raw text
    name: str  # words: lower case; qwords: the identifier in lower case, without quotes; else the raw text
    start: int  # offset in the text
    depth: int  # parenthesis depth; '(' and ')' carry the depth outside them


@dataclass(frozen=True)
class Lexed:
    scan: Scan
    toks: tuple[Tok, ...]


def _describe_char(char: str) -> str:
    if char in _CHAR_HINTS:
        return _CHAR_HINTS[char]
    if ord(char) < 32 or ord(char) == 127:
        return f'control character U+{ord(char):04X} is not allowed outside quoted strings'
    if ord(char) > 127:
        return f'non-ASCII character U+{ord(char):04X} is only allowed inside quoted strings'
    return f'character {char!r} is not allowed outside quoted strings'


def _ambiguous(offset: int, what: str) -> LexError:
    return LexError('ambiguous_token', f'{what} at offset {offset} can be read more than one way; '
                                       'separate the tokens with a space')


def _literal_format_problem(text: str, start: int, end: int) -> str | None:
    pos = text.find('%', start, end)
    while pos != -1:
        nxt = text[pos + 1] if pos + 1 < end else ''
        if nxt == 's':
            return 'a %s placeholder inside a quoted literal is not allowed; pass the whole value as a parameter'
        if nxt != '%':
            return "with params, a literal '%' must be written '%%'"
        pos = text.find('%', pos + 2, end)
    return None


def _string_end(text: str, start: int) -> int:
    """The offset after the string literal whose opening quote is at ``start``."""
    quote = text[start]
    run = _STRING_RUN[quote]
    n = len(text)
    j = start + 1
    while True:
        j = run.match(text, j).end()  # type: ignore[union-attr]  # '*' always matches
        if j >= n:
            raise LexError('unterminated_literal', f'unterminated string starting at offset {start}', 400)
        if text[j] == '\\' or (j + 1 < n and text[j + 1] == quote):  # an escape, or a doubled quote
            j += 2
        else:
            return j + 1


def _name_end(text: str, start: int) -> int:
    """The offset after the backtick-quoted identifier starting at ``start``."""
    n = len(text)
    j = start + 1
    while True:
        j = text.find('`', j)
        if j == -1:
            raise LexError('unterminated_literal', f'unterminated quoted identifier starting at offset {start}', 400)
        if j + 1 < n and text[j + 1] == '`':
            j += 2
        else:
            return j + 1


def _binary_literal_end(text: str, prefix: int, quote: int, body: re.Pattern[str], what: str) -> int:
    match = body.match(text, quote + 1)
    if match is None:
        if text.find("'", quote + 1) == -1:
            raise LexError('unterminated_literal', f'unterminated {what} literal starting at offset {prefix}', 400)
        raise LexError('ambiguous_token', f'the {what} literal at offset {prefix} holds characters that are '
                                          f'not {what} digits')
    return match.end()


def lex(text: str) -> Lexed:  # noqa: C901 - one loop over the characters, on purpose
    """Read ``text`` as MySQL does; refuse comments, stacked statements, stray characters and ambiguous tokens."""
    n = len(text)
    toks: list[Tok] = []
    append = toks.append
    literals: list[Literal] = []
    placeholders = 0
    format_problem: str | None = None
    depth = 0
    code_end = 0
    semicolon = False
    i = 0
    while i < n:
        c = text[i]
        if c in _WHITESPACE:
            i = _WS_RUN.match(text, i).end()  # type: ignore[union-attr]
            continue
        if semicolon:
            raise LexError('multiple_statements', 'only one statement per request is allowed')
        if c in _LETTERS:
            j = _WORD_RUN.match(text, i).end()  # type: ignore[union-attr]
            word = text[i:j]
            if word[0] == '_' and word[1:].lower() in _CHARSETS:
                raise LexError('unsupported_syntax', f'the character set introducer {word} at offset {i} is not '
                                                     'supported; pass the value as a parameter', 400)
            nxt = text[j] if j < n else ''
            if nxt == "'":
                up = word.upper()
                if up == 'N':
                    end = _string_end(text, j)
                    kind = 'string'
                elif up == 'X':
                    end = _binary_literal_end(text, i, j, _HEX_BODY, 'hexadecimal')
                    kind = 'number'
                elif up == 'B':
                    end = _binary_literal_end(text, i, j, _BIT_BODY, 'binary')
                    kind = 'number'
                else:
                    raise _ambiguous(i, f'the name {word} directly followed by a quote')
                literals.append(Literal(j, end, "'"))
                if format_problem is None:
                    format_problem = _literal_format_problem(text, j, end)
                if end < n and text[end] in _NUMBER_GLUE:
                    raise _ambiguous(i, 'a quoted literal directly followed by a name')
                value = text[i:end]
                append(Tok(kind, value, value, value, i, depth))
                i = code_end = end
                continue
            if nxt == '"' or nxt == '`':
                raise _ambiguous(i, f'the name {word} directly followed by a quote')
            append(Tok('word', word, word.upper(), word.lower(), i, depth))
            i = code_end = j
            continue
        nxt = text[i + 1] if i + 1 < n else ''
        if c in _DIGITS or (c == '.' and nxt in _DIGITS and not (i and text[i - 1] in _NAME_END)):
            if toks and toks[-1].kind == 'punct' and toks[-1].value == '.':
                raise _ambiguous(i, "a name part after '.' that starts with a digit")
            j = _NUMBER.match(text, i).end()  # type: ignore[union-attr]
            if j < n and text[j] in _NUMBER_GLUE:
                raise _ambiguous(i, f'the number {text[i:j]} directly followed by {text[j]!r}')
            value = text[i:j]
            append(Tok('number', value, value, value, i, depth))
            i = code_end = j
            continue
        if c == "'" or c == '"':
            end = _string_end(text, i)
            literals.append(Literal(i, end, c))
            if format_problem is None:
                format_problem = _literal_format_problem(text, i, end)
            if end < n and text[end] in _NUMBER_GLUE:
                raise _ambiguous(i, 'a quoted string directly followed by a name')
            value = text[i:end]
            append(Tok('string', value, value, value, i, depth))
            i = code_end = end
            continue
        if c == '`':
            end = _name_end(text, i)
            literals.append(Literal(i, end, c))
            if format_problem is None:
                format_problem = _literal_format_problem(text, i, end)
            if end < n and (text[end] in _NUMBER_GLUE or text[end] in '\'"'):
                raise _ambiguous(i, 'a quoted name directly followed by a name or a quote')
            value = text[i:end]
            append(Tok('qword', value, value, value[1:-1].replace('``', '`').lower(), i, depth))
            i = code_end = end
            continue
        if c == '%':
            if nxt == 's':
                if (i and text[i - 1] in _PLACEHOLDER_GLUE) or (i + 2 < n and text[i + 2] in _PLACEHOLDER_GLUE):
                    raise _ambiguous(i, 'a %s placeholder touching another token')
                placeholders += 1
                append(Tok('placeholder', '%s', '%s', '%s', i, depth))
                i = code_end = i + 2
                continue
            if nxt == '%':  # the driver turns '%%' into '%' (modulo) when there are params
                append(Tok('op', '%%', '%%', '%%', i, depth))
                i = code_end = i + 2
                continue
            if format_problem is None:
                format_problem = f"with params, a '%' at offset {i} must be written '%%' (only %s placeholders exist)"
            append(Tok('op', '%', '%', '%', i, depth))
            i = code_end = i + 1
            continue
        if c in _PUNCT:
            if c == ')':
                depth -= 1
                if depth < 0:
                    raise LexError('unbalanced_parentheses', f"unbalanced ')' at offset {i}", 400)
            append(Tok('punct', c, c, c, i, depth))
            if c == '(':
                depth += 1
                if depth > MAX_DEPTH:
                    raise LexError('too_deeply_nested', f'parentheses nest deeper than {MAX_DEPTH} levels', 400)
            i = code_end = i + 1
            continue
        if c == ';':
            semicolon = True
            i += 1
            continue
        if c == '#' or (c == '/' and nxt == '*') or (c == '-' and nxt == '-'):
            raise LexError(
                'comment_not_allowed',
                "comments are not allowed ('#', '--' and '/* */'; MySQL executes /*! */ comments)",
            )
        if c == ':' and nxt == '=':
            raise LexError('unsupported_syntax', f"the ':=' assignment at offset {i} is not supported; use '='", 400)
        if c in _OPERATORS1:
            if text[i:i + 3] in _OPERATORS3:
                j = i + 3
            elif c + nxt in _OPERATORS2:
                j = i + 2
            else:
                j = i + 1
            value = text[i:j]
            append(Tok('op', value, value, value, i, depth))
            i = code_end = j
            continue
        raise LexError('character_not_allowed', _describe_char(c))
    if depth != 0:
        raise LexError('unbalanced_parentheses', 'unbalanced parentheses', 400)
    if not toks:
        raise LexError('empty_query', 'the query is empty', 400)
    return Lexed(Scan(tuple(literals), placeholders, format_problem, code_end), tuple(toks))


def scan(text: str) -> Scan:
    """What ``lex`` learns about the literals, placeholders and end of ``text``; raises ``LexError`` as it does."""
    return lex(text).scan


def statement_verb(toks: tuple[Tok, ...]) -> str:
    """The statement type: its first keyword, looking past leading '(' and a WITH clause."""
    i = 0
    while i < len(toks) and toks[i].value == '(' and toks[i].kind == 'punct':
        i += 1
    if i >= len(toks) or toks[i].kind != 'word':
        return ''
    verb = toks[i].up
    if verb != 'WITH':
        return verb
    base = toks[i].depth
    for tok in toks[i + 1:]:
        if tok.depth == base and tok.kind == 'word' and tok.up in ('SELECT', 'INSERT', 'UPDATE', 'DELETE', 'REPLACE'):
            return tok.up
    return verb

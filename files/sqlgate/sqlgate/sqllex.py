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
  brackets, non-ASCII and control characters), and anything but printable ASCII in a backtick name
  (MySQL compares column names ignoring case and accents, so ```pässword``` could name ``password``);
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

_WS_RUN = re.compile(r'[ \t\r\n]*')
# The tokens read by one regular expression (leading whitespace included): 1 word, 2 ( ) , 3 number,
# 4 dot, 5 comment, 6 operator, 7 %s %% %. A '.' directly after a name is a qualifier's dot, not a
# number. Quotes, ';', ':' and refused characters are read by hand.
_TOKEN = re.compile(
    r'[ \t\r\n]*(?:'
    r'([A-Za-z_][A-Za-z0-9_]*)'
    r'|([(),])'
    r'|(0x[0-9a-fA-F]+|0b[01]+|(?:[0-9]+(?:\.[0-9]*)?|(?<![A-Za-z0-9_`])\.[0-9]+)(?:[eE][+-]?[0-9]+)?)'
    r'|(\.)'
    r'|(--|/\*|\#)'
    r'|(<=>|->>|<=|>=|<>|!=|<<|>>|&&|\|\||->|[=<>!~^&|+*/-])'
    r'|(%[s%]?)'
    r')'
)
_STRING_RUN = {"'": re.compile(r"[^'\\]*"), '"': re.compile(r'[^"\\]*')}
_HEX_BODY = re.compile(r"[0-9a-fA-F]*'")
_BIT_BODY = re.compile(r"[01]*'")
_WORD_CHARS = frozenset('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789')
# After a number or a quoted literal: characters that MySQL could read as part of the same token.
_NUMBER_GLUE = _WORD_CHARS | {'$'}
# Characters that must not touch a %s placeholder: the value the driver writes in would merge with them.
_PLACEHOLDER_GLUE = _WORD_CHARS | {"'", '"', '`', '.', '$'}
_QUOTES = frozenset({"'", '"', '`'})
# Quoted names are printable ASCII only.
_NAME_CHAR_PROBLEM = re.compile(r'[^\x20-\x7e]')
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


def lex(text: str) -> Lexed:  # noqa: C901 - one loop over the tokens, on purpose
    """Read ``text`` as MySQL does; refuse comments, stacked statements, stray characters and ambiguous tokens."""
    n = len(text)
    toks: list[Tok] = []
    append = toks.append
    new = tuple.__new__
    match = _TOKEN.match
    literals: list[Literal] = []
    placeholders = 0
    format_problem: str | None = None
    depth = 0
    code_end = 0
    semicolon = False
    pos = 0
    while True:
        m = match(text, pos)
        if m is not None:
            group = m.lastindex
            start = m.start(group)  # type: ignore[arg-type]
            end = m.end()
            if semicolon:
                raise LexError('multiple_statements', 'only one statement per request is allowed')
            if group == 1:  # a word
                word = m.group(1)
                nxt = text[end:end + 1]
                if word[0] == '_' and word[1:].lower() in _CHARSETS:
                    raise LexError('unsupported_syntax', f'the character set introducer {word} at offset {start} is '
                                                         'not supported; pass the value as a parameter', 400)
                if nxt in _QUOTES:
                    if nxt != "'":
                        raise _ambiguous(start, f'the name {word} directly followed by a quote')
                    up = word.upper()
                    if up == 'N':
                        end = _string_end(text, end)
                        kind = 'string'
                    elif up == 'X':
                        end = _binary_literal_end(text, start, end, _HEX_BODY, 'hexadecimal')
                        kind = 'number'
                    elif up == 'B':
                        end = _binary_literal_end(text, start, end, _BIT_BODY, 'binary')
                        kind = 'number'
                    else:
                        raise _ambiguous(start, f'the name {word} directly followed by a quote')
                    literals.append(Literal(start + 1, end, "'"))
                    if format_problem is None:
                        format_problem = _literal_format_problem(text, start + 1, end)
                    if end < n and text[end] in _NUMBER_GLUE:
                        raise _ambiguous(start, 'a quoted literal directly followed by a name')
                    value = text[start:end]
                    append(new(Tok, (kind, value, value, value, start, depth)))
                else:
                    append(new(Tok, ('word', word, word.upper(), word.lower(), start, depth)))
            elif group == 2:  # ( ) ,
                char = text[start]
                if char == ')':
                    depth -= 1
                    if depth < 0:
                        raise LexError('unbalanced_parentheses', f"unbalanced ')' at offset {start}", 400)
                    append(new(Tok, ('punct', ')', ')', ')', start, depth)))
                elif char == '(':
                    append(new(Tok, ('punct', '(', '(', '(', start, depth)))
                    depth += 1
                    if depth > MAX_DEPTH:
                        raise LexError('too_deeply_nested', f'parentheses nest deeper than {MAX_DEPTH} levels', 400)
                else:
                    append(new(Tok, ('punct', ',', ',', ',', start, depth)))
            elif group == 3:  # a number
                if toks and toks[-1][1] == '.' and toks[-1][0] == 'punct':
                    raise _ambiguous(start, "a name part after '.' that starts with a digit")
                if end < n and text[end] in _NUMBER_GLUE:
                    raise _ambiguous(start, f'the number {text[start:end]} directly followed by {text[end]!r}')
                value = m.group(3)
                append(new(Tok, ('number', value, value, value, start, depth)))
            elif group == 4:  # a qualifier's dot
                append(new(Tok, ('punct', '.', '.', '.', start, depth)))
            elif group == 5:
                raise LexError(
                    'comment_not_allowed',
                    "comments are not allowed ('#', '--' and '/* */'; MySQL executes /*! */ comments)",
                )
            elif group == 6:  # an operator
                value = m.group(6)
                append(new(Tok, ('op', value, value, value, start, depth)))
            else:  # %s, %% or %
                value = m.group(7)
                if value == '%s':
                    if (start and text[start - 1] in _PLACEHOLDER_GLUE) or (end < n and text[end] in _PLACEHOLDER_GLUE):
                        raise _ambiguous(start, 'a %s placeholder touching another token')
                    placeholders += 1
                    append(new(Tok, ('placeholder', '%s', '%s', '%s', start, depth)))
                else:  # the driver turns '%%' into '%' (modulo) when there are params
                    if value == '%' and format_problem is None:
                        format_problem = (f"with params, a '%' at offset {start} must be written '%%' "
                                          '(only %s placeholders exist)')
                    append(new(Tok, ('op', value, value, value, start, depth)))
            pos = code_end = end
            continue
        # Whitespace, then a quote, ';', ':', a refused character or the end.
        pos = _WS_RUN.match(text, pos).end()  # type: ignore[union-attr]  # '*' always matches
        if pos >= n:
            break
        c = text[pos]
        if semicolon:
            raise LexError('multiple_statements', 'only one statement per request is allowed')
        if c == "'" or c == '"':
            end = _string_end(text, pos)
            literals.append(Literal(pos, end, c))
            if format_problem is None:
                format_problem = _literal_format_problem(text, pos, end)
            if end < n and text[end] in _NUMBER_GLUE:
                raise _ambiguous(pos, 'a quoted string directly followed by a name')
            value = text[pos:end]
            append(new(Tok, ('string', value, value, value, pos, depth)))
        elif c == '`':
            end = _name_end(text, pos)
            bad = _NAME_CHAR_PROBLEM.search(text, pos + 1, end - 1)
            if bad is not None:
                # MySQL folds case and accents when it compares column names (`pässword` may name password)
                raise LexError('character_not_allowed',
                               f'{_describe_char(bad.group())} (in the quoted name at offset {pos})')
            literals.append(Literal(pos, end, c))
            if format_problem is None:
                format_problem = _literal_format_problem(text, pos, end)
            if end < n and (text[end] in _NUMBER_GLUE or text[end] in '\'"'):
                raise _ambiguous(pos, 'a quoted name directly followed by a name or a quote')
            value = text[pos:end]
            append(new(Tok, ('qword', value, value, value[1:-1].replace('``', '`').lower(), pos, depth)))
        elif c == ';':
            semicolon = True
            pos += 1
            continue
        elif c == ':' and text[pos + 1:pos + 2] == '=':
            raise LexError('unsupported_syntax', f"the ':=' assignment at offset {pos} is not supported; use '='", 400)
        else:
            raise LexError('character_not_allowed', _describe_char(c))
        pos = code_end = end
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

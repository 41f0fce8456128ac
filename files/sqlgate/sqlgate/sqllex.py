# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""Lexical analysis of one SQL text, shared by the classifier and the validator.

``lex`` reads the text once, left to right, in time linear in its length, the way MySQL and MariaDB
read it in the sql_mode the proxy pins (no ANSI_QUOTES, no NO_BACKSLASH_ESCAPES, no PIPES_AS_CONCAT,
no IGNORE_SPACE): backslash escapes and ``''`` doubling in ``'...'`` and ``"..."`` strings, backtick
identifiers (a doubled backtick inside is one), ``N'...'``, ``X'...'`` and ``B'...'`` literals, ``0x``/``0b``
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
from functools import cached_property
from typing import NamedTuple

# Deeper nesting serves no sakila query and would let a hostile text exhaust the analysis.
MAX_DEPTH = 64

# Every token, its leading whitespace included, read by one regular expression; the group says which:
# 1 word, 2 ( ) ,, 3 number, 4 dot, 5 comment, 6 operator, 7 string, 8 backtick name, 9 %s %% %,
# 10 a word directly followed by a quote (N'x', X'0F', B'01' or refused), 11 any other character
# (';', a lone quote: its literal is unterminated, a refused character). A '.' directly after a name
# is a qualifier's dot, not a number. The literals are read the MySQL way: backslash escapes, doubled
# quotes, and the first quote that is neither ends it; the (?!') after it keeps backtracking from
# ending the literal anywhere else, and the unrolled loops cannot backtrack more than linearly.
_TOKEN = re.compile(
    r'[ \t\r\n]*(?:'
    r'([A-Za-z_][A-Za-z0-9_]*)(?![A-Za-z0-9_\'"`])'
    r'|([(),])'
    r'|(0x[0-9a-fA-F]+|0b[01]+|(?:[0-9]+(?:\.[0-9]*)?|(?<![A-Za-z0-9_`])\.[0-9]+)(?:[eE][+-]?[0-9]+)?)'
    r'|(\.)'
    r'|(--|/\*|\#)'
    r'|(<=>|->>|<=|>=|<>|!=|<<|>>|&&|\|\||->|[=<>!~^&|+*/-])'
    r"""|('[^'\\]*(?:(?:\\(?s:.)|'')[^'\\]*)*'(?!')|"[^"\\]*(?:(?:\\(?s:.)|"")[^"\\]*)*"(?!"))"""
    r'|(`[^`]*(?:``[^`]*)*`(?!`))'
    r'|(%[s%]?)'
    r'|([A-Za-z_][A-Za-z0-9_]*)'
    r'|((?s:.))'
    r')'
)
_HEX_BODY = re.compile(r'[0-9a-fA-F]*')
_BIT_BODY = re.compile(r'[01]*')
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


class Literal(NamedTuple):
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
    """The tokens as parallel lists (what the validator reads), and as ``Tok`` tuples on demand."""

    scan: Scan
    kinds: list[str]
    values: list[str]
    words: list[str]  # words: upper case; every other token: ''
    names: list[str]  # words: lower case; qwords: the identifier in lower case; every other token: its text
    starts: list[int]
    depths: list[int]

    @cached_property
    def toks(self) -> tuple[Tok, ...]:
        new = tuple.__new__
        columns = zip(self.kinds, self.values, self.words, self.names, self.starts, self.depths, strict=True)
        return tuple(new(Tok, (kind, value, word or value, name, start, depth))
                     for kind, value, word, name, start, depth in columns)


def _describe_char(char: str) -> str:
    if char in _CHAR_HINTS:
        return _CHAR_HINTS[char]
    if ord(char) < 32 or ord(char) == 127:
        return f'control character U+{ord(char):04X} is not allowed outside quoted strings'
    if ord(char) > 127:
        return f'non-ASCII character U+{ord(char):04X} is only allowed inside quoted strings'
    return f'character {char!r} is not allowed outside quoted strings'


def _introducer(word: str, offset: int) -> LexError:
    return LexError('unsupported_syntax', f'the character set introducer {word} at offset {offset} is not supported; '
                                          'pass the value as a parameter', 400)


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


def lex(text: str) -> Lexed:
    """Read ``text`` as MySQL does; refuse comments, stacked statements, stray characters and ambiguous tokens."""
    n = len(text)
    kinds: list[str] = []
    values: list[str] = []
    words: list[str] = []
    names: list[str] = []
    starts: list[int] = []
    depths: list[int] = []
    add_kind, add_value, add_word, add_name = kinds.append, values.append, words.append, names.append
    add_start, add_depth = starts.append, depths.append
    literals: list[Literal] = []
    placeholders = 0
    format_problem: str | None = None
    depth = 0
    semicolon = False
    prefix = -1  # offset of an N, X or B directly before the quoted literal that comes next
    # Trailing whitespace is left out: the pattern would try it position by position.
    limit = len(text.rstrip(' \t\r\n'))
    for m in _TOKEN.finditer(text, 0, limit):
        group = m.lastindex
        if semicolon:
            raise LexError('multiple_statements', 'only one statement per request is allowed')
        if group == 1:  # a word
            word = m.group(1)
            if word[0] == '_' and word[1:].lower() in _CHARSETS:
                raise _introducer(word, m.start(1))
            add_kind('word')
            add_value(word)
            add_word(word.upper())
            add_name(word.lower())
            add_start(m.start(1))
            add_depth(depth)
        elif group == 2:  # ( ) ,
            start = m.start(2)
            char = text[start]
            if char == ')':
                depth -= 1
                if depth < 0:
                    raise LexError('unbalanced_parentheses', f"unbalanced ')' at offset {start}", 400)
                add_kind('punct')
                add_value(')')
                add_word('')
                add_name(')')
                add_start(start)
                add_depth(depth)
            elif char == '(':
                add_kind('punct')
                add_value('(')
                add_word('')
                add_name('(')
                add_start(start)
                add_depth(depth)
                depth += 1
                if depth > MAX_DEPTH:
                    raise LexError('too_deeply_nested', f'parentheses nest deeper than {MAX_DEPTH} levels', 400)
            else:
                add_kind('punct')
                add_value(',')
                add_word('')
                add_name(',')
                add_start(start)
                add_depth(depth)
        elif group == 3:  # a number
            start, end = m.span(3)
            if values and values[-1] == '.' and kinds[-1] == 'punct':
                raise _ambiguous(start, "a name part after '.' that starts with a digit")
            if end < n and text[end] in _NUMBER_GLUE:
                raise _ambiguous(start, f'the number {text[start:end]} directly followed by {text[end]!r}')
            value = m.group(3)
            add_kind('number')
            add_value(value)
            add_word('')
            add_name(value)
            add_start(start)
            add_depth(depth)
        elif group == 4:  # a qualifier's dot
            add_kind('punct')
            add_value('.')
            add_word('')
            add_name('.')
            add_start(m.start(4))
            add_depth(depth)
        elif group == 5:
            raise LexError(
                'comment_not_allowed',
                "comments are not allowed ('#', '--' and '/* */'; MySQL executes /*! */ comments)",
            )
        elif group == 6:  # an operator
            value = m.group(6)
            add_kind('op')
            add_value(value)
            add_word('')
            add_name(value)
            add_start(m.start(6))
            add_depth(depth)
        elif group == 7:  # a string, possibly after N, X or B
            start, end = m.span(7)
            literals.append(Literal(start, end, text[start]))
            if format_problem is None and text.find('%', start, end) >= 0:
                format_problem = _literal_format_problem(text, start, end)
            if end < n and text[end] in _NUMBER_GLUE:
                raise _ambiguous(start, 'a quoted literal directly followed by a name')
            kind = 'string'
            if prefix >= 0:
                if prefix + 1 != start:
                    raise _ambiguous(prefix, 'a prefix separated from its literal')  # cannot happen
                letter = text[prefix].upper()
                if letter != 'N':  # X'...' and B'...' end at the first quote: digits only
                    body = _HEX_BODY if letter == 'X' else _BIT_BODY
                    if body.fullmatch(text, start + 1, end - 1) is None:
                        digits = 'hexadecimal' if letter == 'X' else 'binary'
                        raise LexError('ambiguous_token', f'the {digits} literal at offset {prefix} holds characters '
                                                          f'that are not {digits} digits')
                    kind = 'number'
                start, prefix = prefix, -1
            value = text[start:end]
            add_kind(kind)
            add_value(value)
            add_word('')
            add_name(value)
            add_start(start)
            add_depth(depth)
        elif group == 8:  # a backtick name
            start, end = m.span(8)
            bad = _NAME_CHAR_PROBLEM.search(text, start + 1, end - 1)
            if bad is not None:
                # MySQL folds case and accents when it compares column names (`pässword` may name password)
                raise LexError('character_not_allowed',
                               f'{_describe_char(bad.group())} (in the quoted name at offset {start})')
            literals.append(Literal(start, end, '`'))
            if format_problem is None and text.find('%', start, end) >= 0:
                format_problem = _literal_format_problem(text, start, end)
            if end < n and (text[end] in _NUMBER_GLUE or text[end] in '\'"'):
                raise _ambiguous(start, 'a quoted name directly followed by a name or a quote')
            value = text[start:end]
            add_kind('qword')
            add_value(value)
            add_word('')
            add_name(value[1:-1].replace('``', '`').lower())
            add_start(start)
            add_depth(depth)
        elif group == 9:  # %s, %% or %
            start, end = m.span(9)
            value = m.group(9)
            if value == '%s':
                if (start and text[start - 1] in _PLACEHOLDER_GLUE) or (end < n and text[end] in _PLACEHOLDER_GLUE):
                    raise _ambiguous(start, 'a %s placeholder touching another token')
                placeholders += 1
                add_kind('placeholder')
                add_value('%s')
                add_word('')
                add_name('%s')
                add_start(start)
                add_depth(depth)
            else:  # the driver turns '%%' into '%' (modulo) when there are params
                if value == '%' and format_problem is None:
                    format_problem = (f"with params, a '%' at offset {start} must be written '%%' "
                                      '(only %s placeholders exist)')
                add_kind('op')
                add_value(value)
                add_word('')
                add_name(value)
                add_start(start)
                add_depth(depth)
        elif group == 10:  # a word directly followed by a quote
            word = m.group(10)
            start, end = m.span(10)
            if word[0] == '_' and word[1:].lower() in _CHARSETS:
                raise _introducer(word, start)
            if text[end] != "'" or word.upper() not in ('N', 'X', 'B'):
                raise _ambiguous(start, f'the name {word} directly followed by a quote')
            prefix = start
            continue
        else:  # a lone quote (its literal is unterminated), ';', ':' or a refused character
            start = m.start(11)
            char = text[start]
            if char in _QUOTES:
                what = 'quoted identifier' if char == '`' else 'string'
                at = prefix if prefix >= 0 else start
                raise LexError('unterminated_literal', f'unterminated {what} starting at offset {at}', 400)
            if char == ';':
                semicolon = True
                continue
            if char == ':' and text[start + 1:start + 2] == '=':
                raise LexError('unsupported_syntax', f"the ':=' assignment at offset {start} is not supported; use '='",
                               400)
            raise LexError('character_not_allowed', _describe_char(char))
        if prefix >= 0:  # a prefix must be followed by its literal
            raise _ambiguous(prefix, 'a prefix separated from its literal')
    if prefix >= 0:
        raise LexError('unterminated_literal', f'unterminated literal starting at offset {prefix}', 400)
    if depth != 0:
        raise LexError('unbalanced_parentheses', 'unbalanced parentheses', 400)
    if not kinds:
        raise LexError('empty_query', 'the query is empty', 400)
    scanned = Scan(tuple(literals), placeholders, format_problem, starts[-1] + len(values[-1]))
    return Lexed(scanned, kinds, values, words, names, starts, depths)


def scan(text: str) -> Scan:
    """What ``lex`` learns about the literals, placeholders and end of ``text``; raises ``LexError`` as it does."""
    return lex(text).scan


def statement_verb(toks: tuple[Tok, ...]) -> str:
    """The statement type: its first keyword, looking past leading '(' and a WITH clause."""
    return verb_of([tok.kind for tok in toks], [tok.value for tok in toks],
                   [tok.up if tok.kind == 'word' else '' for tok in toks], [tok.depth for tok in toks])


def verb_of(kinds: list[str], values: list[str], words: list[str], depths: list[int]) -> str:
    """``statement_verb`` over ``Lexed``'s lists."""
    i = 0
    n = len(kinds)
    while i < n and values[i] == '(' and kinds[i] == 'punct':
        i += 1
    if i >= n or kinds[i] != 'word':
        return ''
    verb = words[i]
    if verb != 'WITH':
        return verb
    base = depths[i]
    for j in range(i + 1, n):
        if depths[j] == base and words[j] in ('SELECT', 'INSERT', 'UPDATE', 'DELETE', 'REPLACE'):
            return words[j]
    return verb

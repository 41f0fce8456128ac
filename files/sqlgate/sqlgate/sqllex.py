# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""Lexical analysis of one SQL text, shared by the classifier and the validator.

Two lexers read every query:

* ``scan`` reads it the way MySQL/MariaDB do in the default sql_mode (backslash escapes in
  strings, ``''`` doubling, backtick identifiers, ``#``, ``-- `` and ``/* */`` comments, including
  the versioned ``/*! ... */`` comments that MySQL *executes*). It is the authority on where
  literals start and end, on comments, on statement separators and on ``%s`` placeholders.
* sqlparse's lexer names the tokens (keywords, names, punctuation) that the policy reasons about.

sqlparse does not read quoting the way MySQL does (``'\\\\'`` followed by another quote, ``$$``
dollar quotes, ``#name``). ``lex`` therefore requires both lexers to agree on every opaque span
(strings, quoted identifiers, comments); a query on which they disagree is refused, so nothing
MySQL would execute can hide from the policy inside what sqlparse believes is a literal.
The proxy pins the session sql_mode so that MySQL keeps reading quotes this way.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

from sqlparse import tokens as T
from sqlparse.lexer import tokenize

# Outside literals only ASCII letters, digits, these whitespace characters and these symbols may
# appear. Everything else (non-ASCII, control characters, backslash, braces, brackets, '@', '$',
# '?') either has no use in the statements we accept or is read differently by sqlparse and MySQL.
_CODE_WHITESPACE = frozenset(' \t\r\n')
_CODE_CHARS = frozenset(
    'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_,.()*+-/<>=!~^&|:'
) | _CODE_WHITESPACE
_CHAR_HINTS = {
    '@': 'variables are not allowed',
    '\\': 'a backslash is only allowed inside a quoted string',
    '?': "'?' placeholders are not supported; use %s",
    '$': "'$' is only allowed inside a quoted string",
}


# Deeper nesting serves no sakila query and would let a hostile text exhaust the analysis.
MAX_DEPTH = 64


class LexError(Exception):
    """The text cannot be analysed; ``status`` 400 for malformed input, 403 for refused syntax."""

    def __init__(self, code: str, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Literal:
    """A quoted span ``text[start:end]`` as MySQL reads it; ``quote`` is ``'``, ``"`` or a backtick."""

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
    """A significant sqlparse token with what the policy needs to know about it."""

    kind: str  # word, qword (backtick-quoted), string, number, placeholder, punct, op
    value: str  # the raw text
    up: str  # words: upper case with whitespace collapsed ('LEFT OUTER JOIN'); else the raw text
    name: str  # words and qwords: the identifier in lower case, without quotes
    keyword: bool  # sqlparse lists the word as a keyword
    start: int
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
    return f"character {char!r} is not allowed outside quoted strings"


def _literal_format_problem(text: str, lit: Literal) -> str | None:
    pos = text.find('%', lit.start, lit.end)
    while pos != -1:
        nxt = text[pos + 1] if pos + 1 < lit.end else ''
        if nxt == 's':
            return 'a %s placeholder inside a quoted literal is not allowed; pass the whole value as a parameter'
        if nxt != '%':
            return "with params, a literal '%' must be written '%%'"
        pos = text.find('%', pos + 2, lit.end)
    return None


def scan(text: str) -> Scan:
    """Read ``text`` as MySQL does and refuse comments, stacked statements and stray characters."""
    n = len(text)
    i = 0
    literals: list[Literal] = []
    placeholders = 0
    format_problem: str | None = None
    semicolon = -1
    code_end = 0
    while i < n:
        char = text[i]
        if semicolon >= 0 and char not in _CODE_WHITESPACE:
            raise LexError('multiple_statements', 'only one statement per request is allowed')
        if char == "'" or char == '"':
            j = i + 1
            while True:
                if j >= n:
                    raise LexError('unterminated_literal', f'unterminated string starting at offset {i}', 400)
                c = text[j]
                if c == '\\':
                    j += 2
                elif c == char:
                    if j + 1 < n and text[j + 1] == char:
                        j += 2
                    else:
                        break
                else:
                    j += 1
            lit = Literal(i, j + 1, char)
        elif char == '`':
            j = i + 1
            while True:
                j = text.find('`', j)
                if j == -1:
                    raise LexError(
                        'unterminated_literal', f'unterminated quoted identifier starting at offset {i}', 400
                    )
                if j + 1 < n and text[j + 1] == '`':
                    j += 2
                else:
                    break
            lit = Literal(i, j + 1, char)
        else:
            lit = None
        if lit is not None:
            literals.append(lit)
            if format_problem is None:
                format_problem = _literal_format_problem(text, lit)
            i = lit.end
            code_end = i
            continue
        nxt = text[i + 1] if i + 1 < n else ''
        if char == '#' or (char == '/' and nxt == '*') or (char == '-' and nxt == '-'):
            raise LexError(
                'comment_not_allowed',
                "comments are not allowed ('#', '--' and '/* */'; MySQL executes /*! */ comments)",
            )
        if char == ';':
            semicolon = i
            i += 1
            continue
        if char == '%':
            if nxt == 's':
                placeholders += 1
                i += 2
                code_end = i
                continue
            if nxt == '%':
                i += 2
                code_end = i
                continue
            if format_problem is None:
                format_problem = f"with params, a '%' at offset {i} must be written '%%' (only %s placeholders exist)"
            i += 1
            code_end = i
            continue
        if char not in _CODE_CHARS:
            raise LexError('character_not_allowed', _describe_char(char))
        i += 1
        if char not in _CODE_WHITESPACE:
            code_end = i
    if code_end == 0:
        raise LexError('empty_query', 'the query is empty', 400)
    return Scan(tuple(literals), placeholders, format_problem, code_end)


def _is_opaque(ttype: object, value: str) -> bool:
    """sqlparse tokens whose inside it does not analyse: they must match MySQL's literals exactly."""
    if ttype in T.String or ttype in T.Comment or ttype is T.Literal:
        return True
    return ttype in T.Name and value[:1] in ('`', '´', '[')


def _kind(ttype: object, value: str) -> str:
    if ttype in T.Name.Placeholder:
        return 'placeholder'
    first = value[:1]
    if first == '`':
        return 'qword'
    if ttype in T.String:
        return 'string'
    if ttype in T.Number:
        return 'number'
    if ttype in T.Punctuation:
        return 'punct'
    if first.isalnum() or first == '_':
        return 'word'
    return 'op'


@lru_cache(maxsize=256)
def _ttype_facts(ttype: Any) -> tuple[bool, bool, bool]:
    """(skipped as whitespace, possibly opaque, keyword) for a token type; there are few of them."""
    skip = ttype in T.Whitespace or ttype in T.Newline
    maybe_opaque = ttype in T.String or ttype in T.Comment or ttype is T.Literal or ttype in T.Name
    return skip, maybe_opaque, ttype in T.Keyword


def tokens(text: str, scanned: Scan) -> tuple[Tok, ...]:
    """sqlparse's tokens of ``text`` with offsets and depth, checked against MySQL's literals."""
    expected = [(lit.start, lit.end) for lit in scanned.literals]
    opaque: list[tuple[int, int]] = []
    out: list[Tok] = []
    offset = 0
    depth = 0
    for ttype, value in tokenize(text):
        start = offset
        offset += len(value)
        skip, maybe_opaque, keyword = _ttype_facts(ttype)
        if skip or value.isspace():
            continue
        if maybe_opaque and _is_opaque(ttype, value):
            opaque.append((start, offset))
        kind = _kind(ttype, value)
        if kind == 'word':
            name = value.lower()
            up = value.upper()
            if ' ' in up or '\t' in up or '\n' in up or '\r' in up:
                up = ' '.join(up.split())
        elif kind == 'qword':
            up = value
            name = value[1:-1].replace('``', '`').lower()
        else:
            up = name = value
        if value == ')':
            depth -= 1
            if depth < 0:
                raise LexError('unbalanced_parentheses', f"unbalanced ')' at offset {start}", 400)
        out.append(Tok(kind, value, up, name, keyword, start, depth))
        if value == '(':
            depth += 1
            if depth > MAX_DEPTH:
                raise LexError('too_deeply_nested', f'parentheses nest deeper than {MAX_DEPTH} levels', 400)
    if depth != 0:
        raise LexError('unbalanced_parentheses', 'unbalanced parentheses', 400)
    if opaque != expected:
        raise LexError(
            'ambiguous_quoting',
            'the quoting of this query is read differently by MySQL and by the validator '
            '(backslash escapes?); pass such values as parameters',
        )
    return tuple(out)


def lex(text: str) -> Lexed:
    scanned = scan(text)
    return Lexed(scanned, tokens(text, scanned))


def statement_verb(toks: tuple[Tok, ...]) -> str:
    """The statement type: its first keyword, looking past leading '(' and a WITH clause."""
    i = 0
    while i < len(toks) and toks[i].value == '(':
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

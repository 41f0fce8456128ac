# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""sqllex: the one-pass, MySQL-faithful lexer under the validator and the classifier."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sqlgate.sqllex import MAX_DEPTH, LexError, Tok, lex, scan, statement_verb


def kinds(text: str) -> list[tuple[str, str]]:
    return [(tok.kind, tok.value) for tok in lex(text).toks]


def refusal(text: str) -> LexError:
    with pytest.raises(LexError) as caught:
        lex(text)
    return caught.value


def test_tokens_carry_kind_value_case_offset_and_depth():
    text = "SELECT `First``Name`, COUNT(*) FROM Actor WHERE x = 'it''s' AND y = %s"
    toks = lex(text).toks
    assert toks[0] == Tok('word', 'SELECT', 'SELECT', 'select', 0, 0)
    assert toks[1] == Tok('qword', '`First``Name`', '`First``Name`', 'first`name', 7, 0)
    assert [(tok.value, tok.depth) for tok in toks[3:7]] == [('COUNT', 0), ('(', 0), ('*', 1), (')', 0)]
    assert toks[8].up == 'ACTOR' and toks[8].name == 'actor'
    assert toks[12] == Tok('string', "'it''s'", "'it''s'", "'it''s'", text.index("'it"), 0)
    assert toks[-1].kind == 'placeholder' and toks[-1].start == text.index('%s')


@pytest.mark.parametrize('text', [
    '1', '12', '1.5', '.5', '1.', '1e5', '1E5', '1e+5', '1.e1', '1.5E-3', '0x1F', '0x1f', '0b101', "X'0F'", "x'0f'",
    "X''", "B'01'", "b'1'",
])
def test_numbers(text):
    assert kinds(f'SELECT {text}') == [('word', 'SELECT'), ('number', text)]


@pytest.mark.parametrize('text', [
    '1.5from', '.5from', '1.e1from', '1e1from', '0x1where', '0x1limit', '0b1x', '0b12', '1_000', '1a', '1$', '1e',
    '1e+', '0x', '0X1F', '0B1', '0xg', "X'0G'", "X'\\' OR 1 '", "B'2'", "'x'where", '"x"or', "'x'1", "N'x'y",
    "X'41'x", "abc'x'", 'abc"x"', 'abc`x`', '`a`b', "`a`'b'", 'a.1', 'a.5x', 'a. 5', '`a`.1', 'a.b.1e1', '%swhere',
    '%s1', '%s_', 'x%s', '1%s', '%s%s', "%s'x'", "'x'%s", '%s.5', 'a.%s', '`a`%s', 'N%s',
])
def test_ambiguous_tokens_are_refused(text):
    error = refusal(f'SELECT {text} FROM actor')
    assert (error.code, error.status) == ('ambiguous_token', 403), text


@pytest.mark.parametrize(('text', 'values'), [
    ("'a\\'b'", ["'a\\'b'"]),
    ("'a''b'", ["'a''b'"]),
    ('"a\\"b"', ['"a\\"b"']),
    ('"a""b"', ['"a""b"']),
    ("'\\\\'", ["'\\\\'"]),
    ("'a' 'b'", ["'a'", "'b'"]),
    ("'a'\"b\"", ["'a'", '"b"']),
    ("N'x'", ["N'x'"]),
    ("n'\\''", ["n'\\''"]),
    ("'-- # /* */ ; @ $ ? é'", ["'-- # /* */ ; @ $ ? é'"]),
])
def test_strings_are_read_with_mysql_escaping(text, values):
    toks = lex(f'SELECT {text}').toks[1:]
    assert [tok.value for tok in toks] == values
    assert all(tok.kind == 'string' for tok in toks)


def test_literals_are_recorded_from_their_quote():
    scanned = scan("SELECT N'x', X'41', `a`, 'b'")
    assert [(lit.start, lit.end, lit.quote) for lit in scanned.literals] == [
        (8, 11, "'"), (14, 18, "'"), (20, 23, '`'), (25, 28, "'")]


@pytest.mark.parametrize('text', [
    "SELECT 'x", "SELECT 'x\\'", 'SELECT "x', 'SELECT `x', "SELECT X'41", "SELECT N'x", "SELECT 'x''",
])
def test_unterminated_literals(text):
    error = refusal(text)
    assert (error.code, error.status) == ('unterminated_literal', 400)


@pytest.mark.parametrize('text', [
    'SELECT 1 -- x', 'SELECT 1 --x', 'SELECT 1--1', 'SELECT 1 # x', 'SELECT 1 /* x */', 'SELECT 1 /*! UNION */',
    'SELECT 1 /*M! UNION */', 'SELECT 1 /*+ hint */', 'SELECT 2*/*x*/3',
])
def test_every_comment_is_refused(text):
    assert refusal(text).code == 'comment_not_allowed'


@pytest.mark.parametrize(('text', 'code', 'status'), [
    ('SELECT 1; SELECT 2', 'multiple_statements', 403),
    ('SELECT 1;;', 'multiple_statements', 403),
    ('SELECT 1; ', None, None),
    ('   ', 'empty_query', 400),
    (' ; ', 'empty_query', 400),
    ('SELECT (1', 'unbalanced_parentheses', 400),
    ('SELECT 1)', 'unbalanced_parentheses', 400),
    ('SELECT ' + '(' * MAX_DEPTH + '1' + ')' * MAX_DEPTH, None, None),
    ('SELECT ' + '(' * (MAX_DEPTH + 1) + '1' + ')' * (MAX_DEPTH + 1), 'too_deeply_nested', 400),
    ('SELECT @a', 'character_not_allowed', 403),
    ('SELECT $a', 'character_not_allowed', 403),
    ('SELECT \\N', 'character_not_allowed', 403),
    ('SELECT ?', 'character_not_allowed', 403),
    ('SELECT {d 1}', 'character_not_allowed', 403),
    ('SELECT [1]', 'character_not_allowed', 403),
    ('SELECT é', 'character_not_allowed', 403),
    ('SELECT\x0b1', 'character_not_allowed', 403),
    ('SELECT\f1', 'character_not_allowed', 403),
    ('SELECT a:b', 'character_not_allowed', 403),
    ('SELECT `pässword` FROM staff', 'character_not_allowed', 403),
    ('SELECT `a\tb` FROM staff', 'character_not_allowed', 403),
    ('SELECT `zip code`, `a.b`, `@x` FROM staff', None, None),
    ('SELECT a := 1', 'unsupported_syntax', 400),
    ("SELECT _utf8mb4'x'", 'unsupported_syntax', 400),
    ("SELECT _BINARY 'x'", 'unsupported_syntax', 400),
    ('SELECT _latin1 0x27', 'unsupported_syntax', 400),
    ("SELECT _foo'x'", 'ambiguous_token', 403),
    ('SELECT _foo, _1, __', None, None),
])
def test_structure_and_characters(text, code, status):
    if code is None:
        lex(text)
        return
    error = refusal(text)
    assert (error.code, error.status) == (code, status)
    assert error.message


def test_operators_are_read_greedily():
    values = [tok.value for tok in lex('SELECT a<=>b, a->>c, a->d, a||b, a&&b, a!=b, a<>b, a<=b, a>=b, a<<1, a>>1, '
                                       '!a, ~a, a^b, a%%b, a % b, a/b').toks if tok.kind == 'op']
    assert values == ['<=>', '->>', '->', '||', '&&', '!=', '<>', '<=', '>=', '<<', '>>', '!', '~', '^', '%%', '%',
                      '/']


def test_placeholders_and_format_problems():
    scanned = scan("SELECT %s, (%s), %s+1, -%s FROM actor WHERE a LIKE '%%x'")
    assert scanned.placeholders == 4 and scanned.format_problem is None
    assert scan("SELECT 1 FROM actor WHERE a LIKE 'x%'").format_problem
    assert scan("SELECT '%s'").format_problem
    assert scan('SELECT 5 % 2').format_problem
    assert scan('SELECT 5 %% 2').format_problem is None
    assert scan('SELECT 5 %%%s').placeholders == 1


def test_code_end_is_before_a_trailing_semicolon():
    assert scan('SELECT 1 ;  ').code_end == 8
    assert scan("SELECT 'a' \n").code_end == 10


@pytest.mark.parametrize(('text', 'verb'), [
    ('SELECT 1', 'SELECT'), ('select 1', 'SELECT'), ('((SELECT 1))', 'SELECT'),
    ('WITH a AS (SELECT 1) SELECT * FROM a', 'SELECT'), ('WITH a AS (SELECT 1) DELETE FROM t', 'DELETE'),
    ('WITH a AS (SELECT 1) UPDATE t SET x = 1', 'UPDATE'), ('WITH a AS (SELECT 1)', 'WITH'), ('1', ''),
    ('`select` 1', ''), ('(1)', ''),
])
def test_statement_verb(text, verb):
    assert statement_verb(lex(text).toks) == verb


@pytest.mark.parametrize('text', [
    'SELECT 1 FROM ' + 'FROM ' * 1600,
    'SELECT ' + "'" + 'a' * 8000 + "'",
    'SELECT ' + "'" + "\\'" * 4000 + "'",
    'SELECT ' + "'" + "''" * 4000 + "'",
    'SELECT `' + '``' * 4000 + '`',
    'SELECT 1' + ', 1.5e3' * 1100,
    'SELECT ' + '%s, ' * 2000 + '%s',
    'SELECT ' + '(1) + ' * 1300 + '1',
    'SELECT ' + 'a.' * 4000 + 'a',
])
def test_long_inputs_are_read_in_one_pass(text):
    lexed = lex(text)
    assert lexed.toks


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(
    st.text(max_size=200),
    st.text(alphabet=st.sampled_from(list("sSeEx01.%_aZ'\"` ();,=<>!-*/#\\N")), max_size=60),
    st.lists(st.sampled_from(['SELECT', '1', '1.5', '.5', '0x1F', "X'41'", "N'a'", "'a''b'", "'a\\'b'", '`a``b`',
                              '%s', '%%', '(', ')', ',', '.', ';', ' ', '\n', 'a', 'from', '<=>', '->>', '||',
                              '-', '/', '*', '!', '=']), max_size=30).map(''.join),
))
@example("SELECT 'a\\\\' FROM t")
@example('SELECT 1;')
def test_every_character_is_in_a_token_or_whitespace(text):
    try:
        lexed = lex(text)
    except LexError as exc:
        assert exc.status in (400, 403) and exc.message
        return
    position = 0
    depth = 0
    for tok in lexed.toks:
        assert tok.start >= position
        assert text[position:tok.start].strip(' \t\r\n') == ''
        assert text[tok.start:tok.start + len(tok.value)] == tok.value
        position = tok.start + len(tok.value)
        if tok.value == ')' and tok.kind == 'punct':
            depth -= 1
        assert tok.depth == depth
        if tok.value == '(' and tok.kind == 'punct':
            depth += 1
        if tok.kind == 'word':
            assert re.fullmatch(r'[A-Za-z_][A-Za-z0-9_]*', tok.value)
            assert tok.up == tok.value.upper() and tok.name == tok.value.lower()
    assert depth == 0
    assert lexed.scan.code_end == position
    assert text[position:].strip(' \t\r\n') in ('', ';')


def _mysql_literal_end(text: str, start: int) -> int:
    """Where MySQL ends the literal opened at ``start``, character by character (-1: unterminated)."""
    quote = text[start]
    i = start + 1
    while i < len(text):
        char = text[i]
        if char == '\\' and quote != '`':
            i += 2
        elif char == quote:
            if i + 1 < len(text) and text[i + 1] == quote:
                i += 2
            else:
                return i + 1
        else:
            i += 1
    return -1


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(["'", '"', '`', '\\', 'a', ' ', "''", '\\\\', "\\'", '""', '``', ',', 'x']),
                max_size=25).map(''.join))
@example("'a\\\\' , 'b'")
@example("'a'' , 'b'")
def test_literals_end_where_mysql_ends_them(body):
    text = 'SELECT ' + body
    try:
        scanned = scan(text)
    except LexError as exc:
        assert exc.code in ('unterminated_literal', 'ambiguous_token', 'character_not_allowed', 'empty_query'), exc
        if exc.code == 'unterminated_literal':  # some literal opened outside another one never ends
            starts = [i for i, char in enumerate(text) if char in '\'"`']
            assert starts
        return
    for literal in scanned.literals:
        assert _mysql_literal_end(text, literal.start) == literal.end, (text, literal)

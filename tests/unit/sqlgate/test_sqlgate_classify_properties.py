# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""Property-based tests of the classifier on any text, not only on statements the validator accepted.

The proxy classifies every body it receives on its own (it does not rely on the trusted host), so the classifier
must hold on hostile input too: it never raises, and it calls a statement a read only when that is certainly safe
as MySQL reads it, since a read may go to any worker: no write verb, no INTO, no locking clause, no comment (MySQL
executes `/*! ... */`), no second statement. test_sqlgate_validate_properties.py covers the validator and the
classification of accepted statements.
"""

from __future__ import annotations

import re

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sqlgate.classify import classify
from sqlgate.sqllex import LexError, scan

WORDS = [
    'SELECT', 'select', 'SHOW', 'EXPLAIN', 'DESCRIBE', 'DESC', 'WITH', 'RECURSIVE', 'x AS', 'INSERT', 'UPDATE',
    'DELETE', 'REPLACE', 'ANALYZE', 'INTO', 'OUTFILE', '@v', 'FOR', 'UPDATE', 'SHARE', 'LOCK', 'IN', 'MODE',
    'NOWAIT', 'SKIP LOCKED', 'FROM', 'actor', 'WHERE', 'UNION', 'VALUES', 'TABLE', 'DO', 'CALL', 'HANDLER', 'SET',
    '(', ')', ',', ';', "'", '"', '`', '\\', '--', '-- ', '#', '/*', '*/', '/*!', '/*!50000', '/*+', ' ', '\n',
    '\t', '1', "'x'", "'FOR UPDATE'", '`into`', '%s', 'é', '\x00', '0x41', '0X41', '1.5from', '%sinto', "'x'into",
    "_utf8mb4'x'", 'a := 1', "X'41'", "N'x'",
]
READ_HEADS = [
    'SELECT * FROM actor', 'select a FROM actor', 'SELECT', '(SELECT 1)', 'SHOW TABLES', 'EXPLAIN SELECT 1',
    'DESCRIBE actor', 'DESC', 'WITH x AS (SELECT 1) SELECT * FROM x', ' \n SELECT 1',
]
# Most generated texts start like a read, so that the property about reads is exercised often.
texts = st.one_of(
    st.builds(lambda head, tail, joiner: head + ' ' + joiner.join(tail), st.sampled_from(READ_HEADS),
              st.lists(st.sampled_from(WORDS), max_size=8), st.sampled_from([' ', ''])),
    st.builds(lambda head, tail, joiner: head + ' ' + joiner.join(tail), st.sampled_from(READ_HEADS),
              st.lists(st.sampled_from(WORDS), max_size=8), st.sampled_from([' ', ''])),
    st.lists(st.sampled_from(WORDS), max_size=20).map(' '.join),
    st.lists(st.sampled_from(WORDS), max_size=20).map(''.join),
    st.text(max_size=80),
)
READ_START = re.compile(r'^[\s(]*(SELECT|SHOW|EXPLAIN|DESCRIBE|DESC|WITH)\b', re.IGNORECASE)
NOT_IN_A_READ = re.compile(
    r'\bINTO\b|\bFOR\s+(UPDATE|SHARE)\b|\bLOCK\s+IN\b|--|#|/\*|;\s*\S', re.IGNORECASE
)
EXPLAINED_WRITE = re.compile(r'\b(INSERT|UPDATE|DELETE|REPLACE|ANALYZE)\b', re.IGNORECASE)


def code_only(sql: str) -> str | None:
    """The text with string literals blanked and quoted names reduced to a plain word, as MySQL reads it;
    None when MySQL's reading cannot be established."""
    try:
        scanned = scan(sql)
    except LexError:
        return None
    chars = list(sql)
    for literal in scanned.literals:
        width = literal.end - literal.start
        chars[literal.start:literal.end] = ' ' * width if literal.quote != '`' else ['n'] * width
    return ''.join(chars)


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(texts)
@example('SELECT 1 /*! INTO OUTFILE "/tmp/x" */')
@example('SELECT * FROM actor -- x\nFOR UPDATE')
@example("SELECT * FROM actor WHERE a = '\\'' FOR UPDATE -- '")
@example('WITH x AS (SELECT 1) DELETE FROM actor')
@example('EXPLAIN ANALYZE DELETE FROM actor')
@example('SELECT 1; DELETE FROM actor')
def test_a_read_is_certainly_a_read(sql: str) -> None:
    kind = classify(sql)
    assert kind in ('read', 'write')
    if kind == 'write':
        return
    code = code_only(sql)
    assert code is not None, 'a text MySQL cannot be read for certain must be a write'
    assert READ_START.match(code), code
    assert not NOT_IN_A_READ.search(code), code
    if re.match(r'^[\s(]*(EXPLAIN|DESCRIBE|DESC)\b', code, re.IGNORECASE):
        assert not EXPLAINED_WRITE.search(code), code
    if re.match(r'^[\s(]*WITH\b', code, re.IGNORECASE):  # the statement after the CTE list is no write
        assert not re.search(r'\)\s*(INSERT|UPDATE|DELETE|REPLACE)\b', code, re.IGNORECASE), code


@settings(max_examples=500)
@given(texts, st.sampled_from(['', ' ', '\n', '\t']))
def test_classification_ignores_surrounding_whitespace_and_keyword_case(sql: str, pad: str) -> None:
    assert classify(pad + sql + pad) == classify(sql)
    # MySQL's 0x and 0b prefixes (0X1F is a name, refused as ambiguous) and pymysql's %s are case-sensitive
    if sql.isascii() and not re.search(r"['\"`%]|0[xXbB]", sql):
        assert classify(sql.lower()) == classify(sql.upper())

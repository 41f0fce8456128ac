# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""classify(sql): read or write, for routing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sqlgate.classify import classify


@pytest.mark.parametrize('sql', [
    'SELECT * FROM actor',
    'select first_name from actor where actor_id = %s',
    '  SELECT 1',
    'SHOW TABLES',
    'EXPLAIN SELECT * FROM film',
    'DESCRIBE film',
    'DESC film',
    'WITH a AS (SELECT 1) SELECT * FROM a',
    '(SELECT 1) UNION (SELECT 2)',
    "SELECT 'FOR UPDATE', 'INTO', `into` FROM actor",
    'SELECT * FROM actor;',
    "SELECT 0x41, X'41', N'x', 1.5e3 FROM dual",
    'SELECT a.first_name FROM actor a JOIN film_actor USING (actor_id) WHERE a.actor_id = %s',
    "WITH RECURSIVE r (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT * FROM r",
    'SELECT `for` FROM `update`',
])
def test_reads(sql):
    assert classify(sql) == 'read'


@pytest.mark.parametrize('sql', [
    "INSERT INTO actor (first_name, last_name) VALUES ('A', 'B')",
    'UPDATE actor SET first_name = %s WHERE actor_id = 1',
    'DELETE FROM actor WHERE actor_id = 1',
    "REPLACE INTO language (name) VALUES ('x')",
    'SELECT * FROM actor FOR UPDATE',
    'SELECT * FROM actor WHERE actor_id = 1 FOR SHARE',
    'SELECT * FROM actor LOCK IN SHARE MODE',
    "SELECT * FROM actor INTO OUTFILE '/tmp/x'",
    'SELECT 1 INTO @x',
    'WITH a AS (SELECT 1) DELETE FROM actor WHERE actor_id IN (SELECT * FROM a)',
    'EXPLAIN ANALYZE DELETE FROM actor WHERE actor_id = 1',
    'SET @a = 1',
    'CALL film_in_stock(1, 1, @c)',
    'DROP TABLE actor',
    'DO SLEEP(1)',
    'SELECT 1; DELETE FROM actor',
    'SELECT 1 /*! , (DELETE) */',
    "SELECT 'unterminated",
    '',
    'SELECT (1',
    '123',
    # whatever the lexer refuses to read is a write
    'SELECT 1.5from staff',
    "SELECT _utf8mb4'x'",
    "SELECT 'x'where 1",
    "SELECT X'zz'",
    'SELECT a := 1',
    'SELECT 1 FROM actor WHERE actor_id = %sor 1',
    'SELECT ' + '(' * 65 + '1' + ')' * 65,
    'SELECT * FROM actor FOR SHARE NOWAIT',
    'EXPLAIN ANALYZE SELECT * FROM actor',
    'DESCRIBE DELETE FROM actor WHERE actor_id = 1',
])
def test_writes(sql):
    assert classify(sql) == 'write'


@given(st.text(max_size=200))
def test_any_text_is_read_or_write_without_raising(text):
    assert classify(text) in ('read', 'write')


_READ_VERBS = ('SELECT', 'SHOW', 'EXPLAIN', 'DESCRIBE', 'DESC', 'WITH', '(')


@given(st.text(alphabet=st.sampled_from(list("abcSELECTINSUPDAWHFORK ();'`\"-#/*%s@,.=\\\n")), max_size=80))
def test_a_read_always_starts_with_a_read_verb(text):
    if classify(text) == 'read':
        assert text.lstrip().upper().startswith(_READ_VERBS)
        assert 'INTO' not in text.upper() or "'" in text or '`' in text or '"' in text

# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""Property-based tests of the validator and the classifier (hypothesis).

The generators splice SQL fragments, quotes, backslashes, comment markers and names of forbidden
objects. Whatever they produce, an accepted statement must be harmless as MySQL reads it: with its
literals blanked out by the MySQL-faithful scanner, the code must hold no comment, no second
statement, no system schema, no forbidden table and no blocked function.
"""

from __future__ import annotations

import dataclasses
import re

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sqlgate.classify import classify
from sqlgate.sqllex import LexError, scan
from sqlgate.validate import Policy, Rejection, ValidatedQuery, validate

POLICY = dataclasses.replace(Policy(), allowed_tables=Policy().allowed_tables - {'staff', 'staff_list'})
FRAGMENTS = [
    'SELECT', 'select', 'INSERT INTO', 'UPDATE', 'DELETE', 'FROM', 'WHERE', 'UNION', 'UNION ALL', 'JOIN', 'ON',
    'STRAIGHT_JOIN', 'INTO', 'OUTFILE', 'VALUES', 'SET', 'LIMIT', 'FOR UPDATE', 'AS', 'OR 1=1', 'AND',
    'actor', 'film', 'customer', 'staff', 'STAFF', '`staff`', 'sakila', 'mysql', 'user', 'information_schema',
    'tables', 'performance_schema', 'sys', 'SLEEP(1)', 'sleep (1)', 'BENCHMARK(9,1)', 'LOAD_FILE(0x2f)',
    "'", "''", '"', '`', '\\', "\\'", '\\\\', '--', '-- ', '#', '/*', '*/', '/*!', ';', '(', ')', ',', '.', ' ',
    '\n', '%s', '%', '@', '$$', 'é', '\u00a0', '\x00', '*', '=', '1', '0x41', "X'41'", 'N', 'WITH t AS',
]
HEADS = [
    'SELECT * FROM actor WHERE first_name =', 'SELECT a.first_name FROM actor a WHERE a.actor_id =',
    "UPDATE actor SET first_name = 'x' WHERE actor_id =", 'DELETE FROM film_text WHERE film_id =',
    'SELECT title FROM film WHERE title LIKE', 'SELECT COUNT(*) FROM payment p WHERE p.amount >',
    'INSERT INTO actor (first_name, last_name) VALUES (', 'SELECT', 'SELECT * FROM',
]
TAILS = [
    '1', "'a'", '%s', 'OR', 'AND', '1=1', 'NOT', '(', ')', ',', "'", '"', '`', '\\', "\\'", 'UNION SELECT 1',
    'UNION SELECT first_name FROM actor', 'FROM', 'actor', 'staff', 'mysql.user', 'information_schema.tables',
    'sys.x', '(SELECT actor_id FROM actor)', '(SELECT password FROM staff)', 'JOIN staff', ', staff', 'LIMIT 1',
    'ORDER BY 1', 'INTO OUTFILE', 'SLEEP(1)', 'sleep (1)', '--', '#', '/*!', '*/', ';', 'WHERE', 'a.actor_id',
    'x.y', 'sakila.staff', 'sakila.actor', '`mysql`.`user`', 'FOR UPDATE', "'; DROP TABLE actor; --",
]
sqlish = st.builds(
    lambda head, tail, joiner: head + ' ' + joiner.join(tail),
    st.sampled_from(HEADS), st.lists(st.sampled_from(TAILS), max_size=12), st.sampled_from([' ', '']),
)
hostile_text = st.one_of(
    sqlish,
    sqlish,
    st.lists(st.sampled_from(FRAGMENTS), max_size=25).map(' '.join),
    st.lists(st.sampled_from(FRAGMENTS), max_size=25).map(''.join),
    st.text(max_size=120),
)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                    st.text(max_size=40))
_FORBIDDEN_CODE = re.compile(
    r'--|#|/\*|\b(mysql|information_schema|performance_schema|sys)\s*\.|\bsleep\b|'
    r'\bbenchmark\b|\bload_file\b|\boutfile\b|@',
    re.IGNORECASE,
)


def code_only(sql: str) -> str:
    """The text with every literal (as MySQL reads it) replaced by blanks."""
    scanned = scan(sql)
    chars = list(sql)
    for literal in scanned.literals:
        if literal.quote != '`':
            chars[literal.start:literal.end] = ' ' * (literal.end - literal.start)
        else:  # a quoted identifier is one name: keep its letters, drop the quotes and any '.' inside
            name = re.sub(r'\W', '_', sql[literal.start + 1:literal.end - 1])
            chars[literal.start:literal.end] = f' {name} '
    return ''.join(chars)


def check_accepted(sql: str, result: ValidatedQuery) -> None:
    if not result.limit_appended:
        assert result.sql == sql
    code = code_only(result.sql)
    assert not _FORBIDDEN_CODE.search(code), code
    assert ';' not in code.rstrip().rstrip(';'), code
    # a forbidden table may be named as a column, never read as a table
    assert not re.search(r'\b(FROM|JOIN|UPDATE|INTO|TABLE)\s*(\bsakila\s*\.\s*)?\bstaff\b', code, re.IGNORECASE), code


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_text, st.lists(scalars, max_size=3))
@example("SELECT * FROM actor WHERE first_name = '\\\\' UNION SELECT password FROM staff WHERE 'a' = 'a'", [])
@example('SELECT * FROM actor a JOIN film f ON 1 = 1, staff', [])
@example("SELECT * FROM actor WHERE first_name = '\\'' OR 1=1 -- '", [])
def test_validate_never_raises_and_accepts_only_harmless_code(sql, params):
    result = validate(sql, params, POLICY)
    assert isinstance(result, (ValidatedQuery, Rejection))
    if isinstance(result, Rejection):
        assert result.status in (400, 403) and result.reason
        return
    check_accepted(sql, result)


@settings(max_examples=500)
@given(hostile_text)
def test_a_value_spliced_into_a_literal_cannot_escape_it(value):
    sql = f"SELECT * FROM actor WHERE first_name = '{value}' LIMIT 1"
    result = validate(sql, [], POLICY)
    if isinstance(result, ValidatedQuery):
        check_accepted(sql, result)


@given(st.lists(scalars, min_size=2, max_size=2))
def test_params_are_never_parsed(params):
    sql = 'SELECT * FROM actor WHERE first_name = %s AND last_name = %s LIMIT 1'
    result = validate(sql, params, POLICY)
    assert isinstance(result, ValidatedQuery)
    assert result.sql == sql and result.params == tuple(params)


@settings(max_examples=500)
@given(hostile_text, scalars, scalars)
def test_acceptance_does_not_depend_on_param_values(sql, first, second):
    one = validate(sql, [first], POLICY)
    other = validate(sql, [second], POLICY)
    assert type(one) is type(other)


@settings(max_examples=800)
@given(hostile_text)
def test_accepted_statements_are_classified_consistently(sql):
    result = validate(sql, [], Policy())
    if not isinstance(result, ValidatedQuery):
        return
    kind = classify(result.sql)
    if result.statement in ('INSERT', 'UPDATE', 'DELETE'):
        assert kind == 'write'
    elif not re.search(r'\b(FOR\s+UPDATE|FOR\s+SHARE|LOCK\s+IN)\b', code_only(result.sql), re.IGNORECASE):
        assert kind == 'read'


@given(st.text(max_size=200))
def test_the_scanner_either_reads_or_refuses(text):
    try:
        scanned = scan(text)
    except LexError as exc:
        assert exc.status in (400, 403) and exc.message
        return
    previous = 0
    for literal in scanned.literals:
        assert previous <= literal.start < literal.end <= len(text)
        assert text[literal.start] == text[literal.end - 1] == literal.quote
        previous = literal.end

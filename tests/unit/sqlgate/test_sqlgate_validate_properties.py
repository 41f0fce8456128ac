# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""Property-based tests of the validator and the classifier (hypothesis).

The generators splice SQL fragments, quotes, backslashes, comment markers, glued tokens and names of
forbidden objects. Whatever they produce, validate() answers without raising, and an accepted
statement is harmless as MySQL reads it: with its literals blanked out by the MySQL-faithful lexer,
the code holds no comment, no second statement, no system schema, no forbidden table, no hidden
column, no refused function call, and an UPDATE or DELETE keeps its WHERE.
"""

from __future__ import annotations

import dataclasses
import re

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sqlgate.classify import classify
from sqlgate.sqllex import LexError, scan
from sqlgate.validate import Policy, Rejection, ValidatedQuery, validate

POLICY = dataclasses.replace(Policy(), read_tables=Policy().read_tables - {'staff', 'staff_list'},
                             write_tables=Policy().write_tables - {'staff'})
MYSQL = dataclasses.replace(POLICY, flavor='mysql', allowed_functions=frozenset({'get_customer_balance'}))
FRAGMENTS = [
    'SELECT', 'select', 'INSERT INTO', 'UPDATE', 'DELETE', 'FROM', 'WHERE', 'UNION', 'UNION ALL', 'JOIN', 'ON',
    'STRAIGHT_JOIN', 'INTO', 'OUTFILE', 'VALUES', 'SET', 'LIMIT', 'FOR UPDATE', 'AS', 'OR 1=1', 'AND',
    'actor', 'film', 'customer', 'staff', 'STAFF', '`staff`', 'sakila', 'mysql', 'user', 'information_schema',
    'tables', 'performance_schema', 'sys', 'SLEEP(1)', 'sleep (1)', 'BENCHMARK(9,1)', 'LOAD_FILE(0x2f)',
    "'", "''", '"', '`', '\\', "\\'", '\\\\', '--', '-- ', '#', '/*', '*/', '/*!', ';', '(', ')', ',', '.', ' ',
    '\n', '%s', '%', '@', '$$', 'é', '\u00a0', '\x00', '*', '=', '1', '0x41', "X'41'", 'N', 'WITH t AS',
    '1.5from', '0x1where', '%swhere', '.5', '1e1', 'password', '`password`', 'picture', 'DATABASE()', 'USER()',
    'user', 'UUID()', 'CURRENT_USER', '_utf8mb4', "_binary'", ':=', 'JSON_TABLE(', "'$'", 'COLUMNS', 'PATH', 'INT',
    'USING', 'USING (', 'VALUE', 'VALUES', 'RETURNING', 'OR', '||', 'XOR', 'TRUE', 'IN', 'NULL', 'IS', 'ON',
    'DUPLICATE KEY UPDATE', 'new', 'new.last_name', 'get_customer_balance(1)', 'sakila.f()', 'TABLE',
]
HEADS = [
    'SELECT * FROM actor WHERE first_name =', 'SELECT a.first_name FROM actor a WHERE a.actor_id =',
    "UPDATE actor SET first_name = 'x' WHERE actor_id =", 'DELETE FROM film_text WHERE film_id =',
    'DELETE FROM payment WHERE', 'UPDATE customer SET active = 0 WHERE', 'DELETE a FROM actor a',
    'INSERT INTO actor (actor_id, first_name, last_name) VALUES (1, %s, %s)', 'SELECT * FROM actor a,',
    'SELECT title FROM film WHERE title LIKE', 'SELECT COUNT(*) FROM payment p WHERE p.amount >',
    'INSERT INTO actor (first_name, last_name) VALUES (', 'SELECT', 'SELECT * FROM',
]
TAILS = [
    '1', "'a'", '%s', 'OR', 'AND', '1=1', 'NOT', '(', ')', ',', "'", '"', '`', '\\', "\\'", 'UNION SELECT 1',
    'UNION SELECT first_name FROM actor', 'FROM', 'actor', 'staff', 'mysql.user', 'information_schema.tables',
    'sys.x', '(SELECT actor_id FROM actor)', '(SELECT password FROM staff)', 'JOIN staff', ', staff', 'LIMIT 1',
    'ORDER BY 1', 'INTO OUTFILE', 'SLEEP(1)', 'sleep (1)', '--', '#', '/*!', '*/', ';', 'WHERE', 'a.actor_id',
    'x.y', 'sakila.staff', 'sakila.actor', '`mysql`.`user`', 'FOR UPDATE', "'; DROP TABLE actor; --",
    '1.5from staff', '0x1where', '%swhere', 'password', 'a.password', 'DATABASE()', 'UUID()', 'USER()', 'user',
    'OR 1', '|| 1', 'OR TRUE', 'OR actor_id = actor_id', 'AS new', 'AS value', 'value', 'returning',
    "_utf8mb4'x'", 'USING (actor, film)', "JSON_TABLE('[1]', '$[*]' COLUMNS (v INT PATH '$')) AS jt",
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
    r'--|#|/\*|\b(mysql|information_schema|performance_schema|sys)\s*\.|@|:=|\boutfile\b|\bdumpfile\b|'
    r'\b(sleep|benchmark|load_file|database|schema|user|uuid|uuid_short|version|current_user|nextval)\s*\(|'
    r'\bcurrent_user\b|\bpassword\b|\bpicture\b|\b_(utf8mb4|binary|latin1)\b',
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
    # no number or placeholder glued to a name: MySQL could read such a pair as one token
    assert not re.search(r'(\b\d+(\.\d*)?([eE][+-]?\d+)?|%s)[A-Za-z_]', code), code
    if result.statement in ('UPDATE', 'DELETE'):
        assert re.search(r'\bWHERE\b', code, re.IGNORECASE), code
        assert not re.search(r'\b(WHERE|OR)\s+(1|TRUE|1\s*=\s*1)\s*$', code, re.IGNORECASE), code
    assert result.kind in ('read', 'write')


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_text, st.lists(scalars, max_size=3))
@example("SELECT * FROM actor WHERE first_name = '\\\\' UNION SELECT password FROM staff WHERE 'a' = 'a'", [])
@example('SELECT * FROM actor a JOIN film f ON 1 = 1, staff', [])
@example("SELECT * FROM actor WHERE first_name = '\\'' OR 1=1 -- '", [])
@example('UPDATE language 0x1where SET name=name', [])
@example('UPDATE language %swhere SET name=name', [1])
@example('DELETE FROM payment WHERE customer_id = 1 OR 1=1', [])
@example('SELECT 1 FROM ' + 'FROM ' * 1500, [])
def test_validate_never_raises_and_accepts_only_harmless_code(sql, params):
    for policy in (POLICY, MYSQL):
        result = validate(sql, params, policy)
        assert isinstance(result, (ValidatedQuery, Rejection))
        if isinstance(result, Rejection):
            assert result.status in (400, 403) and result.reason
            continue
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

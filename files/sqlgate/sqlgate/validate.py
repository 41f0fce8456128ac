# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""The trusted host's policy: which statements may reach the database.

``validate(sql, params, policy)`` returns a ``ValidatedQuery`` (the text to execute, unchanged except
for an appended ``LIMIT <cap>``) or a ``Rejection`` with a slug and a sentence. The checks, in order:

1. lexical (``sqllex``): one statement, no comments, no unterminated literals, no characters that
   MySQL and sqlparse read differently, both lexers agree on every literal;
2. the statement type is allowed (default SELECT, INSERT, UPDATE, DELETE);
3. no INTO except INSERT's target, no OUTFILE/DUMPFILE, no PROCEDURE, no blocked function;
4. every table reference (after FROM, JOIN, UPDATE, INTO, USING, TABLE, in comma lists and
   parenthesised lists) names an allowed table, unqualified or qualified with the allowed database;
   every ``x.y`` qualifier is the allowed database, an allowed table, an alias or a CTE; system
   schemas are refused wherever they appear as a qualifier;
5. UPDATE and DELETE have a WHERE clause; a SELECT without a top-level LIMIT gets ``LIMIT <cap>``;
6. placeholders (pymysql's ``%s``) match the number of params.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from math import isfinite

from .sqllex import LexError, Tok, lex, statement_verb

Scalar = str | int | float | bool | None

SAKILA_TABLES = frozenset({
    'actor', 'address', 'category', 'city', 'country', 'customer', 'film', 'film_actor', 'film_category',
    'film_text', 'inventory', 'language', 'payment', 'rental', 'staff', 'store',
})
SAKILA_VIEWS = frozenset({
    'actor_info', 'customer_list', 'film_list', 'nicer_but_slower_film_list', 'sales_by_film_category',
    'sales_by_store', 'staff_list',
})
SYSTEM_SCHEMAS = frozenset({'information_schema', 'mysql', 'performance_schema', 'sys'})
DEFAULT_STATEMENTS = frozenset({'SELECT', 'INSERT', 'UPDATE', 'DELETE'})
# Functions that read files, sleep or burn CPU on purpose, take server-wide locks, wait on
# replication, reveal who and what the server is, or move MariaDB sequences.
DEFAULT_BLOCKED_FUNCTIONS = frozenset({
    'load_file', 'sleep', 'benchmark', 'get_lock', 'release_lock', 'release_all_locks', 'is_free_lock',
    'is_used_lock', 'master_pos_wait', 'source_pos_wait', 'master_gtid_wait', 'wait_for_executed_gtid_set',
    'wait_until_sql_thread_after_gtids', 'sys_exec', 'sys_eval', 'user', 'current_user', 'session_user',
    'system_user', 'current_role', 'version', 'connection_id', 'nextval', 'lastval', 'setval',
})
CACHE_TEXT_LIMIT = 4096

_SUBQUERY_STARTS = frozenset({'SELECT', 'WITH', 'VALUES', 'TABLE'})
# Words that end a table reference: they are never aliases.
_CLAUSE_WORDS = frozenset({
    'WHERE', 'GROUP BY', 'GROUP', 'HAVING', 'ORDER BY', 'ORDER', 'LIMIT', 'OFFSET', 'UNION', 'UNION ALL',
    'EXCEPT', 'INTERSECT', 'WINDOW', 'FOR', 'LOCK', 'INTO', 'SET', 'VALUES', 'VALUE', 'SELECT', 'ON', 'USING',
    'PARTITION', 'USE', 'IGNORE', 'FORCE', 'PROCEDURE', 'RETURNING', 'AS', 'INNER', 'LEFT', 'RIGHT', 'CROSS',
    'NATURAL', 'FULL', 'OUTER', 'JOIN', 'STRAIGHT_JOIN', 'LATERAL', 'WITH', 'TABLE', 'AND', 'OR', 'NOT',
})
# Words that end a table_references clause.
_CLAUSE_END = frozenset({
    'WHERE', 'GROUP BY', 'GROUP', 'HAVING', 'ORDER BY', 'ORDER', 'LIMIT', 'UNION', 'UNION ALL', 'EXCEPT',
    'INTERSECT', 'WINDOW', 'FOR', 'LOCK', 'INTO', 'SET', 'VALUES', 'VALUE', 'SELECT', 'PROCEDURE', 'RETURNING',
    'UPDATE', 'DUPLICATE',
})
# FROM and USING inside these functions' parentheses are part of their syntax, not table clauses.
_SYNTAX_FUNCTIONS = frozenset({
    'EXTRACT', 'TRIM', 'SUBSTRING', 'SUBSTR', 'MID', 'POSITION', 'OVERLAY', 'CONVERT', 'CHAR',
})
_MODIFIERS = frozenset({'LOW_PRIORITY', 'HIGH_PRIORITY', 'DELAYED', 'IGNORE', 'QUICK'})


@dataclass(frozen=True)
class Policy:
    database: str = 'sakila'
    allowed_statements: frozenset[str] = DEFAULT_STATEMENTS
    allowed_tables: frozenset[str] = SAKILA_TABLES | SAKILA_VIEWS
    blocked_functions: frozenset[str] = DEFAULT_BLOCKED_FUNCTIONS
    select_limit_cap: int = 1000


@dataclass(frozen=True)
class ValidatedQuery:
    sql: str
    params: tuple[Scalar, ...]
    statement: str
    limit_appended: bool


@dataclass(frozen=True)
class Rejection:
    code: str
    reason: str
    status: int = 403


@dataclass(frozen=True)
class _Analysis:
    sql: str
    statement: str
    placeholders: int
    format_problem: str | None
    limit_appended: bool


@dataclass(frozen=True)
class _Cte:
    """A common table expression and where its name means it rather than a table."""

    name: str
    body: tuple[int, int]  # token indexes of its parentheses
    scope_end: int  # the ')' that closes the statement holding the WITH, or the end
    recursive: bool

    def covers(self, index: int) -> bool:
        """Whether the name at token ``index`` refers to this CTE: after its body, within the scope;
        inside its own body only when RECURSIVE (otherwise the name there is the real table)."""
        start, end = self.body
        return end < index <= self.scope_end or (self.recursive and start < index < end)


@dataclass
class _Names:
    tables: list[tuple[str | None, str, int]] = field(default_factory=list)  # (schema or None, table, index)
    aliases: set[str] = field(default_factory=set)
    ctes: list[_Cte] = field(default_factory=list)
    delete_targets: list[tuple[str | None, str]] = field(default_factory=list)

    def is_cte(self, name: str, index: int) -> bool:
        return any(cte.name == name and cte.covers(index) for cte in self.ctes)


class _Refused(Exception):
    def __init__(self, code: str, reason: str, status: int = 403) -> None:
        super().__init__(reason)
        self.rejection = Rejection(code, reason, status)


def is_scalar(value: object) -> bool:
    if value is None or isinstance(value, (str, bool, int)):
        return True
    return isinstance(value, float) and isfinite(value)


def _matching_parens(toks: tuple[Tok, ...]) -> tuple[dict[int, int], list[int]]:
    """Map each '(' to its ')' and each token to the index of the '(' that encloses it (-1: none)."""
    match: dict[int, int] = {}
    parent: list[int] = []
    stack: list[int] = []
    for i, tok in enumerate(toks):
        if tok.value == ')':
            match[stack.pop()] = i
        parent.append(stack[-1] if stack else -1)
        if tok.value == '(':
            stack.append(i)
    return match, parent


class _Reader:
    """Finds table references, aliases and CTE names in a token sequence."""

    def __init__(self, toks: tuple[Tok, ...], verb: str) -> None:
        self.toks = toks
        self.verb = verb
        self.n = len(toks)
        self.match, self.parent = _matching_parens(toks)
        self.names = _Names()
        self.read_joins: set[int] = set()  # JOIN words already read as part of a clause

    # -- token predicates -------------------------------------------------------------------------
    def word(self, i: int, *ups: str) -> bool:
        return i < self.n and self.toks[i].kind == 'word' and (not ups or self.toks[i].up in ups)

    def punct(self, i: int, value: str) -> bool:
        return i < self.n and self.toks[i].value == value

    def ident(self, i: int) -> bool:
        return i < self.n and self.toks[i].kind in ('word', 'qword')

    def joins(self, i: int) -> bool:
        return self.word(i) and self.toks[i].up.endswith('JOIN')

    def alias_at(self, i: int) -> bool:
        if i >= self.n:
            return False
        tok = self.toks[i]
        if tok.kind == 'qword':
            return True
        return tok.kind == 'word' and tok.up not in _CLAUSE_WORDS and not tok.up.endswith('JOIN')

    def fail(self, i: int, what: str) -> _Refused:
        where = f'at offset {self.toks[i].start}' if i < self.n else 'at the end'
        return _Refused('unreadable_table_reference', f'cannot read the table reference {where}: {what}')

    # -- grammar ----------------------------------------------------------------------------------
    def in_function_syntax(self, i: int) -> bool:
        """Token ``i`` sits directly inside EXTRACT(...), TRIM(...) and the like, not in a subquery."""
        enclosing = self.parent[i]
        return (
            enclosing > 0
            and self.word(enclosing - 1, *_SYNTAX_FUNCTIONS)
            and not self.word(enclosing + 1, *_SUBQUERY_STARTS)
        )

    def read(self) -> _Names:
        for i, tok in enumerate(self.toks):
            if tok.kind != 'word':
                continue
            up = tok.up
            if up == 'WITH':
                self.ctes(i + 1)
            elif up in ('FROM', 'USING'):
                if self.in_function_syntax(i) or (up == 'USING' and self.punct(i + 1, '(')):
                    continue
                self.clause(i + 1, tok.depth)
            elif up == 'TABLE' or (up.endswith('JOIN') and i not in self.read_joins):
                self.clause(i + 1, tok.depth)
            elif up == 'UPDATE':
                if i > 0 and self.word(i - 1, 'KEY', 'FOR'):
                    continue
                self.clause(self.skip_modifiers(i + 1), tok.depth)
            elif up in ('INSERT', 'REPLACE'):
                if self.punct(i + 1, '('):
                    continue  # the string functions INSERT() and REPLACE()
                j = self.skip_modifiers(i + 1)
                if self.word(j, 'INTO'):
                    j += 1
                self.ref(j, single=True)
            elif up == 'DELETE':
                self.delete_targets(self.skip_modifiers(i + 1))
            elif (
                up in ('DESCRIBE', 'DESC', 'EXPLAIN')
                and i == 0
                and self.ident(i + 1)
                and not self.word(i + 1, 'SELECT', 'INSERT', 'UPDATE', 'DELETE', 'REPLACE', 'WITH')
            ):
                self.ref(i + 1, single=True)
        return self.names

    def skip_modifiers(self, i: int) -> int:
        while self.word(i, *_MODIFIERS):
            i += 1
        return i

    def ctes(self, i: int) -> None:
        enclosing = self.parent[i - 1]
        scope_end = self.match[enclosing] if enclosing >= 0 else self.n
        recursive = self.word(i, 'RECURSIVE')
        if recursive:
            i += 1
        while self.ident(i):
            name = self.toks[i].name
            i += 1
            if self.punct(i, '('):
                i = self.match[i] + 1
            if not self.word(i, 'AS') or not self.punct(i + 1, '('):
                return
            body = (i + 1, self.match[i + 1])
            self.names.ctes.append(_Cte(name, body, scope_end, recursive))
            i = body[1] + 1
            if not self.punct(i, ','):
                return
            i += 1

    def clause(self, i: int, depth: int) -> None:
        """A table_references clause: refs separated by ',' or JOIN words, up to a clause keyword.

        Join conditions (ON ..., USING (...)) are stepped over; a ',' at the clause's depth always
        starts another reference, so ``FROM a JOIN b ON a.x = b.x, c`` reads c too.
        """
        expect_ref = True
        while i < self.n:
            tok = self.toks[i]
            if tok.depth < depth:
                return
            if expect_ref:
                if self.word(i, 'LATERAL'):
                    i += 1
                i = self.ref(i)
                expect_ref = False
                continue
            if tok.value == '(':
                i = self.match[i] + 1  # a join condition's parentheses; subqueries are read on their own
                continue
            if tok.value == ',' or self.joins(i):
                self.read_joins.add(i)
                expect_ref = True
            elif tok.value == ';' or (tok.kind == 'word' and tok.up in _CLAUSE_END):
                return
            i += 1

    def ref(self, i: int, single: bool = False) -> int:
        """One table reference starting at ``i``; returns the index after it."""
        if self.punct(i, '('):
            close = self.match[i]
            k = i + 1
            while self.punct(k, '('):
                k += 1
            if self.word(k, *_SUBQUERY_STARTS):
                pass  # a derived table: its own FROM clauses are read where they stand
            else:
                self.clause(i + 1, self.toks[i].depth + 1)
            return self.alias(close + 1, single)
        if not self.ident(i):
            raise self.fail(i, 'expected a table name')
        parts = [self.toks[i].name]
        j = i + 1
        while self.punct(j, '.') and (self.ident(j + 1) or self.punct(j + 1, '*')):
            parts.append(self.toks[j + 1].name)
            j += 2
        if parts[-1] == '*':
            parts.pop()
        if len(parts) > 2:
            raise self.fail(i, 'too many name parts')
        schema = parts[0] if len(parts) == 2 else None
        self.names.tables.append((schema, parts[-1], i))
        return self.alias(j, single)

    def alias(self, j: int, single: bool) -> int:
        while j < self.n:
            if self.word(j, 'PARTITION') and self.punct(j + 1, '('):
                j = self.match[j + 1] + 1
            elif self.word(j, 'USE', 'IGNORE', 'FORCE') and self.word(j + 1, 'INDEX', 'KEY'):
                k = j + 2
                while k < self.n and not self.punct(k, '('):
                    k += 1
                if k >= self.n:
                    raise self.fail(j, 'index hint without a column list')
                j = self.match[k] + 1
            elif single:
                return j
            elif self.word(j, 'AS'):
                if not self.ident(j + 1):
                    raise self.fail(j, 'AS without an alias')
                self.names.aliases.add(self.toks[j + 1].name)
                j += 2
            elif self.alias_at(j) and not self.punct(j + 1, '(') and not self.punct(j + 1, '.'):
                self.names.aliases.add(self.toks[j].name)
                j += 1
            elif self.punct(j, '(') and self.toks[j - 1].kind in ('word', 'qword') and j > 0:
                j = self.match[j] + 1  # derived table column list: (SELECT ...) AS t (a, b)
            else:
                return j
        return j

    def delete_targets(self, i: int) -> None:
        while self.ident(i) and not self.word(i, 'FROM'):
            parts = [self.toks[i].name]
            i += 1
            while self.punct(i, '.') and (self.ident(i + 1) or self.punct(i + 1, '*')):
                parts.append(self.toks[i + 1].name)
                i += 2
            if parts[-1] == '*':
                parts.pop()
            if len(parts) > 2:
                raise self.fail(i - 1, 'too many name parts')
            self.names.delete_targets.append((parts[0] if len(parts) == 2 else None, parts[-1]))
            if not self.punct(i, ','):
                return
            i += 1


def _check_words(toks: tuple[Tok, ...], verb: str, policy: Policy) -> None:
    for tok in toks:
        if tok.kind == 'word' and tok.up in ('OUTFILE', 'DUMPFILE'):
            raise _Refused('into_file', f'INTO {tok.up} is not allowed: the service never writes files')
    into_allowed = verb in ('INSERT', 'REPLACE')
    seen_into = False
    for tok in toks:
        if tok.kind not in ('word', 'qword'):
            continue
        up = tok.up if tok.kind == 'word' else tok.name.upper()
        if up == 'INTO' and tok.kind == 'word':
            if not into_allowed or seen_into or tok.depth != 0:
                raise _Refused('into_not_allowed', 'INTO is only allowed as the target of an INSERT')
            seen_into = True
        if up == 'PROCEDURE' and tok.kind == 'word':
            raise _Refused('procedure_not_allowed', 'PROCEDURE clauses are not allowed')


def _check_functions(toks: tuple[Tok, ...], policy: Policy) -> None:
    # By name wherever the word appears: MySQL accepts 'SLEEP (1)' and CURRENT_USER without parentheses.
    for tok in toks:
        if tok.kind in ('word', 'qword') and tok.name in policy.blocked_functions:
            raise _Refused('function_not_allowed', f'the function {tok.name.upper()} is not allowed')


def _check_names(names: _Names, toks: tuple[Tok, ...], policy: Policy) -> None:
    for schema, table, index in names.tables:
        if schema is not None:
            if schema in SYSTEM_SCHEMAS:
                raise _Refused('system_schema', f'the system schema {schema} is not accessible')
            if schema != policy.database:
                raise _Refused('schema_not_allowed', f'only the {policy.database} database is accessible, not {schema}')
            if table not in policy.allowed_tables:
                raise _Refused('table_not_allowed', f'the table {table} is not allowed')
        elif table not in policy.allowed_tables and table != 'dual' and not names.is_cte(table, index):
            raise _Refused('table_not_allowed', f'the table {table} is not allowed')
    qualifiers = policy.allowed_tables | names.aliases | {cte.name for cte in names.ctes}
    for schema, table in names.delete_targets:
        if (schema is not None and schema != policy.database) or table not in qualifiers:
            raise _Refused('table_not_allowed', f'the DELETE target {table} is not an allowed table or alias')
    n = len(toks)
    for i, tok in enumerate(toks):
        if tok.kind not in ('word', 'qword') or i + 1 >= n or toks[i + 1].value != '.':
            continue
        if i > 0 and toks[i - 1].value == '.':
            continue  # the middle of a.b.c: checked from its head
        qualifier = tok.name
        if qualifier in SYSTEM_SCHEMAS:
            raise _Refused('system_schema', f'the system schema {qualifier} is not accessible')
        three_part = i + 3 < n and toks[i + 3].value == '.'
        if three_part or qualifier == policy.database:
            if qualifier != policy.database:
                raise _Refused(
                    'schema_not_allowed', f'only the {policy.database} database is accessible, not {qualifier}'
                )
            if i + 2 < n and toks[i + 2].kind in ('word', 'qword'):
                if i + 3 < n and toks[i + 3].value == '(':
                    raise _Refused('function_not_allowed', 'stored functions are not allowed')
                if toks[i + 2].name not in policy.allowed_tables:
                    raise _Refused('table_not_allowed', f'the table {toks[i + 2].name} is not allowed')
        elif qualifier not in qualifiers:
            raise _Refused('unknown_qualifier', f'{qualifier} is neither an allowed table nor an alias of this query')


def _top_level(toks: tuple[Tok, ...], word: str) -> int:
    """Index of the first depth-0 occurrence of ``word``, or -1."""
    for i, tok in enumerate(toks):
        if tok.depth == 0 and tok.kind == 'word' and tok.up == word:
            return i
    return -1


def _locking_clause(toks: tuple[Tok, ...]) -> int:
    for i, tok in enumerate(toks):
        if tok.depth != 0 or tok.kind != 'word' or i + 1 >= len(toks):
            continue
        nxt = toks[i + 1].up
        if (tok.up == 'FOR' and nxt in ('UPDATE', 'SHARE')) or (tok.up == 'LOCK' and nxt == 'IN'):
            return i
    return -1


def _analyze(sql: str, policy: Policy) -> _Analysis | Rejection:
    try:
        lexed = lex(sql)
    except LexError as exc:
        return Rejection(exc.code, exc.message, exc.status)
    toks = lexed.toks
    verb = statement_verb(toks)
    if verb not in policy.allowed_statements:
        allowed = ', '.join(sorted(policy.allowed_statements))
        if not verb:
            return Rejection('statement_not_allowed', f'the query must start with one of {allowed}')
        return Rejection('statement_not_allowed', f'{verb} statements are not allowed (allowed: {allowed})')
    try:
        _check_words(toks, verb, policy)
        names = _Reader(toks, verb).read()
        _check_names(names, toks, policy)
        _check_functions(toks, policy)
    except _Refused as refused:
        return refused.rejection
    if verb in ('UPDATE', 'DELETE') and _top_level(toks, 'WHERE') < 0:
        return Rejection('missing_where', f'{verb} needs a WHERE clause')
    text = sql
    appended = False
    if verb == 'SELECT' and _top_level(toks, 'LIMIT') < 0 and _top_level(toks, 'FETCH') < 0:
        cap = f'LIMIT {policy.select_limit_cap}'
        lock = _locking_clause(toks)
        if lock >= 0:
            at = toks[lock].start
            text = f'{sql[:at].rstrip()} {cap} {sql[at:]}'
        else:
            end = lexed.scan.code_end
            text = f'{sql[:end]} {cap}{sql[end:]}'
        appended = True
    return _Analysis(text, verb, lexed.scan.placeholders, lexed.scan.format_problem, appended)


_analyze_cached = lru_cache(maxsize=4096)(_analyze)


def cache_entries() -> int:
    return _analyze_cached.cache_info().currsize


def analyze(sql: str, policy: Policy) -> _Analysis | Rejection:
    """The parameter-independent part of validation (cached by query text)."""
    if len(sql) > CACHE_TEXT_LIMIT:
        return _analyze(sql, policy)
    return _analyze_cached(sql, policy)


def validate(sql: str, params: Sequence[Scalar], policy: Policy) -> ValidatedQuery | Rejection:
    if not isinstance(sql, str):
        return Rejection('invalid_query', 'the query must be a string', 400)
    if not isinstance(params, (list, tuple)):
        return Rejection('invalid_params', 'params must be a list', 400)
    for index, value in enumerate(params):
        if not is_scalar(value):
            return Rejection(
                'invalid_params', f'params[{index}] must be a string, a finite number, a boolean or null', 400
            )
    result = analyze(sql, policy)
    if isinstance(result, Rejection):
        return result
    if params and result.format_problem:
        return Rejection('invalid_placeholders', result.format_problem, 400)
    if result.placeholders != len(params):
        return Rejection(
            'placeholder_mismatch',
            f'the query has {result.placeholders} %s placeholder(s) but {len(params)} param(s) were given',
            400,
        )
    return ValidatedQuery(result.sql, tuple(params), result.statement, result.limit_appended)

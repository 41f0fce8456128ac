# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""The trusted host's policy: which statements may reach the database.

``validate(sql, params, policy)`` returns a ``ValidatedQuery`` (the text to execute, unchanged except
for an appended ``LIMIT <cap>``) or a ``Rejection`` with a slug and a sentence. The database enforces
the same policy with grants; this is the early, explained refusal in front of it, and it refuses
whenever it cannot read a statement with certainty.

The checks, in order:

1. length (``query_too_long``, before anything is read);
2. lexical (``sqllex``, linear in the text): one statement, no comments, no unterminated literals, no
   characters or token boundaries that MySQL could read another way;
3. the statement type is allowed (``WITH ... DELETE`` is a DELETE, ``(SELECT ...)`` a SELECT);
4. no INTO except the INSERT/REPLACE target, no OUTFILE/DUMPFILE, no PROCEDURE, no hidden column
   named anywhere (``password``, quoted or not, bare or qualified);
5. a recursive-descent reading of the statement (``_Parser``, each token read once): every table
   reference (FROM, JOIN, UPDATE, INTO, USING, TABLE, derived tables, JSON_TABLE, CTEs and their
   scopes), every function call (a name followed by '('), every qualifier; anything outside the
   grammar it knows is refused (``unsupported_syntax`` or ``unreadable_table_reference``);
6. tables read are in ``read_tables``, write targets in ``write_tables``, no other schema; ``x.y``
   qualifiers name the database, an allowed table, an alias or a CTE; built-in functions come from an
   allow-list (``sqlfunctions``) minus a deny-list, anything else from ``allowed_functions``;
   ``*`` over a table with hidden columns is refused;
7. UPDATE and DELETE have a WHERE clause, and no branch of it (split on OR/||/XOR at any parenthesis
   level) is free of columns or compares a column with itself; a SELECT without a top-level LIMIT
   gets ``LIMIT <cap>``;
8. placeholders (pymysql's ``%s``) match the number of params.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import accumulate
from math import isfinite

from .classify import classify_lexed
from .sqlfunctions import DENIED_FUNCTIONS, NILADIC_FUNCTIONS
from .sqlfunctions import allowed as function_allowed
from .sqlfunctions import denied as function_denied
from .sqllex import Lexed, LexError, lex, verb_of

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
DEFAULT_HIDDEN_COLUMNS = frozenset({('staff', 'password'), ('staff', 'picture')})
# Kept for callers of the former Policy.blocked_functions: the functions refused even when allow-listed.
DEFAULT_BLOCKED_FUNCTIONS = DENIED_FUNCTIONS
CACHE_TEXT_LIMIT = 4096
# String generators and the position of their length argument; see _Parser.check_generator.
_GENERATORS = {'repeat': 1, 'space': 0, 'lpad': 1, 'rpad': 1}
GENERATOR_LIMIT = 1024


@dataclass(frozen=True)
class Policy:
    database: str = 'sakila'
    allowed_statements: frozenset[str] = DEFAULT_STATEMENTS  # REPLACE may be added by configuration
    read_tables: frozenset[str] = SAKILA_TABLES | SAKILA_VIEWS  # may appear anywhere a table is read
    write_tables: frozenset[str] = SAKILA_TABLES  # may be the target of INSERT/REPLACE/UPDATE/DELETE
    hidden_columns: frozenset[tuple[str, str]] = DEFAULT_HIDDEN_COLUMNS  # (table, column)
    allowed_functions: frozenset[str] = frozenset()  # lower-case names allowed beyond the built-ins
    select_limit_cap: int = 1000
    max_query_length: int = 8192
    flavor: str = 'mariadb'  # or 'mysql': the server that will run the statement

    @property
    def allowed_tables(self) -> frozenset[str]:
        """Every table the policy names, read or written."""
        return self.read_tables | self.write_tables


@dataclass(frozen=True)
class ValidatedQuery:
    sql: str
    params: tuple[Scalar, ...]
    statement: str
    limit_appended: bool
    kind: str = 'write'  # 'read' or 'write', as classify() reads the statement


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
    kind: str


class _Refused(Exception):
    def __init__(self, code: str, reason: str, status: int = 403) -> None:
        super().__init__(reason)
        self.rejection = Rejection(code, reason, status)


def is_scalar(value: object) -> bool:
    if value is None or isinstance(value, (str, bool, int)):
        return True
    return isinstance(value, float) and isfinite(value)


# -- vocabulary -----------------------------------------------------------------------------------
# MySQL 8.0 and MariaDB 10.11 reserved words, plus OFFSET, FETCH and RETURNING: such a word is never a
# table, an alias or an unqualified column, so it ends whatever expression or table list precedes it.
_RESERVED = frozenset({
    'ACCESSIBLE', 'ADD', 'ALL', 'ALTER', 'ANALYZE', 'AND', 'AS', 'ASC', 'ASENSITIVE', 'BEFORE', 'BETWEEN', 'BIGINT',
    'BINARY', 'BLOB', 'BOTH', 'BY', 'CALL', 'CASCADE', 'CASE', 'CHANGE', 'CHAR', 'CHARACTER', 'CHECK', 'COLLATE',
    'COLUMN', 'CONDITION', 'CONSTRAINT', 'CONTINUE', 'CONVERT', 'CREATE', 'CROSS', 'CUBE', 'CUME_DIST',
    'CURRENT_DATE', 'CURRENT_ROLE', 'CURRENT_TIME', 'CURRENT_TIMESTAMP', 'CURRENT_USER', 'CURSOR', 'DATABASE',
    'DATABASES', 'DAY_HOUR', 'DAY_MICROSECOND', 'DAY_MINUTE', 'DAY_SECOND', 'DEC', 'DECIMAL', 'DECLARE', 'DEFAULT',
    'DELAYED', 'DELETE', 'DELETE_DOMAIN_ID', 'DENSE_RANK', 'DESC', 'DESCRIBE', 'DETERMINISTIC', 'DISTINCT',
    'DISTINCTROW', 'DIV', 'DO_DOMAIN_IDS', 'DOUBLE', 'DROP', 'DUAL', 'EACH', 'ELSE', 'ELSEIF', 'EMPTY', 'ENCLOSED',
    'ESCAPED', 'EXCEPT', 'EXISTS', 'EXIT', 'EXPLAIN', 'FALSE', 'FETCH', 'FIRST_VALUE', 'FLOAT', 'FLOAT4', 'FLOAT8',
    'FOR', 'FORCE', 'FOREIGN', 'FROM', 'FULLTEXT', 'FUNCTION', 'GENERAL', 'GENERATED', 'GET', 'GRANT', 'GROUP',
    'GROUPING', 'GROUPS', 'HAVING', 'HIGH_PRIORITY', 'HOUR_MICROSECOND', 'HOUR_MINUTE', 'HOUR_SECOND', 'IF',
    'IGNORE', 'IGNORE_DOMAIN_IDS', 'IGNORE_SERVER_IDS', 'IN', 'INDEX', 'INFILE', 'INNER', 'INOUT', 'INSENSITIVE',
    'INSERT', 'INT', 'INT1', 'INT2', 'INT3', 'INT4', 'INT8', 'INTEGER', 'INTERSECT', 'INTERVAL', 'INTO',
    'IO_AFTER_GTIDS', 'IO_BEFORE_GTIDS', 'IS', 'ITERATE', 'JOIN', 'JSON_TABLE', 'KEY', 'KEYS', 'KILL', 'LAG',
    'LAST_VALUE', 'LATERAL', 'LEAD', 'LEADING', 'LEAVE', 'LEFT', 'LIKE', 'LIMIT', 'LINEAR', 'LINES', 'LOAD',
    'LOCALTIME', 'LOCALTIMESTAMP', 'LOCK', 'LONG', 'LONGBLOB', 'LONGTEXT', 'LOOP', 'LOW_PRIORITY', 'MASTER_BIND',
    'MASTER_HEARTBEAT_PERIOD', 'MASTER_SSL_VERIFY_SERVER_CERT', 'MATCH', 'MAXVALUE', 'MEDIUMBLOB', 'MEDIUMINT',
    'MEDIUMTEXT', 'MIDDLEINT', 'MINUTE_MICROSECOND', 'MINUTE_SECOND', 'MOD', 'MODIFIES', 'NATURAL', 'NOT',
    'NO_WRITE_TO_BINLOG', 'NTH_VALUE', 'NTILE', 'NULL', 'NUMERIC', 'OF', 'OFFSET', 'ON', 'OPTIMIZE',
    'OPTIMIZER_COSTS', 'OPTION', 'OPTIONALLY', 'OR', 'ORDER', 'OUT', 'OUTER', 'OUTFILE', 'OVER', 'PAGE_CHECKSUM',
    'PARSE_VCOL_EXPR', 'PARTITION', 'PERCENT_RANK', 'PRECISION', 'PRIMARY', 'PROCEDURE', 'PURGE', 'RANGE', 'RANK',
    'READ', 'READS', 'READ_WRITE', 'REAL', 'RECURSIVE', 'REF_SYSTEM_ID', 'REFERENCES', 'REGEXP', 'RELEASE',
    'RENAME', 'REPEAT', 'REPLACE', 'REQUIRE', 'RESIGNAL', 'RESTRICT', 'RETURN', 'RETURNING', 'REVOKE', 'RIGHT',
    'RLIKE', 'ROW', 'ROW_NUMBER', 'ROWS', 'SCHEMA', 'SCHEMAS', 'SECOND_MICROSECOND', 'SELECT', 'SENSITIVE',
    'SEPARATOR', 'SET', 'SHOW', 'SIGNAL', 'SLOW', 'SMALLINT', 'SPATIAL', 'SPECIFIC', 'SQL', 'SQL_BIG_RESULT',
    'SQL_CALC_FOUND_ROWS', 'SQL_SMALL_RESULT', 'SQLEXCEPTION', 'SQLSTATE', 'SQLWARNING', 'SSL', 'STARTING',
    'STATS_AUTO_RECALC', 'STATS_PERSISTENT', 'STATS_SAMPLE_PAGES', 'STORED', 'STRAIGHT_JOIN', 'SYSTEM', 'TABLE',
    'TERMINATED', 'THEN', 'TINYBLOB', 'TINYINT', 'TINYTEXT', 'TO', 'TRAILING', 'TRIGGER', 'TRUE', 'UNDO', 'UNION',
    'UNIQUE', 'UNLOCK', 'UNSIGNED', 'UPDATE', 'USAGE', 'USE', 'USING', 'UTC_DATE', 'UTC_TIME', 'UTC_TIMESTAMP',
    'VALUES', 'VARBINARY', 'VARCHAR', 'VARCHARACTER', 'VARYING', 'VIRTUAL', 'WHEN', 'WHERE', 'WHILE', 'WINDOW',
    'WITH', 'WRITE', 'XOR', 'YEAR_MONTH', 'ZEROFILL'
})
# Reserved words that are function calls when '(' follows them.
_CALLABLE = frozenset({
    'CHAR', 'CONVERT', 'CUME_DIST', 'CURRENT_DATE', 'CURRENT_ROLE', 'CURRENT_TIME', 'CURRENT_TIMESTAMP',
    'CURRENT_USER', 'DATABASE', 'DEFAULT', 'DENSE_RANK', 'FIRST_VALUE', 'GROUPING', 'IF', 'INSERT', 'INTERVAL',
    'JSON_TABLE', 'LAG', 'LAST_VALUE', 'LEAD', 'LEFT', 'LOCALTIME', 'LOCALTIMESTAMP', 'MATCH', 'MOD', 'NTH_VALUE',
    'NTILE', 'PERCENT_RANK', 'RANK', 'REPEAT', 'REPLACE', 'RIGHT', 'ROW', 'ROW_NUMBER', 'SCHEMA', 'UTC_DATE',
    'UTC_TIME', 'UTC_TIMESTAMP', 'VALUES'
})
# Words an expression may hold that are neither columns nor function names; '(' after them opens a
# parenthesised expression or subquery, not a call (MOD, INTERVAL and DEFAULT are also functions).
_EXPR_KEYWORDS = frozenset({
    'ALL', 'AND', 'ANY', 'AS', 'BETWEEN', 'BINARY', 'CASE', 'COLLATE', 'DEFAULT', 'DISTINCT', 'DIV', 'ELSE', 'END',
    'ESCAPE', 'EXISTS', 'FALSE', 'IN', 'INTERVAL', 'IS', 'LIKE', 'MEMBER', 'MOD', 'NOT', 'NULL', 'OF', 'OR',
    'REGEXP', 'RLIKE', 'SOME', 'SOUNDS', 'THEN', 'TRUE', 'UNKNOWN', 'WHEN', 'XOR'
})
_LIST_KEYWORDS = frozenset({'IN', 'ANY', 'ALL', 'SOME', 'EXISTS'})
_DATE_UNITS = frozenset({
    'MICROSECOND', 'SECOND', 'MINUTE', 'HOUR', 'DAY', 'WEEK', 'MONTH', 'QUARTER', 'YEAR', 'SECOND_MICROSECOND',
    'MINUTE_MICROSECOND', 'MINUTE_SECOND', 'HOUR_MICROSECOND', 'HOUR_SECOND', 'HOUR_MINUTE', 'DAY_MICROSECOND',
    'DAY_SECOND', 'DAY_MINUTE', 'DAY_HOUR', 'YEAR_MONTH', 'SQL_TSI_MICROSECOND', 'SQL_TSI_SECOND', 'SQL_TSI_MINUTE',
    'SQL_TSI_HOUR', 'SQL_TSI_DAY', 'SQL_TSI_WEEK', 'SQL_TSI_MONTH', 'SQL_TSI_QUARTER', 'SQL_TSI_YEAR'
})
_TYPED_LITERALS = frozenset({'DATE', 'TIME', 'TIMESTAMP'})
_TYPE_WORDS = frozenset({
    'ARRAY', 'ASCII', 'BIGINT', 'BINARY', 'BIT', 'BLOB', 'BOOL', 'BOOLEAN', 'BYTE', 'CHAR', 'CHARACTER', 'DATE',
    'DATETIME', 'DEC', 'DECIMAL', 'DOUBLE', 'FIXED', 'FLOAT', 'FLOAT4', 'FLOAT8', 'GEOMETRY', 'INET4', 'INET6',
    'INT', 'INT1', 'INT2', 'INT3', 'INT4', 'INT8', 'INTEGER', 'JSON', 'LINESTRING', 'LONG', 'LONGBLOB', 'LONGTEXT',
    'MEDIUMBLOB', 'MEDIUMINT', 'MEDIUMTEXT', 'NATIONAL', 'NCHAR', 'NUMERIC', 'NVARCHAR', 'POINT', 'POLYGON',
    'PRECISION', 'REAL', 'SIGNED', 'SMALLINT', 'TEXT', 'TIME', 'TIMESTAMP', 'TINYBLOB', 'TINYINT', 'TINYTEXT',
    'UNICODE', 'UNSIGNED', 'UUID', 'VARBINARY', 'VARCHAR', 'VARCHARACTER', 'VARYING', 'YEAR', 'ZEROFILL'
})
_SELECT_MODIFIERS = frozenset({
    'ALL', 'DISTINCT', 'DISTINCTROW', 'HIGH_PRIORITY', 'STRAIGHT_JOIN', 'SQL_SMALL_RESULT', 'SQL_BIG_RESULT',
    'SQL_BUFFER_RESULT', 'SQL_NO_CACHE', 'SQL_CACHE', 'SQL_CALC_FOUND_ROWS',
})
_INSERT_MODIFIERS = frozenset({'LOW_PRIORITY', 'DELAYED', 'HIGH_PRIORITY', 'IGNORE'})
_JOIN_WORDS = frozenset({'JOIN', 'INNER', 'CROSS', 'STRAIGHT_JOIN', 'LEFT', 'RIGHT', 'NATURAL'})
_SET_OPERATORS = frozenset({'UNION', 'EXCEPT', 'INTERSECT'})
# Words that can never be an alias in a table list, though MySQL does not reserve them all.
_NEVER_ALIAS = frozenset({'VALUE', 'VALUES', 'RETURNING'})
_NONE: frozenset[str] = frozenset()
_AS = frozenset({'AS'})
_ORDER_WORDS = frozenset({'ASC', 'DESC'})
_WINDOW_WORDS = frozenset({
    'PARTITION', 'BY', 'ORDER', 'ASC', 'DESC', 'ROWS', 'RANGE', 'GROUPS', 'UNBOUNDED', 'PRECEDING', 'FOLLOWING',
    'CURRENT', 'ROW', 'EXCLUDE', 'NO', 'OTHERS', 'TIES', 'GROUP',
})
_TRIM_WORDS = frozenset({'BOTH', 'LEADING', 'TRAILING', 'FROM'})
_SUBSTRING_WORDS = frozenset({'FROM', 'FOR'})
_GROUP_CONCAT_WORDS = frozenset({'ORDER', 'BY', 'ASC', 'DESC', 'SEPARATOR', 'LIMIT', 'OFFSET'})
_AGAINST_WORDS = frozenset({'NATURAL', 'LANGUAGE', 'MODE', 'BOOLEAN', 'WITH', 'QUERY', 'EXPANSION'})
_COMPARISONS = frozenset({'=', '<=>', '>=', '<='})

# Roles of a '(' for the WHERE analysis: a parenthesised expression is looked into, the rest is opaque.
_GROUP, _OPAQUE, _SUBQUERY, _LIST = 1, 2, 3, 4


@dataclass
class _Block:
    """One SELECT (or TABLE) and its FROM clause: for the ``*`` check, and DELETE's target resolution."""

    star: int = -1  # token index of a '*' or 't.*' select item
    bare_star: bool = False  # a '*' item: every table of the FROM clause
    star_tables: list[str] = field(default_factory=list)  # the qualifiers of 't.*' items
    bindings: list[tuple[str, str, int]] = field(default_factory=list)  # (exposed name, table, ref index or -1)


@lru_cache(maxsize=64)
def _hidden(policy: Policy) -> tuple[dict[str, str], frozenset[str]]:
    """(hidden column name -> 'table.column, ...', tables with hidden columns) of a policy."""
    names: dict[str, list[str]] = {}
    for table, column in sorted(policy.hidden_columns):
        names.setdefault(column.lower(), []).append(f'{table.lower()}.{column.lower()}')
    tables = frozenset(table.lower() for table, _ in policy.hidden_columns)
    return {name: ', '.join(where) for name, where in names.items()}, tables


class _Parser:
    """Reads one statement's tokens once, left to right, and collects what the policy checks."""

    def __init__(self, lexed: Lexed, policy: Policy) -> None:
        self.policy = policy
        n = self.n = len(lexed.kinds)
        # The lexer's parallel lists, with a sentinel at index n so that lookahead needs no bounds
        # checks. Only punctuation has the value '(' or ')' (a string '(' is "'('").
        self.k = k = lexed.kinds + ['']
        self.v = v = lexed.values + ['']
        self.w = lexed.words + ['']
        self.names = lexed.names + ['']
        self.starts = lexed.starts
        self.depths = lexed.depths
        match = [-1] * (n + 1)
        stack: list[int] = []
        for i in [i for i, value in enumerate(v) if value == '(' or value == ')']:
            if k[i] != 'punct':
                continue
            if v[i] == '(':
                stack.append(i)
            else:
                match[stack.pop()] = i
        self.match = match
        self.cols = bytearray(n + 1)  # 1: the token is a column (or alias) identifier
        self.role = bytearray(n + 1)  # role of each '('
        self.scopes: list[set[str]] = []  # CTE names visible, innermost last
        self.aliases: set[str] = set()  # table aliases, derived tables, CTEs, row alias: valid qualifiers
        self.quals: list[tuple[int, ...]] = []  # token indexes of the qualifier parts of each x.y / x.y.z / x.*
        self.refs: list[tuple[str | None, str, int, str]] = []  # (schema, table, token index, 'read'/'write')
        self.blocks: list[_Block] = []
        self.locked: list[int] = []  # token indexes of the names in FOR UPDATE OF ...
        self.where: tuple[int, int] | None = None  # the top-level WHERE of UPDATE/DELETE, token range
        self.top_limit = False  # a LIMIT or FETCH clause at depth 0
        self.top_offset = False  # an OFFSET ... ROWS clause at depth 0 (the cap is then a FETCH clause)
        self.top_lock = -1  # token index of the first locking clause at depth 0

    # -- errors -----------------------------------------------------------------------------------
    def _at(self, i: int) -> str:
        if i >= self.n:
            return 'at the end'
        return f'at offset {self.starts[i]} ({self.v[i][:30]!r})'

    def unsupported(self, i: int, what: str) -> _Refused:
        return _Refused('unsupported_syntax', f'cannot read the statement {self._at(i)}: {what}', 400)

    def unreadable(self, i: int, what: str) -> _Refused:
        return _Refused('unreadable_table_reference', f'cannot read the table reference {self._at(i)}: {what}')

    # -- small predicates -------------------------------------------------------------------------
    def is_name(self, i: int) -> bool:
        """An identifier: a backtick name, or a word MySQL does not reserve."""
        kind = self.k[i]
        return kind == 'qword' or (kind == 'word' and self.w[i] not in _RESERVED)

    def is_cte(self, name: str) -> bool:
        return any(name in frame for frame in self.scopes)

    def after_value(self, i: int) -> bool:
        """Token ``i`` directly follows a literal or a ')' (as the unit in INTERVAL 1 DAY does)."""
        return i > 0 and (self.k[i - 1] in ('number', 'string', 'placeholder') or self.v[i - 1] == ')')

    def starts_query(self, j: int) -> bool:
        """Whether the tokens from ``j`` (just inside a '(') are a query rather than an expression."""
        up = self.w[j]
        if up in ('SELECT', 'WITH', 'TABLE', 'VALUES'):
            return True
        if self.v[j] == '(':
            after = self.match[j] + 1
            if self.v[after] == ')' or self.w[after] in _SET_OPERATORS or self.w[after] in ('ORDER', 'LIMIT'):
                return self.starts_query(j + 1)
        return False

    # -- statements -------------------------------------------------------------------------------
    def statement(self, verb: str) -> None:
        w = self.w
        i = 0
        if w[0] == 'WITH' and verb in ('UPDATE', 'DELETE'):
            i = self.with_clause(0)
        if verb == 'SELECT':
            i = self.query_expression(0)
        elif verb in ('INSERT', 'REPLACE'):
            if w[0] != verb:
                raise self.unsupported(0, f'a WITH clause goes after {verb} ..., before its SELECT')
            i = self.insert(0)
        elif verb == 'UPDATE' and w[i] == 'UPDATE':
            i = self.update(i)
        elif verb == 'DELETE' and w[i] == 'DELETE':
            i = self.delete(i)
        else:
            raise self.unsupported(i, f'the validator cannot read {verb} statements')
        if i != self.n:
            raise self.unsupported(i, 'unexpected text')

    def query_expression(self, i: int) -> int:
        scoped = self.w[i] == 'WITH'
        if scoped:
            i = self.with_clause(i)
        i = self.query_term(i)
        while self.w[i] in _SET_OPERATORS:
            i += 1
            if self.w[i] in ('ALL', 'DISTINCT'):
                i += 1
            i = self.query_term(i)
        i = self.order_limit(i)
        i = self.locking(i)
        if scoped:
            self.scopes.pop()
        return i

    def query_term(self, i: int) -> int:
        up = self.w[i]
        if up == 'SELECT':
            return self.select_body(i)
        if self.v[i] == '(':
            close = self.match[i]
            self.role[i] = _SUBQUERY
            j = self.query_expression(i + 1)
            if j != close:
                raise self.unsupported(j, 'expected the end of the parenthesised query')
            return close + 1
        if up == 'TABLE':  # TABLE t is SELECT * FROM t
            block = _Block(star=i)
            self.blocks.append(block)
            if not self.is_name(i + 1):
                raise self.unreadable(i + 1, 'expected a table name after TABLE')
            j, schema, table = self.table_name(i + 1)
            ref = self.add_table(schema, table, i + 1, 'read')
            block.bindings.append((table, table, ref))
            return j
        if up == 'VALUES':
            return self.value_rows(i + 1)
        raise self.unsupported(i, 'expected SELECT')

    def select_body(self, i: int) -> int:
        w = self.w
        block = _Block()
        self.blocks.append(block)
        i += 1
        while w[i] in _SELECT_MODIFIERS:
            i += 1
        i = self.select_list(i, block)
        if w[i] == 'FROM':
            i = self.table_references(i + 1, 'read', block)
        if w[i] == 'WHERE':
            i = self.condition(i + 1)
        if w[i] == 'GROUP' and w[i + 1] == 'BY':
            i = self.expr_list(i + 2, _ORDER_WORDS)
            if w[i] == 'WITH' and w[i + 1] == 'ROLLUP':
                i += 2
        if w[i] == 'HAVING':
            i = self.condition(i + 1)
        if w[i] == 'WINDOW':
            i = self.window_definitions(i + 1)
        return i

    def select_list(self, i: int, block: _Block) -> int:
        v = self.v
        while True:
            if v[i] == '*':
                block.star = i
                block.bare_star = True
                i += 1
            elif self.is_name(i) and v[i + 1] == '.' and v[i + 2] == '*':
                block.star = i
                block.star_tables.append(self.names[i])
                self.quals.append((i,))
                i += 3
            elif (self.is_name(i) and v[i + 1] == '.' and self.k[i + 2] in ('word', 'qword') and v[i + 3] == '.'
                  and v[i + 4] == '*'):
                block.star = i
                block.star_tables.append(self.names[i + 2])
                self.quals.append((i, i + 2))
                i += 5
            else:
                j = self.expr(i)
                if j == i:
                    raise self.unsupported(i, 'expected a select expression')
                i = j
            if v[i] != ',':
                return i
            i += 1

    def order_limit(self, i: int) -> int:
        w = self.w
        if w[i] == 'ORDER' and w[i + 1] == 'BY':
            i = self.expr_list(i + 2, _ORDER_WORDS)
        if w[i] == 'LIMIT':
            self.top_limit = self.top_limit or self.depths[i] == 0
            i = self.limit(i)
        if w[i] == 'OFFSET':
            self.top_offset = self.top_offset or self.depths[i] == 0
            i = self.count(i + 1)
            if w[i] in ('ROW', 'ROWS'):
                i += 1
        if w[i] == 'FETCH':
            self.top_limit = self.top_limit or self.depths[i] == 0
            if w[i + 1] not in ('FIRST', 'NEXT'):
                raise self.unsupported(i + 1, 'expected FETCH FIRST or FETCH NEXT')
            i += 2
            if self.k[i] in ('number', 'placeholder'):
                i += 1
            if w[i] not in ('ROW', 'ROWS'):
                raise self.unsupported(i, 'expected ROWS')
            i += 1
            if w[i] == 'ONLY':
                i += 1
            elif w[i] == 'WITH' and w[i + 1] == 'TIES':
                i += 2
            else:
                raise self.unsupported(i, 'expected ONLY or WITH TIES')
        return i

    def count(self, i: int) -> int:
        if self.k[i] not in ('number', 'placeholder'):
            raise self.unsupported(i, 'expected a number or %s')
        return i + 1

    def limit(self, i: int) -> int:
        i = self.count(i + 1)
        if self.v[i] == ',' or self.w[i] == 'OFFSET':
            i = self.count(i + 1)
        return i

    def locking(self, i: int) -> int:
        w = self.w
        if self.top_lock < 0 and i < self.n and self.depths[i] == 0 and (
                (w[i] == 'FOR' and w[i + 1] in ('UPDATE', 'SHARE')) or (w[i] == 'LOCK' and w[i + 1] == 'IN')):
            self.top_lock = i
        while True:
            if w[i] == 'FOR' and w[i + 1] in ('UPDATE', 'SHARE'):
                i += 2
                if w[i] == 'OF':
                    i += 1
                    while True:
                        if not self.is_name(i) or self.v[i + 1] == '.':
                            raise self.unsupported(i, 'expected the name or alias of a table of the query after OF')
                        self.locked.append(i)
                        i += 1
                        if self.v[i] != ',':
                            break
                        i += 1
                if w[i] == 'NOWAIT':
                    i += 1
                elif w[i] == 'SKIP' and w[i + 1] == 'LOCKED':
                    i += 2
                elif w[i] == 'WAIT':
                    i = self.count(i + 1)
            elif w[i] == 'LOCK' and w[i + 1] == 'IN' and w[i + 2] == 'SHARE' and w[i + 3] == 'MODE':
                i += 4
            else:
                return i

    def with_clause(self, i: int) -> int:
        """WITH [RECURSIVE] name [(cols)] AS (query) {, ...}; pushes the scope its caller pops."""
        w, v = self.w, self.v
        i += 1
        recursive = w[i] == 'RECURSIVE'
        if recursive:
            i += 1
        frame: set[str] = set()
        self.scopes.append(frame)
        while True:
            if not self.is_name(i):
                raise self.unsupported(i, 'expected the name of a common table expression')
            name = self.names[i]
            i += 1
            if v[i] == '(':
                i = self.name_list(i)
            if w[i] != 'AS' or v[i + 1] != '(':
                raise self.unsupported(i, 'expected AS (')
            open_ = i + 1
            close = self.match[open_]
            self.role[open_] = _SUBQUERY
            if recursive:  # its own body reads the CTE; otherwise the name there is the real table
                frame.add(name)
            j = self.query_expression(open_ + 1)
            if j != close:
                raise self.unsupported(j, 'expected the end of the common table expression')
            frame.add(name)
            self.aliases.add(name)
            i = close + 1
            if v[i] != ',':
                return i
            i += 1

    def insert(self, i: int) -> int:
        w, v = self.w, self.v
        verb = w[i]
        i += 1
        while w[i] in _INSERT_MODIFIERS:
            i += 1
        if w[i] == 'INTO':
            i += 1
        if not self.is_name(i):
            raise self.unreadable(i, f'expected the table to {verb.lower()} into')
        j, schema, table = self.table_name(i)
        self.refs.append((schema, table, i, 'write'))
        if w[j] == 'PARTITION' and v[j + 1] == '(':
            j = self.name_list(j + 1)
        if v[j] == '(' and not self.starts_query(j + 1):
            j = self.name_list(j)
        if w[j] in ('VALUES', 'VALUE'):
            j = self.row_alias(self.value_rows(j + 1))
        elif w[j] == 'SET':
            j = self.row_alias(self.assignments(j + 1))
        elif self.starts_query(j) or v[j] == '(':
            j = self.query_expression(j)
        else:
            raise self.unsupported(j, 'expected VALUES, SET or SELECT')
        if w[j] == 'ON' and w[j + 1] == 'DUPLICATE' and w[j + 2] == 'KEY' and w[j + 3] == 'UPDATE':
            if verb == 'REPLACE':
                raise self.unsupported(j, 'REPLACE has no ON DUPLICATE KEY UPDATE')
            j = self.assignments(j + 4)
        if w[j] == 'RETURNING':
            raise self.unsupported(j, 'RETURNING is not supported')
        return j

    def value_rows(self, j: int) -> int:
        v = self.v
        while True:
            if self.w[j] == 'ROW' and v[j + 1] == '(':
                j += 1
            if v[j] != '(':
                raise self.unsupported(j, 'expected a parenthesised row of values')
            close = self.match[j]
            self.role[j] = _LIST
            if v[j + 1] != ')' and self.expr_list(j + 1) != close:
                raise self.unsupported(j, 'cannot read this row of values')
            j = close + 1
            if v[j] != ',':
                return j
            j += 1

    def row_alias(self, j: int) -> int:
        """MySQL 8's INSERT ... VALUES (...) AS new [(a, b)] ON DUPLICATE KEY UPDATE x = new.x."""
        if self.w[j] != 'AS':
            return j
        if self.policy.flavor != 'mysql':
            raise _Refused(
                'unsupported_syntax',
                'MariaDB has no row alias (INSERT ... VALUES (...) AS new); '
                'write ON DUPLICATE KEY UPDATE last_name = VALUES(last_name) instead',
                400,
            )
        if not self.is_name(j + 1):
            raise self.unsupported(j + 1, 'expected the row alias')
        self.aliases.add(self.names[j + 1])
        j += 2
        if self.v[j] == '(':
            j = self.name_list(j)
        return j

    def assignments(self, j: int) -> int:
        v = self.v
        while True:
            if not self.is_name(j):
                raise self.unsupported(j, 'expected a column to assign')
            if v[j + 1] == '.':
                j = self.qualified(j)
            else:
                self.cols[j] = 1
                j += 1
            if v[j] != '=' or self.k[j] != 'op':
                raise self.unsupported(j, "expected '=' (':=' is not supported)")
            start = j + 1
            j = self.expr(start, stops=_AS)  # INSERT ... SET a = 1 AS new: the row alias
            if j == start:
                raise self.unsupported(j, 'expected an expression')
            if v[j] != ',':
                return j
            j += 1

    def where_clause(self, i: int) -> int:
        if self.w[i] != 'WHERE':
            return i
        j = self.condition(i + 1)
        self.where = (i + 1, j)
        return j

    def update(self, i: int) -> int:
        w = self.w
        i += 1
        while w[i] in ('LOW_PRIORITY', 'IGNORE'):
            i += 1
        i = self.table_references(i, 'write', _Block())
        if w[i] != 'SET':
            raise self.unsupported(i, 'expected SET')
        i = self.where_clause(self.assignments(i + 1))
        if w[i] == 'ORDER' and w[i + 1] == 'BY':
            i = self.expr_list(i + 2, _ORDER_WORDS)
        if w[i] == 'LIMIT':
            i = self.count(i + 1)
        return i

    def delete(self, i: int) -> int:
        w = self.w
        i += 1
        while w[i] in ('LOW_PRIORITY', 'QUICK', 'IGNORE'):
            i += 1
        multi = True
        block = _Block()
        if w[i] == 'FROM':
            first = i + 1
            j, targets = self.delete_targets(first)
            if w[j] == 'USING':  # DELETE FROM t1, t2 USING <table references>
                if self.v[j + 1] == '(':
                    raise self.unreadable(j + 1, 'DELETE ... USING (...) is not supported; list the tables '
                                                 'without parentheses')
                j = self.table_references(j + 1, 'read', block)
            else:  # DELETE FROM t [[AS] alias] [PARTITION (...)]
                if len(targets) != 1 or targets[0][3]:
                    raise self.unreadable(first, 'expected one table, or a USING clause')
                multi = False
                j, schema, table = self.table_name(first)
                ref = self.add_table(schema, table, first, 'write')
                if ref < 0:
                    raise _Refused('table_not_writable', f'{table} is a common table expression, not a table')
                j = self.after_table(j, table, ref, block)
                targets = []
        else:  # DELETE t1, t2 FROM <table references>
            j, targets = self.delete_targets(i)
            if not targets or w[j] != 'FROM':
                raise self.unreadable(j, 'expected the tables to delete from, then FROM')
            j = self.table_references(j + 1, 'read', block)
        if multi:
            self.resolve_delete_targets(targets, block)
        j = self.where_clause(j)
        if not multi:
            if w[j] == 'ORDER' and w[j + 1] == 'BY':
                j = self.expr_list(j + 2, _ORDER_WORDS)
            if w[j] == 'LIMIT':
                j = self.count(j + 1)
        if w[j] == 'RETURNING':
            raise self.unsupported(j, 'RETURNING is not supported')
        return j

    def delete_targets(self, i: int) -> tuple[int, list[tuple[str | None, str, int, bool]]]:
        """t[.*] {, t[.*]}: (index after, [(schema, name, token index, star)])."""
        v, k = self.v, self.k
        targets: list[tuple[str | None, str, int, bool]] = []
        while self.is_name(i):
            start = i
            parts = [self.names[i]]
            star = False
            i += 1
            while v[i] == '.':
                if k[i + 1] in ('word', 'qword'):
                    parts.append(self.names[i + 1])
                    i += 2
                elif v[i + 1] == '*':
                    star = True
                    i += 2
                    break
                else:
                    raise self.unreadable(i, "expected a name or '*' after '.'")
            if len(parts) > 2:
                raise self.unreadable(start, 'too many name parts')
            targets.append((parts[0] if len(parts) == 2 else None, parts[-1], start, star))
            if v[i] != ',':
                break
            i += 1
        return i, targets

    def resolve_delete_targets(self, targets: list[tuple[str | None, str, int, bool]], block: _Block) -> None:
        """Each multi-table DELETE target names a table (or its alias) of the statement's table list:
        that table becomes a write target."""
        by_name: dict[str, list[int]] = {}
        by_table: dict[str, list[int]] = {}
        for exposed, table, ref in block.bindings:
            by_name.setdefault(exposed, []).append(ref)
            if exposed == table:
                by_table.setdefault(table, []).append(ref)
        done: set[tuple[str | None, str]] = set()
        for schema, name, _index, _star in targets:
            if (schema, name) in done:
                continue
            done.add((schema, name))
            if schema is not None:
                if schema in SYSTEM_SCHEMAS:
                    raise _Refused('system_schema', f'the system schema {schema} is not accessible')
                if schema != self.policy.database:
                    raise _Refused('schema_not_allowed',
                                   f'only the {self.policy.database} database is accessible, not {schema}')
                found = by_table.get(name, [])
            else:
                found = by_name.get(name, [])
            if not found:
                raise _Refused('table_not_allowed', f'the DELETE target {name} is not a table of this statement')
            for ref in found:
                if ref < 0:
                    raise _Refused('table_not_writable', f'the DELETE target {name} is not a table')
                ref_schema, table, index, _mode = self.refs[ref]
                self.refs[ref] = (ref_schema, table, index, 'write')

    # -- table references -------------------------------------------------------------------------
    def table_references(self, i: int, mode: str, block: _Block) -> int:
        while True:
            i = self.table_ref(i, mode, block)
            if self.v[i] != ',':
                return i
            i += 1

    def table_ref(self, i: int, mode: str, block: _Block) -> int:
        """A table factor and its joins; ON and USING (...) only as the condition of a JOIN."""
        w = self.w
        i = self.table_factor(i, mode, block)
        pending = 0  # joins that may still take a condition: a JOIN b JOIN c ON ... ON ... nests
        while True:
            up = w[i]
            if up in _JOIN_WORDS:
                if up != 'NATURAL':
                    pending += 1
                i = self.table_factor(self.join_words(i), mode, block)
            elif up == 'ON' and w[i + 1] != 'DUPLICATE':
                if not pending:
                    raise self.unreadable(i, 'ON without a JOIN')
                pending -= 1
                i = self.condition(i + 1)
            elif up == 'USING':
                if not pending or self.v[i + 1] != '(':
                    raise self.unreadable(i, 'USING (...) is only allowed as the condition of a JOIN')
                pending -= 1
                i = self.name_list(i + 1)
            else:
                return i

    def join_words(self, i: int) -> int:
        w = self.w
        up = w[i]
        if up == 'STRAIGHT_JOIN':
            return i + 1
        i += 1
        if up == 'NATURAL':
            if w[i] in ('LEFT', 'RIGHT'):
                i += 1
                if w[i] == 'OUTER':
                    i += 1
            elif w[i] == 'INNER':
                i += 1
        elif up in ('LEFT', 'RIGHT') and w[i] == 'OUTER':
            i += 1
        if up != 'JOIN':
            if w[i] != 'JOIN':
                raise self.unreadable(i, 'expected JOIN')
            i += 1
        return i

    def table_factor(self, i: int, mode: str, block: _Block) -> int:
        w, v = self.w, self.v
        if v[i] == '(':
            close = self.match[i]
            if self.starts_query(i + 1):
                return self.derived_table(i, block)
            self.role[i] = _OPAQUE
            j = self.table_references(i + 1, mode, block)
            if j != close:
                raise self.unreadable(j, "expected ')'")
            return close + 1
        if w[i] == 'LATERAL':
            if v[i + 1] != '(' or not self.starts_query(i + 2):
                raise self.unreadable(i, 'LATERAL needs a parenthesised subquery')
            return self.derived_table(i + 1, block)
        if w[i] == 'JSON_TABLE' and v[i + 1] == '(':
            j = self.json_table(i)
            j, alias = self.alias(j)
            if alias:
                block.bindings.append((alias, alias, -1))
            return j
        if w[i] == 'DUAL':
            return i + 1
        if not self.is_name(i):
            raise self.unreadable(i, 'expected a table name')
        j, schema, table = self.table_name(i)
        ref = self.add_table(schema, table, i, mode)
        return self.after_table(j, table, ref, block)

    def derived_table(self, i: int, block: _Block) -> int:
        close = self.match[i]
        self.role[i] = _SUBQUERY
        j = self.query_expression(i + 1)
        if j != close:
            raise self.unsupported(j, 'expected the end of the derived table')
        j, alias = self.alias(close + 1)
        if alias:
            block.bindings.append((alias, alias, -1))
            if self.v[j] == '(':  # (SELECT ...) AS t (a, b)
                j = self.name_list(j)
        return j

    def table_name(self, i: int) -> tuple[int, str | None, str]:
        """name or schema.name at ``i`` (a name): (index after, schema or None, table)."""
        names, v = self.names, self.v
        j = i + 1
        if v[j] != '.':
            return j, None, names[i]
        if self.k[j + 1] not in ('word', 'qword'):
            raise self.unreadable(j, "expected a table name after '.'")
        if v[j + 2] == '.':
            raise self.unreadable(i, 'too many name parts')
        return j + 2, names[i], names[j + 1]

    def add_table(self, schema: str | None, table: str, i: int, mode: str) -> int:
        """Record a table reference; -1 when the name is a CTE in scope."""
        if schema is None and self.is_cte(table):
            return -1
        self.refs.append((schema, table, i, mode))
        return len(self.refs) - 1

    def after_table(self, j: int, table: str, ref: int, block: _Block) -> int:
        """[PARTITION (...)] [[AS] alias] [index hints], the partitions also after the alias."""
        w, v = self.w, self.v
        alias: str | None = None
        while True:
            if w[j] == 'PARTITION' and v[j + 1] == '(':
                j = self.name_list(j + 1)
            elif w[j] in ('USE', 'IGNORE', 'FORCE') and w[j + 1] in ('INDEX', 'KEY'):
                j = self.index_hint(j)
            elif alias is None:
                after, alias = self.alias(j)
                if alias is None:
                    break
                j = after
            else:
                break
        block.bindings.append((alias or table, table, ref))
        return j

    def alias(self, j: int) -> tuple[int, str | None]:
        w = self.w
        explicit = w[j] == 'AS'
        at = j + 1 if explicit else j
        if w[at] in _NEVER_ALIAS:
            raise self.unreadable(at, f'{w[at]} cannot be used as an alias here')
        if self.is_name(at):
            name = self.names[at]
            self.aliases.add(name)
            return at + 1, name
        if explicit:
            raise self.unreadable(j, 'AS without an alias')
        return j, None

    def index_hint(self, j: int) -> int:
        w = self.w
        j += 2
        if w[j] == 'FOR':
            if w[j + 1] == 'JOIN':
                j += 2
            elif w[j + 1] in ('ORDER', 'GROUP') and w[j + 2] == 'BY':
                j += 3
            else:
                raise self.unreadable(j, 'expected FOR JOIN, FOR ORDER BY or FOR GROUP BY')
        if self.v[j] != '(':
            raise self.unreadable(j, 'index hint without an index list')
        return self.name_list(j, index=True)

    def name_list(self, j: int, index: bool = False) -> int:
        """'(' name {, name} ')' at ``j``: column, partition or index names; the index after it."""
        close = self.match[j]
        self.role[j] = _OPAQUE
        i = j + 1
        if i == close and index:
            return close + 1
        while True:
            if not (self.is_name(i) or (index and self.w[i] == 'PRIMARY')):
                raise self.unsupported(i, 'expected a name')
            i += 1
            if i == close:
                return close + 1
            if self.v[i] != ',':
                raise self.unsupported(i, "expected ',' or ')' in a list of names")
            i += 1

    def json_table(self, i: int) -> int:
        """JSON_TABLE(expr, path COLUMNS (...)): reads no table; its columns are named by the COLUMNS list."""
        open_ = i + 1
        close = self.match[open_]
        self.role[open_] = _OPAQUE
        j = self.expr(open_ + 1)
        if j == open_ + 1 or self.v[j] != ',':
            raise self.unsupported(j, 'expected JSON_TABLE(expression, path COLUMNS (...))')
        j += 1
        if self.k[j] not in ('string', 'placeholder'):
            raise self.unsupported(j, 'expected the JSON path as a string')
        j += 1
        if self.w[j] != 'COLUMNS' or self.v[j + 1] != '(':
            raise self.unsupported(j, 'expected COLUMNS (...)')
        j = self.json_columns(j + 1)
        if j != close:
            raise self.unsupported(j, "expected ')' after the COLUMNS list")
        return close + 1

    def json_columns(self, j: int) -> int:
        w, k = self.w, self.k
        close = self.match[j]
        self.role[j] = _OPAQUE
        i = j + 1
        while True:
            if w[i] == 'NESTED':
                i += 1
                if w[i] == 'PATH':
                    i += 1
                if k[i] not in ('string', 'placeholder') or w[i + 1] != 'COLUMNS' or self.v[i + 2] != '(':
                    raise self.unsupported(i, 'expected NESTED PATH path COLUMNS (...)')
                i = self.json_columns(i + 2)
            else:
                if not self.is_name(i):
                    raise self.unsupported(i, 'expected a JSON_TABLE column name')
                i += 1
                if w[i] == 'FOR' and w[i + 1] == 'ORDINALITY':
                    i += 2
                else:
                    i = self.type_spec(i)
                    if w[i] == 'EXISTS':
                        i += 1
                    if w[i] != 'PATH' or k[i + 1] not in ('string', 'placeholder'):
                        raise self.unsupported(i, 'expected PATH and a path string')
                    i = self.on_empty_error(i + 2)
            if i == close:
                return close + 1
            if self.v[i] != ',':
                raise self.unsupported(i, "expected ',' or ')' in the COLUMNS list")
            i += 1

    def on_empty_error(self, i: int) -> int:
        """[{NULL | ERROR | DEFAULT literal} ON EMPTY] [{NULL | ERROR | DEFAULT literal} ON ERROR]."""
        w = self.w
        for _ in range(2):
            if w[i] in ('NULL', 'ERROR'):
                j = i + 1
            elif w[i] == 'DEFAULT' and self.k[i + 1] in ('string', 'number', 'placeholder'):
                j = i + 2
            else:
                return i
            if w[j] != 'ON' or w[j + 1] not in ('EMPTY', 'ERROR'):
                raise self.unsupported(j, 'expected ON EMPTY or ON ERROR')
            i = j + 2
        return i

    # -- expressions ------------------------------------------------------------------------------
    def condition(self, i: int) -> int:
        j = self.expr(i)
        if j == i:
            raise self.unsupported(i, 'expected an expression')
        return j

    def expr_list(self, j: int, extras: frozenset[str] = _NONE, stops: frozenset[str] = _NONE) -> int:
        while True:
            start = j
            j = self.expr(j, extras, stops)
            if j == start:
                raise self.unsupported(j, 'expected an expression')
            if self.v[j] != ',':
                return j
            j += 1

    def expr(self, i: int, extras: frozenset[str] = _NONE, stops: frozenset[str] = _NONE) -> int:
        """An expression from ``i``, read loosely (operators are not parsed) but with every word
        classified: keyword, function call, qualified name or column. Returns at the first token it
        cannot place: ',', ')', a reserved word, the end."""
        k, v, w, names = self.k, self.v, self.w, self.names
        while True:
            kind = k[i]
            if kind == 'word':
                up = w[i]
                if up in stops:
                    return i
                if up in extras:
                    i += 1
                    continue
                if v[i + 1] == '(':
                    if up in _EXPR_KEYWORDS and up not in _CALLABLE and (
                            up in _RESERVED or (up in ('ANY', 'SOME') and self.starts_query(i + 2))):
                        i += 1  # IN (...), EXISTS (...), NOT (...), = ANY (SELECT ...): the group comes next
                        continue
                    if up in _CALLABLE or up not in _RESERVED:
                        i = self.call(i)  # END(...), ESCAPE(...) would call a stored function: refused there
                        continue
                    return i
                if up in _EXPR_KEYWORDS:
                    i = self.name_after(i + 1) if up == 'COLLATE' else i + 1
                    continue
                name = names[i]
                if name in NILADIC_FUNCTIONS:
                    self.check_function(i, name)
                    i += 1
                    continue
                if up in _DATE_UNITS and (up in _RESERVED or self.after_value(i)):
                    i += 1
                    continue
                if up in _RESERVED:
                    return i
                if v[i + 1] == '.':
                    i = self.qualified(i)
                    continue
                if up in ('NEXT', 'PREVIOUS') and w[i + 1] == 'VALUE' and w[i + 2] == 'FOR':
                    raise _Refused('function_not_allowed', f'{up} VALUE FOR (sequences) is not allowed')
                if up in _TYPED_LITERALS and k[i + 1] in ('string', 'placeholder'):  # DATE '2005-05-25', DATE %s
                    i += 2
                    continue
                self.cols[i] = 1
                i += 1
            elif kind == 'qword':
                if v[i + 1] == '(':
                    i = self.call(i)
                elif v[i + 1] == '.':
                    i = self.qualified(i)
                else:
                    self.cols[i] = 1
                    i += 1
            elif kind == 'punct':
                if v[i] != '(':
                    return i
                i = self.group(i)
            elif kind:
                i += 1  # string, number, placeholder, operator
            else:
                return i

    def name_after(self, i: int) -> int:
        """A collation or character set name."""
        if self.k[i] not in ('word', 'qword', 'string'):
            raise self.unsupported(i, 'expected a character set or collation name')
        return i + 1

    def group(self, i: int) -> int:
        """'(' at ``i``: a subquery, or a parenthesised expression or list."""
        close = self.match[i]
        j = i + 1
        if self.starts_query(j):
            self.role[i] = _SUBQUERY
            j = self.query_expression(j)
        else:
            self.role[i] = _LIST if i and self.w[i - 1] in _LIST_KEYWORDS else _GROUP
            if j == close:
                raise self.unsupported(j, 'empty parentheses')
            j = self.expr_list(j)
        if j != close:
            raise self.unsupported(j, "expected ')'")
        return close + 1

    def qualified(self, i: int) -> int:
        """x.y, x.y.z (columns) or schema.function(...) at ``i``."""
        v, k = self.v, self.k
        parts = [i]
        j = i
        while v[j + 1] == '.':
            if k[j + 2] in ('word', 'qword'):
                parts.append(j + 2)
                j += 2
            elif v[j + 2] == '*':
                raise self.unsupported(j + 2, "'.*' is only allowed as a select item")
            else:
                raise self.unsupported(j + 1, "a '.' must be followed by a name")
        if len(parts) > 3:
            raise self.unsupported(i, 'too many name parts')
        j += 1
        if v[j] == '(':
            return self.qualified_call(parts, j)
        self.quals.append(tuple(parts[:-1]))
        self.cols[parts[-1]] = 1
        return j

    def qualified_call(self, parts: list[int], open_: int) -> int:
        if len(parts) != 2:
            raise self.unsupported(parts[0], 'cannot read this function name')
        schema, name = self.names[parts[0]], self.names[parts[1]]
        if schema in SYSTEM_SCHEMAS:
            raise _Refused('system_schema', f'the system schema {schema} is not accessible')
        if schema != self.policy.database:
            raise _Refused('schema_not_allowed',
                           f'only the {self.policy.database} database is accessible, not {schema}')
        allowed = self.policy.allowed_functions
        if name not in allowed and f'{schema}.{name}' not in allowed:
            raise _Refused('function_not_allowed', f'the stored function {schema}.{name} is not allowed')
        return self.arguments(open_)

    def arguments(self, open_: int) -> int:
        close = self.match[open_]
        self.role[open_] = _OPAQUE
        if open_ + 1 != close and self.expr_list(open_ + 1) != close:
            raise self.unsupported(open_ + 1, 'cannot read the arguments of this function')
        return close + 1

    def check_function(self, i: int, name: str) -> None:
        if not function_allowed(name, self.policy.allowed_functions):
            if function_denied(name):
                raise _Refused('function_not_allowed', f'the function {name.upper()} is not allowed')
            raise _Refused('function_not_allowed', f'the function {name.upper()} is not allowed (only built-in '
                                                   'functions are; stored functions must be allowed by the policy)')

    def call(self, i: int) -> int:
        """A function call at ``i`` (a name followed by '('), its arguments, WITHIN GROUP and OVER."""
        name = self.names[i]
        if self.k[i] == 'qword':  # a quoted name followed by '(' is a stored function call
            if name not in self.policy.allowed_functions:
                raise _Refused('function_not_allowed', f'the function `{name}` is not allowed')
            special = None
        else:
            self.check_function(i, name)
            special = _SPECIAL_ARGUMENTS.get(name)
        open_ = i + 1
        close = self.match[open_]
        if name in _GENERATORS:
            self.check_generator(name, open_, close)
        self.role[open_] = _OPAQUE
        j = open_ + 1
        if j != close:
            j = self.expr_list(j) if special is None else special(self, j)
        if j != close:
            raise self.unsupported(j, f'cannot read the arguments of {name.upper()}()')
        w, v = self.w, self.v
        j = close + 1
        if name == 'match':
            if w[j] != 'AGAINST' or v[j + 1] != '(':
                raise self.unsupported(j, 'expected AGAINST (...) after MATCH (...)')
            j = self.parenthesised(j + 1, _AGAINST_WORDS)
        if w[j] == 'WITHIN' and w[j + 1] == 'GROUP' and v[j + 2] == '(':
            j = self.parenthesised(j + 2, _WINDOW_WORDS)
        if w[j] == 'OVER':
            if v[j + 1] == '(':
                j = self.parenthesised(j + 1, _WINDOW_WORDS)
            elif self.is_name(j + 1):
                j += 2
            else:
                raise self.unsupported(j + 1, 'expected a window name or (...) after OVER')
        return j

    def check_generator(self, name: str, open_: int, close: int) -> None:
        """REPEAT, SPACE, LPAD and RPAD make a long string from a short statement, and string searches
        over long strings run for long stretches that the server's statement timer cannot interrupt:
        their length argument must be a number written in the statement, at most GENERATOR_LIMIT."""
        position = _GENERATORS[name]
        args, depth, start = [], 0, open_ + 1
        for j in range(open_ + 1, close):
            if self.v[j] == '(' and self.k[j] == 'punct':
                depth += 1
            elif self.v[j] == ')' and self.k[j] == 'punct':
                depth -= 1
            elif self.v[j] == ',' and depth == 0:
                args.append((start, j))
                start = j + 1
        args.append((start, close))
        if len(args) <= position:
            return  # the server refuses the call
        first, stop = args[position]
        if not (stop == first + 1 and self.k[first] == 'number' and self.v[first].isdigit()
                and int(self.v[first]) <= GENERATOR_LIMIT):
            raise _Refused('function_not_allowed', f'the length given to {name.upper()}() must be a whole number '
                                                   f'written in the statement, at most {GENERATOR_LIMIT}')

    def parenthesised(self, j: int, extras: frozenset[str]) -> int:
        """'(' list ')' at ``j`` with the keywords ``extras`` (a window, AGAINST's modifiers)."""
        close = self.match[j]
        self.role[j] = _OPAQUE
        if j + 1 != close and self.expr_list(j + 1, extras) != close:
            raise self.unsupported(j + 1, "expected ')'")
        return close + 1

    def window_definitions(self, i: int) -> int:
        while True:
            if not self.is_name(i) or self.w[i + 1] != 'AS' or self.v[i + 2] != '(':
                raise self.unsupported(i, 'expected WINDOW name AS (...)')
            i = self.parenthesised(i + 2, _WINDOW_WORDS)
            if self.v[i] != ',':
                return i
            i += 1

    def type_spec(self, j: int) -> int:
        """A data type: CHAR(10), DECIMAL(10, 2), UNSIGNED INTEGER, CHAR CHARACTER SET utf8mb4, JSON..."""
        w, v = self.w, self.v
        if w[j] not in _TYPE_WORDS:
            raise self.unsupported(j, 'expected a data type')
        while w[j] in _TYPE_WORDS and not (w[j] == 'CHARACTER' and w[j + 1] == 'SET'):
            j += 1
            if v[j] == '(':
                close = self.match[j]
                self.role[j] = _OPAQUE
                for x in range(j + 1, close):
                    if self.k[x] != 'number' and v[x] != ',':
                        raise self.unsupported(x, 'expected the length or precision of the type')
                j = close + 1
        while True:
            if w[j] == 'CHARACTER' and w[j + 1] == 'SET':
                j = self.name_after(j + 2)
            elif w[j] in ('CHARSET', 'COLLATE'):
                j = self.name_after(j + 1)
            else:
                return j

    # Functions whose parentheses hold more than a list of expressions.
    def _cast(self, j: int) -> int:
        j = self.expr(j, stops=_AS)
        if self.w[j] != 'AS':
            raise self.unsupported(j, 'expected CAST(expression AS type)')
        return self.type_spec(j + 1)

    def _convert(self, j: int) -> int:
        j = self.expr(j)
        if self.w[j] == 'USING':
            return self.name_after(j + 1)
        if self.v[j] == ',':
            return self.type_spec(j + 1)
        return j

    def _char(self, j: int) -> int:
        j = self.expr_list(j)
        return self.name_after(j + 1) if self.w[j] == 'USING' else j

    def _unit_first(self, j: int) -> int:
        """EXTRACT(unit FROM x), TIMESTAMPADD(unit, n, x), TIMESTAMPDIFF(unit, a, b)."""
        if self.w[j] in _DATE_UNITS:
            j += 1
            if self.w[j] == 'FROM' or self.v[j] == ',':
                return self.expr_list(j + 1)
        raise self.unsupported(j, 'expected a date unit, then FROM or a comma')

    def _trim(self, j: int) -> int:
        return self.expr_list(j, _TRIM_WORDS)

    def _substring(self, j: int) -> int:
        return self.expr_list(j, _SUBSTRING_WORDS)

    def _group_concat(self, j: int) -> int:
        return self.expr_list(j, _GROUP_CONCAT_WORDS)

    def _json_value(self, j: int) -> int:
        j = self.expr(j)
        if self.v[j] != ',':
            raise self.unsupported(j, 'expected JSON_VALUE(document, path ...)')
        j = self.expr(j + 1, stops=frozenset({'RETURNING', 'NULL', 'ERROR', 'DEFAULT'}))
        if self.w[j] == 'RETURNING':
            j = self.type_spec(j + 1)
        return self.on_empty_error(j)

    def _weight_string(self, j: int) -> int:
        j = self.expr(j, stops=_AS)
        return self.type_spec(j + 1) if self.w[j] == 'AS' else j


_SPECIAL_ARGUMENTS = {
    'cast': _Parser._cast,
    'convert': _Parser._convert,
    'char': _Parser._char,
    'extract': _Parser._unit_first,
    'timestampadd': _Parser._unit_first,
    'timestampdiff': _Parser._unit_first,
    'trim': _Parser._trim,
    'substring': _Parser._substring,
    'substr': _Parser._substring,
    'mid': _Parser._substring,
    'group_concat': _Parser._group_concat,
    'json_arrayagg': _Parser._group_concat,  # MariaDB: JSON_ARRAYAGG(x ORDER BY y LIMIT n)
    'json_objectagg': _Parser._group_concat,
    'json_value': _Parser._json_value,
    'weight_string': _Parser._weight_string,
}


# -- checks over what the parser collected ------------------------------------------------------------
def _prepass(parser: _Parser, verb: str, policy: Policy) -> None:
    """INTO, OUTFILE, PROCEDURE and hidden columns: refused by name wherever they appear."""
    w, v, k, names = parser.w, parser.v, parser.k, parser.names
    for word in ('OUTFILE', 'DUMPFILE'):
        if word in w:
            raise _Refused('into_file', f'INTO {word} is not allowed: the service never writes files')
    if 'INTO' in w:
        into_at = -1
        if verb in ('INSERT', 'REPLACE') and w[0] == verb:
            j = 1
            while w[j] in _INSERT_MODIFIERS:
                j += 1
            if w[j] == 'INTO':
                into_at = j
        if w.count('INTO') > (1 if into_at >= 0 else 0):
            raise _Refused('into_not_allowed', 'INTO is only allowed as the target of an INSERT')
    if 'PROCEDURE' in w:
        raise _Refused('procedure_not_allowed', 'PROCEDURE clauses are not allowed')
    hidden, _tables = _hidden(policy)
    if not hidden:
        return
    if hidden.keys().isdisjoint(names):
        return
    for i, kind in enumerate(k):
        if (kind == 'word' or kind == 'qword') and names[i] in hidden and v[i + 1] != '(':
            raise _Refused('column_not_allowed', f'the column {hidden[names[i]]} is not accessible')


def _check_tables(parser: _Parser, policy: Policy) -> None:
    for schema, table, _index, mode in parser.refs:
        if schema is not None:
            if schema in SYSTEM_SCHEMAS:
                raise _Refused('system_schema', f'the system schema {schema} is not accessible')
            if schema != policy.database:
                raise _Refused('schema_not_allowed', f'only the {policy.database} database is accessible, not {schema}')
        if mode == 'write':
            if table not in policy.write_tables:
                if table in policy.read_tables:
                    raise _Refused('table_not_writable', f'the table {table} can be read but not written')
                raise _Refused('table_not_allowed', f'the table {table} is not allowed')
        elif table not in policy.read_tables:
            raise _Refused('table_not_allowed', f'the table {table} is not allowed')


def _check_qualifiers(parser: _Parser, policy: Policy) -> None:
    names = parser.names
    tables = policy.read_tables | policy.write_tables
    valid = tables | parser.aliases
    for parts in parser.quals:
        qualifier = names[parts[0]]
        if qualifier in SYSTEM_SCHEMAS:
            raise _Refused('system_schema', f'the system schema {qualifier} is not accessible')
        if len(parts) == 2 or qualifier == policy.database:
            if qualifier != policy.database:
                raise _Refused('schema_not_allowed', f'only the {policy.database} database is accessible, not '
                                                     f'{qualifier}')
            table = names[parts[1]] if len(parts) == 2 else names[parts[0] + 2]
            if table not in tables:
                raise _Refused('table_not_allowed', f'the table {table} is not allowed')
        elif qualifier not in valid:
            raise _Refused('unknown_qualifier', f'{qualifier} is neither an allowed table nor an alias of this query')
    for index in parser.locked:
        if names[index] not in valid:
            raise _Refused('unknown_qualifier',
                           f'{names[index]} is neither an allowed table nor an alias of this query')


def _check_stars(parser: _Parser, policy: Policy) -> None:
    _names, hidden_tables = _hidden(policy)
    if not hidden_tables:
        return
    for block in parser.blocks:
        if block.star < 0:
            continue
        for exposed, table, ref in block.bindings:
            covered = block.bare_star or exposed in block.star_tables or not (block.bare_star or block.star_tables)
            if ref >= 0 and table in hidden_tables and covered:
                raise _Refused('column_not_allowed', f'{table} has hidden columns; name the columns you need')


def _tautological(what: str) -> _Refused:
    return _Refused('tautological_where', f'the WHERE clause, or one of its OR/XOR branches, {what}; '
                                          'name the rows to change')


def _check_where(parser: _Parser, start: int, end: int) -> None:
    """Refuse a WHERE, or any OR/||/XOR branch of it at any parenthesis level, that cannot tell one row
    from another: every AND-ed part of it names no column or compares a column with itself (``x = x``,
    ``(x) = (x)``, ``t.x = x``, ``x IN (x, 1)``, ``x BETWEEN x AND x``). Subqueries and function arguments
    are opaque; a column anywhere inside them counts. Conditions true only because of the data
    (``x > 0``) are the row cap's to stop."""
    k, v, w, cols, role, match = parser.k, parser.v, parser.w, parser.cols, parser.role, parser.match
    counts = list(accumulate(cols[:parser.n + 1], initial=0))  # counts[x]: columns in tokens [0, x)
    stack: list[list[int]] = []
    frame = [start, 0, 0]  # [branch start, branch names a column, group names a column]

    def end_branch(frame: list[int], stop: int) -> None:
        if not frame[1]:
            raise _tautological('names no column, so it cannot tell one row from another')
        if all(counts[b] == counts[a] or _self_comparison(parser, a, b)
               for a, b in _conjuncts(parser, frame[0], stop)):
            raise _tautological('compares a column with itself, which holds for every row')

    i = start
    while i < end:
        kind = k[i]
        if kind == 'punct' and v[i] == '(':
            if role[i] == _GROUP:
                stack.append(frame)
                frame = [i + 1, 0, 0]
                i += 1
                continue
            close = match[i]
            if counts[close] - counts[i]:
                frame[1] = frame[2] = 1
            i = close + 1
            continue
        if kind == 'punct' and v[i] == ')':
            end_branch(frame, i)
            named = frame[2]
            frame = stack.pop()
            if named:
                frame[1] = frame[2] = 1
        elif (kind == 'word' and w[i] in ('OR', 'XOR')) or (kind == 'op' and v[i] == '||'):
            end_branch(frame, i)
            frame[0], frame[1] = i + 1, 0
        elif cols[i]:
            frame[1] = frame[2] = 1
        i += 1
    end_branch(frame, end)


def _conjuncts(parser: _Parser, start: int, stop: int) -> list[tuple[int, int]]:
    """The AND-ed parts of tokens [start, stop) at their own parenthesis level (the AND of a BETWEEN
    belongs to it; parentheses are stepped over whole)."""
    k, v, w, match = parser.k, parser.v, parser.w, parser.match
    parts = []
    begin, between, i = start, False, start
    while i < stop:
        if k[i] == 'punct' and v[i] == '(' and match[i] > i:
            i = match[i] + 1
            continue
        if k[i] == 'word' and w[i] == 'BETWEEN':
            between = True
        elif (k[i] == 'word' and w[i] == 'AND') or (k[i] == 'op' and v[i] == '&&'):
            if between:
                between = False
            else:
                parts.append((begin, i))
                begin = i + 1
        i += 1
    parts.append((begin, stop))
    return [(a, b) for a, b in parts if a < b]


class _ColumnRef(tuple):
    """A column reference's name parts. ``t.x`` equals ``x`` (an unqualified name that another table of the
    statement also has is ambiguous, which the server refuses), but not ``u.x``."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _ColumnRef):
            return False
        if len(self) > 1 and len(other) > 1:
            return tuple(self) == tuple(other)
        return self[-1] == other[-1]

    def __hash__(self) -> int:
        return hash(self[-1])


def _column_refs(parser: _Parser, start: int, stop: int) -> list[object]:
    """Tokens [start, stop) without parentheses, each column reference a[.b[.c]] as a ``_ColumnRef``,
    other tokens as (kind, value)."""
    k, v, names = parser.k, parser.v, parser.names
    out: list[object] = []
    i = start
    while i < stop:
        if v[i] in ('(', ')') and k[i] == 'punct':
            i += 1
            continue
        end = _column_end(parser, i, stop)
        if end > 0:
            out.append(_ColumnRef(names[j] for j in range(i, end, 2)))
            i = end
            continue
        out.append((k[i], v[i].upper()))
        i += 1
    return out


def _column_end(parser: _Parser, i: int, stop: int) -> int:
    """The end of the column reference a[.b[.c]] at ``i``, or -1."""
    if i >= stop or parser.k[i] not in ('word', 'qword'):
        return -1
    j = i + 1
    while j + 1 < stop and parser.v[j] == '.' and parser.k[j + 1] in ('word', 'qword'):
        j += 2
    return j if parser.cols[j - 1] else -1


def _self_comparison(parser: _Parser, start: int, stop: int) -> bool:
    """Whether tokens [start, stop) compare one column with itself: ``x OP x`` (OP one of = <=> >= <= LIKE),
    ``x IN (..., x, ...)`` or ``x BETWEEN x AND x``, parentheses and qualifiers aside."""
    seq = _column_refs(parser, start, stop)
    if len(seq) < 3 or not isinstance(seq[0], _ColumnRef):
        return False
    column, op = seq[0], seq[1]
    if len(seq) == 3 and (op[0] == 'op' and op[1] in _COMPARISONS or op == ('word', 'LIKE')):
        return seq[2] == column
    if op == ('word', 'IN'):
        elements = seq[2:]
        return column in elements[::2] and all(sep == ('punct', ',') for sep in elements[1::2])
    if op == ('word', 'BETWEEN') and len(seq) == 5:
        return seq[2] == column and seq[3] == ('word', 'AND') and seq[4] == column
    return False


def _check_statement(lexed: Lexed, verb: str, policy: Policy) -> _Parser:
    parser = _Parser(lexed, policy)
    _prepass(parser, verb, policy)
    parser.statement(verb)
    _check_tables(parser, policy)
    _check_qualifiers(parser, policy)
    _check_stars(parser, policy)
    if verb in ('UPDATE', 'DELETE'):
        if parser.where is None:
            raise _Refused('missing_where', f'{verb} needs a WHERE clause')
        _check_where(parser, *parser.where)
    return parser


def _analyze(sql: str, policy: Policy) -> _Analysis | Rejection:
    try:
        lexed = lex(sql)
    except LexError as exc:
        return Rejection(exc.code, exc.message, exc.status)
    verb = verb_of(lexed.kinds, lexed.values, lexed.words, lexed.depths)
    if verb not in policy.allowed_statements:
        allowed = ', '.join(sorted(policy.allowed_statements))
        if not verb:
            return Rejection('statement_not_allowed', f'the query must start with one of {allowed}')
        return Rejection('statement_not_allowed', f'{verb} statements are not allowed (allowed: {allowed})')
    try:
        parser = _check_statement(lexed, verb, policy)
    except _Refused as refused:
        return refused.rejection
    except RecursionError:
        return Rejection('too_deeply_nested', 'the statement nests too deeply to be read', 400)
    text = sql
    appended = False
    if verb == 'SELECT' and not parser.top_limit:
        # After 'OFFSET n ROWS' the server takes a FETCH clause, not a LIMIT.
        cap = (f'FETCH FIRST {policy.select_limit_cap} ROWS ONLY' if parser.top_offset
               else f'LIMIT {policy.select_limit_cap}')
        lock = parser.top_lock
        if lock >= 0:
            at = lexed.starts[lock]
            text = f'{sql[:at].rstrip()} {cap} {sql[at:]}'
        else:
            end = lexed.scan.code_end
            text = f'{sql[:end]} {cap}{sql[end:]}'
        appended = True
    kind = classify_lexed(lexed)
    return _Analysis(text, verb, lexed.scan.placeholders, lexed.scan.format_problem, appended, kind)


_analyze_cached = lru_cache(maxsize=4096)(_analyze)


def cache_entries() -> int:
    return _analyze_cached.cache_info().currsize


def analyze(sql: str, policy: Policy) -> _Analysis | Rejection:
    """The parameter-independent part of validation (cached by policy and query text)."""
    if len(sql) > policy.max_query_length:
        return Rejection(
            'query_too_long', f'the query has {len(sql)} characters; the maximum is {policy.max_query_length}', 400
        )
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
    return ValidatedQuery(result.sql, tuple(params), result.statement, result.limit_appended, result.kind)

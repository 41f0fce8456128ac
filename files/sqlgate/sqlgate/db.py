# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""Blocking PyMySQL calls, run in worker threads by the pool; and what each database error means.

Each new connection is set up once: autocommit on, LOCAL INFILE and multi-statements off, the
server flavour detected (MariaDB: ``max_statement_time`` in seconds; MySQL: ``max_execution_time``
in milliseconds, which MySQL applies to SELECT only) and the session sql_mode cleared of
ANSI_QUOTES and NO_BACKSLASH_ESCAPES, so that the server reads quotes exactly as the trusted
host's validator did.
"""

from __future__ import annotations

import contextlib
import socket
import time
from dataclasses import dataclass

import pymysql
import pymysql.cursors

from .config import DatabaseConfig, NodeConfig
from .convert import JsonValue, convert_rows

# Server errors after which the session is gone (shutdown, killed, packet too large, ...).
_SESSION_FATAL = frozenset({1040, 1053, 1077, 1152, 1153, 1154, 1155, 1156, 1157, 1158, 1159, 1160, 1161,
                            1184, 1927, 4031})
# Errors that say the credentials or the database are wrong, or that the node refuses queries (1047: a
# Galera node that is not synced, has lost quorum, or is in maintenance): the node cannot serve us.
_NODE_REFUSED = frozenset({1044, 1045, 1047, 1049, 1129, 1130, 1203, 1226})
_STATEMENT_TIMEOUT = frozenset({1969, 3024})
_DENIED = frozenset({1142, 1143, 1227, 1370})
_MODES_REMOVED = frozenset({'ANSI', 'ANSI_QUOTES', 'NO_BACKSLASH_ESCAPES'})


@dataclass(frozen=True)
class ReadResult:
    columns: list[str]
    rows: list[list[JsonValue]]


@dataclass(frozen=True)
class WriteResult:
    affected_rows: int
    last_insert_id: int | None


class NodeFailure(Exception):
    """The node did not answer properly (connection refused, lost, timed out): try elsewhere."""

    def __init__(self, message: str, timeout: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.timeout = timeout


class StatementFailure(Exception):
    """The node answered with an error about this statement; the session may still be usable."""

    def __init__(self, status: int, code: str, message: str, keep_connection: bool = True) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.keep_connection = keep_connection


def connect(node: NodeConfig, db: DatabaseConfig, timeout: float | None = None) -> pymysql.connections.Connection:
    """A ready connection; ``timeout`` overrides the socket timeouts (the probe uses its own)."""
    try:
        conn = pymysql.connect(
            host=node.host,
            port=node.port,
            user=db.user,
            password=db.password.decode('utf-8'),
            database=db.name,
            charset=db.charset,
            autocommit=True,
            local_infile=False,
            client_flag=0,
            connect_timeout=timeout or db.connect_timeout,
            read_timeout=timeout or db.read_timeout,
            write_timeout=timeout or db.write_timeout,
        )
    except Exception as exc:  # noqa: BLE001 - classified below
        raise translate(exc, db) from None
    try:
        _init_session(conn, db.statement_timeout)
    except Exception as exc:  # noqa: BLE001
        close_quietly(conn)
        raise translate(exc, db) from None
    return conn


def session_settings(version: str, sql_mode: str, statement_timeout: float) -> tuple[str, str]:
    """The SET clause for the statement timeout of this flavour, and the sql_mode to pin."""
    if 'mariadb' in version.lower():
        timeout = f'max_statement_time = {statement_timeout:.3f}'
    else:
        timeout = f'max_execution_time = {max(1, round(statement_timeout * 1000))}'
    modes = [mode for mode in sql_mode.split(',') if mode and mode.upper() not in _MODES_REMOVED]
    return timeout, ','.join(modes)


def _init_session(conn: pymysql.connections.Connection, statement_timeout: float) -> None:
    with conn.cursor() as cursor:
        cursor.execute('SELECT VERSION(), @@SESSION.sql_mode')
        version, sql_mode = cursor.fetchone()
        timeout, modes = session_settings(str(version), str(sql_mode or ''), statement_timeout)
        cursor.execute(f'SET SESSION {timeout}, sql_mode = %s', (modes,))


def close_quietly(conn: pymysql.connections.Connection | None) -> None:
    if conn is None:
        return
    try:
        conn.close()
    except Exception:  # noqa: BLE001 - closing a broken connection may fail; it is gone either way
        with contextlib.suppress(Exception):
            conn._force_close()


def translate(exc: BaseException, db: DatabaseConfig) -> Exception:
    """NodeFailure or StatementFailure for a database error; other exceptions unchanged."""
    if isinstance(exc, (NodeFailure, StatementFailure)):
        return exc
    if isinstance(exc, pymysql.err.MySQLError):
        errno = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
        message = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
        if errno == 0 or 2000 <= errno < 3000 or errno in _SESSION_FATAL or errno in _NODE_REFUSED:
            return NodeFailure(f'MySQL error {errno}: {message}', timeout='timed out' in message)
        if errno in _STATEMENT_TIMEOUT:
            return StatementFailure(
                504, 'statement_timeout', f'the statement ran longer than {db.statement_timeout:g} s and was stopped'
            )
        if errno == 1205:
            return StatementFailure(504, 'lock_wait_timeout', 'the statement waited too long for a row lock')
        if errno == 1213:
            return StatementFailure(503, 'write_conflict', 'the statement conflicted with another write; retry it')
        if errno in _DENIED:
            return StatementFailure(403, 'database_denied', f'the database refused the statement: {message}')
        if isinstance(exc, pymysql.err.IntegrityError):
            return StatementFailure(400, 'constraint_violation', f'MySQL error {errno}: {message}')
        return StatementFailure(400, 'sql_error', f'MySQL error {errno}: {message}')
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return NodeFailure(f'timed out: {exc}', timeout=True)
    if isinstance(exc, OSError):
        return NodeFailure(f'connection error: {exc}')
    return exc if isinstance(exc, Exception) else RuntimeError(str(exc))


def execute(
    conn: pymysql.connections.Connection, sql: str, params: tuple[object, ...], max_rows: int, db: DatabaseConfig
) -> ReadResult | WriteResult:
    """Run one statement. Values are bound by PyMySQL; without params the text is sent as is."""
    cursor = conn.cursor(pymysql.cursors.SSCursor)
    try:
        text = cursor.mogrify(sql, params) if params else sql
    except (TypeError, ValueError, pymysql.err.ProgrammingError) as exc:
        cursor.close()
        raise StatementFailure(400, 'invalid_placeholders', f'the params do not fit the placeholders: {exc}') from None
    try:
        cursor.execute(text)
    except Exception as exc:  # noqa: BLE001
        failure = translate(exc, db)
        if not isinstance(failure, StatementFailure):
            raise failure from None
        try:
            cursor.close()
        except Exception:  # noqa: BLE001
            failure.keep_connection = False
        raise failure from None
    if cursor.description is None:
        result = WriteResult(cursor.rowcount, cursor.lastrowid or None)
        cursor.close()
        return result
    columns = [str(column[0]) for column in cursor.description]
    try:
        rows = cursor.fetchmany(max_rows + 1)
    except Exception as exc:  # noqa: BLE001 - an error in the middle of a result: the session is unknown
        _abandon(cursor, conn)
        failure = translate(exc, db)
        if isinstance(failure, StatementFailure):
            failure.keep_connection = False
        raise failure from None
    if len(rows) > max_rows:
        # Reading the rest would cost as much as the rows we refuse: drop the connection instead.
        _abandon(cursor, conn)
        raise StatementFailure(
            400, 'result_too_large', f'the result has more than {max_rows} rows; add a LIMIT', keep_connection=False
        )
    cursor.close()
    return ReadResult(columns, convert_rows(rows))


def _abandon(cursor: pymysql.cursors.SSCursor, conn: pymysql.connections.Connection) -> None:
    """Close a connection in the middle of an unbuffered result without reading the rest of it."""
    result = getattr(cursor, '_result', None)
    if result is not None:
        result.unbuffered_active = False
    cursor._result = None
    close_quietly(conn)


def probe(conn: pymysql.connections.Connection, query: str = 'SELECT 1') -> float:
    """Seconds for a round trip of the probe query (it should read a table: a Galera node that is not ready
    still answers ``SELECT 1``, and an NDB SQL node cut off from its data nodes too)."""
    started = time.perf_counter()
    with conn.cursor() as cursor:
        cursor.execute(query)
        cursor.fetchall()
    return time.perf_counter() - started

# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""The proxy's statements, run on the event loop over ``wire``; the log-in and the session set-up, run
in a thread with PyMySQL; and what each database error means.

Each connection belongs to one database user (a scope's read or write user, or the probe user) and
is set up once: autocommit on, LOCAL INFILE and multi-statements off, the server flavour detected
(MariaDB: ``max_statement_time`` in seconds, which covers every statement; MySQL: ``max_execution_time``
in milliseconds, SELECT only, so writes get a watchdog that issues ``KILL QUERY``), and the session
sql_mode cleared of every mode that changes how quotes, ``||`` or function names are read, so that
the server reads the text exactly as the trusted host's validator did. Write connections set
CLIENT_FOUND_ROWS, so an UPDATE reports the rows it matched, not only those it changed.

Every write runs in a transaction: when it matched more rows than the scope's cap it is rolled back.
Results are bounded while they stream from the server: by rows, by bytes, and no packet (one row) may
exceed the byte cap, so a huge row is refused before it is held in memory.

Nothing the server says reaches a client: each error becomes a code and a sentence of our own; the
server's text goes to the log through ``detail``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pymysql
from pymysql.constants import CLIENT

from . import wire
from .config import Credentials, DatabaseConfig, NodeConfig
from .convert import JsonValue, convert_rows

# Server errors after which the session is gone (shutdown, killed, packet too large, ...).
_SESSION_FATAL = frozenset({1040, 1053, 1077, 1152, 1153, 1154, 1155, 1156, 1157, 1158, 1159, 1160, 1161,
                            1184, 1927, 4031})
# The node refuses queries (1047: a Galera node that is not synced, has lost quorum, or is in maintenance),
# or the database is missing: the node cannot serve anyone.
_NODE_REFUSED = frozenset({1047, 1049, 1129, 1130, 1203})
# Our own credentials were refused: a deployment problem, not the node's health nor the caller's fault.
_LOGIN_REFUSED = frozenset({1044, 1045, 1698})
_STATEMENT_TIMEOUT = frozenset({1028, 1317, 1969, 3024})
# The scope's database user lacks a privilege: the policy, enforced by the server itself.
_DENIED = frozenset({1142, 1143, 1227, 1370, 1356})
_MODES_REMOVED = frozenset({
    'ANSI', 'ANSI_QUOTES', 'NO_BACKSLASH_ESCAPES', 'PIPES_AS_CONCAT', 'IGNORE_SPACE', 'ORACLE', 'MSSQL', 'DB2',
    'POSTGRESQL', 'MAXDB', 'EMPTY_STRING_IS_NULL', 'SIMULTANEOUS_ASSIGNMENT', 'TIME_ROUND_FRACTIONAL',
})
# GROUP_CONCAT and JSON_ARRAYAGG build strings of up to this many bytes (the server's default is 1 MiB): long
# strings are what string searches spend unbounded time on, where the statement timer cannot interrupt them.
GROUP_CONCAT_MAX_LEN = 65536
# Bytes counted per value beside its own length (JSON quotes and separators, at the least).
_VALUE_OVERHEAD = 4
LARGE_RESULT = 256 * 1024
_DENIED_TABLE = re.compile(r"for table [`']?([^`'\s]+)[`']?(?:\.[`']?([^`'\s]+)[`']?)?")
_DENIED_COLUMN = re.compile(r"for column [`']([^`']+)[`'] in table [`']([^`']+)[`']")
_UNKNOWN_COLUMN = re.compile(r"Unknown column '([A-Za-z0-9_.$]{1,130})'")
_UNKNOWN_TABLE = re.compile(r"Table '[A-Za-z0-9_$]+\.([A-Za-z0-9_$]{1,64})' doesn't exist")
_MATCHED = re.compile(rb'(?:Rows matched|Records): *(\d+)')
_CHANGED = re.compile(rb'Changed: *(\d+)')


@dataclass(frozen=True)
class ReadResult:
    columns: list[str]
    rows: list[list[JsonValue]]
    # The slot of the proxy's large-result budget this result holds (released once the answer is built).
    large: threading.BoundedSemaphore | None = None


@dataclass(frozen=True)
class WriteResult:
    affected_rows: int
    last_insert_id: int | None
    matched_rows: int


@dataclass(frozen=True)
class Limits:
    """What one statement may cost, from the caller's scope."""

    max_rows: int
    max_bytes: int
    max_affected_rows: int
    statement_timeout: float
    # Results past LARGE_RESULT bytes take one of these slots, or are refused (503): what every read holds in
    # memory at once stays bounded, whatever the number of requests.
    large_results: threading.BoundedSemaphore | None = None


class NodeFailure(Exception):
    """The node did not answer properly (connection refused, lost, timed out): try elsewhere."""

    def __init__(self, message: str, timeout: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.timeout = timeout


class StatementFailure(Exception):
    """The node answered with an error about this statement; the session may still be usable.

    ``message`` is ours and may reach the client; ``detail`` (the server's words) goes to the log only.
    """

    def __init__(self, status: int, code: str, message: str, keep_connection: bool = True, detail: str = '') -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.keep_connection = keep_connection
        self.detail = detail


class Connection(pymysql.connections.Connection):
    """A PyMySQL connection that refuses any packet from the server larger than ``max_packet`` bytes.

    One row is one packet: without this, a row of a few hundred megabytes (``SELECT REPEAT('x', ...)``
    many times) would be read whole into memory before any result cap could look at it.
    """

    max_packet = 16 * 1024 * 1024

    def _read_bytes(self, num_bytes: int) -> bytes:
        if num_bytes > self.max_packet:
            self._force_close()
            raise wire.PacketTooLarge(0, f'the server sent a packet of {num_bytes} bytes')
        return super()._read_bytes(num_bytes)


def connect(
    node: NodeConfig,
    db: DatabaseConfig,
    credentials: Credentials,
    *,
    timeout: float | None = None,
    write: bool = False,
    statement_timeout: float | None = None,
    max_packet: int | None = None,
    safe_updates: bool = False,
) -> Connection:
    """A ready connection as ``credentials``; ``timeout`` overrides the socket timeouts (the probe's)."""
    try:
        conn = Connection(
            host=node.host,
            port=node.port,
            user=credentials.user,
            password=credentials.password.decode('utf-8'),
            database=db.name,
            charset=db.charset,
            autocommit=True,
            local_infile=False,
            client_flag=CLIENT.FOUND_ROWS if write else 0,
            connect_timeout=timeout or db.connect_timeout,
            read_timeout=timeout or db.read_timeout,
            write_timeout=timeout or db.write_timeout,
            defer_connect=True,
        )
        if max_packet is not None:
            conn.max_packet = max_packet
        conn.connect()
    except Exception as exc:  # noqa: BLE001 - classified below
        raise translate(exc, db) from None
    try:
        conn.safe_updates = safe_updates  # type: ignore[attr-defined]
        init_session(conn, db.statement_timeout if statement_timeout is None else statement_timeout)
    except Exception as exc:  # noqa: BLE001
        close_quietly(conn)
        raise translate(exc, db) from None
    return conn


def session_settings(version: str, sql_mode: str, statement_timeout: float) -> tuple[str, str]:
    """The SET clause for the statement timeout of this flavour, and the sql_mode to pin."""
    if is_mariadb(version):
        timeout = f'max_statement_time = {statement_timeout:.3f}'
    else:
        timeout = f'max_execution_time = {max(1, round(statement_timeout * 1000))}'
    modes = [mode for mode in sql_mode.split(',') if mode and mode.upper() not in _MODES_REMOVED]
    return timeout, ','.join(modes)


def is_mariadb(version: str) -> bool:
    return 'mariadb' in version.lower()


def init_session(conn: Connection, statement_timeout: float) -> None:
    with conn.cursor() as cursor:
        cursor.execute('SELECT VERSION(), @@GLOBAL.sql_mode')
        version, sql_mode = cursor.fetchone()
        timeout, modes = session_settings(str(version), str(sql_mode or ''), statement_timeout)
        safe = int(getattr(conn, 'safe_updates', False))
        session = cursor.mogrify(f'SET NAMES {conn.charset}, SESSION {timeout}, sql_mode = %s, '
                                 f'sql_safe_updates = {safe}, group_concat_max_len = {GROUP_CONCAT_MAX_LEN}', (modes,))
        cursor.execute(session)
    conn.session_sql = session.encode(conn.encoding)  # type: ignore[attr-defined]
    conn.server_flavor = 'mariadb' if is_mariadb(str(version)) else 'mysql'  # type: ignore[attr-defined]
    conn.statement_timeout = statement_timeout  # type: ignore[attr-defined]


def close_quietly(conn: pymysql.connections.Connection | None) -> None:
    if conn is None:
        return
    try:
        conn.close()
    except Exception:  # noqa: BLE001 - closing a broken connection may fail; it is gone either way
        with contextlib.suppress(Exception):
            conn._force_close()


def _denied_message(message: str) -> str:
    column = _DENIED_COLUMN.search(message)
    if column:
        return f'the database refused access to the column {column.group(2)}.{column.group(1)} for this API key'
    table = _DENIED_TABLE.search(message)
    if table:
        name = table.group(2) or table.group(1)
        return f'the database refused access to the table {name} for this API key'
    return 'the database refused this statement for this API key'


def _sql_error_message(errno: int, message: str) -> str:
    if errno == 1064:
        return 'the database could not parse the statement (syntax error)'
    column = _UNKNOWN_COLUMN.search(message)
    if errno == 1054 and column:
        return f'unknown column {column.group(1)}'
    table = _UNKNOWN_TABLE.search(message)
    if errno == 1146 and table:
        return f'unknown table {table.group(1)}'
    return f'the database could not run the statement (error {errno})'


def translate(exc: BaseException, db: DatabaseConfig) -> Exception:
    """NodeFailure or StatementFailure for a database error; other exceptions unchanged."""
    if isinstance(exc, (NodeFailure, StatementFailure)):
        return exc
    if isinstance(exc, wire.PacketTooLarge):
        return StatementFailure(
            403, 'result_too_large', 'a row of the result is larger than this API key may read',
            keep_connection=False, detail=str(exc))
    if isinstance(exc, pymysql.err.MySQLError):
        errno = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
        message = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
        detail = f'MySQL error {errno}: {message}'
        if errno in _LOGIN_REFUSED:
            return StatementFailure(502, 'database_login_failed', 'the proxy could not log in to the database',
                                    keep_connection=False, detail=detail)
        if errno == 0 or 2000 <= errno < 3000 or errno in _SESSION_FATAL or errno in _NODE_REFUSED:
            return NodeFailure(detail, timeout='timed out' in message)
        if errno in _STATEMENT_TIMEOUT:
            return StatementFailure(
                422, 'statement_timeout',
                f'the statement ran longer than {db.statement_timeout:g} s and was stopped; make it cheaper',
                detail=detail)
        if errno == 1226:
            return StatementFailure(429, 'user_limit', 'this API key has reached its database connection limit',
                                    detail=detail)
        if errno == 1205:
            return StatementFailure(504, 'lock_wait_timeout', 'the statement waited too long for a row lock',
                                    detail=detail)
        if errno == 1213:
            return StatementFailure(503, 'write_conflict', 'the statement conflicted with another write; retry it',
                                    detail=detail)
        if errno in _DENIED:
            return StatementFailure(403, 'database_denied', _denied_message(message), detail=detail)
        if isinstance(exc, pymysql.err.IntegrityError):
            return StatementFailure(400, 'constraint_violation',
                                    f'the statement violates a constraint of the database (error {errno})',
                                    detail=detail)
        return StatementFailure(400, 'sql_error', _sql_error_message(errno, message), detail=detail)
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return NodeFailure(f'timed out: {exc}', timeout=True)
    if isinstance(exc, OSError):
        return NodeFailure(f'connection error: {exc}')
    return exc if isinstance(exc, Exception) else RuntimeError(str(exc))


def changed_rows(affected: int, info: bytes | str | None) -> int:
    """Rows an UPDATE really changed ('Changed: N'; with CLIENT_FOUND_ROWS the affected count is the matched one)."""
    if isinstance(info, str):
        info = info.encode('utf-8', 'replace')
    found = _CHANGED.search(info or b'')
    return int(found.group(1)) if found else max(affected, 0)


def matched_rows(affected: int, info: bytes | str | None) -> int:
    """Rows a write touched: the server's 'Rows matched: N' (UPDATE with CLIENT_FOUND_ROWS) or 'Records: N'
    (multi-row INSERT, INSERT ... SELECT, upserts) when it says so, else the affected-row count."""
    if isinstance(info, str):
        info = info.encode('utf-8', 'replace')
    if info:
        found = _MATCHED.search(info)
        if found:
            return int(found.group(1))
    return max(affected, 0)


class _Watchdog:
    """Stops a statement that outlives its time (MySQL's max_execution_time covers SELECT only)."""

    def __init__(self, kill: Callable[[], Awaitable[object]], seconds: float) -> None:
        self.fired = False
        self.kill = kill
        self.task: asyncio.Future[object] | None = None
        self.handle = asyncio.get_running_loop().call_later(seconds, self._fire)

    def _fire(self) -> None:
        self.fired = True
        self.task = asyncio.ensure_future(self.kill())
        self.task.add_done_callback(lambda task: task.cancelled() or task.exception())

    def cancel(self) -> None:
        self.handle.cancel()


def _mogrify(conn: wire.Connection, sql: str, params: tuple[object, ...]) -> str:
    try:
        return conn.mogrify(sql, params) if params else sql
    except (TypeError, ValueError, pymysql.err.ProgrammingError) as exc:
        raise StatementFailure(400, 'invalid_placeholders', f'the params do not fit the placeholders: {exc}') from None


async def _stream_rows(conn: wire.Connection, first: bytes, limits: Limits, db: DatabaseConfig) -> ReadResult:
    """The rows of the result being read, stopping at the scope's row and byte caps."""
    large = None
    try:
        columns, converters = await conn.columns(first)
        rows: list[list[object]] = []
        size = sum(len(name) + _VALUE_OVERHEAD for name in columns)
        overhead = _VALUE_OVERHEAD * len(columns)
        while True:
            payload = await conn.wire.packet()
            if wire.is_eof(payload):
                break
            row, cost = wire.parse_row(payload, converters)
            rows.append(row)
            if len(rows) > limits.max_rows:
                raise StatementFailure(
                    403, 'result_too_large', f'the result has more than {limits.max_rows} rows; add a LIMIT',
                    keep_connection=False)
            size += overhead + cost
            if size > limits.max_bytes:
                raise StatementFailure(
                    403, 'result_too_large',
                    f'the result is larger than {limits.max_bytes} bytes, the most this API key may read; '
                    'select fewer rows or columns', keep_connection=False)
            if large is None and size > LARGE_RESULT and limits.large_results is not None:
                if not limits.large_results.acquire(blocking=False):
                    raise StatementFailure(503, 'busy', 'too many large results are being read right now; retry '
                                           'shortly', keep_connection=False)
                large = limits.large_results
        return ReadResult(columns, convert_rows(rows), large)
    except BaseException as exc:  # noqa: BLE001 - re-raised: a cancelled read closes the connection too
        if large is not None:
            large.release()
        conn.close()  # reading the rest would cost as much as the rows we refuse; mid-result, the session is unknown
        failure = translate(exc, db) if isinstance(exc, Exception) else exc
        if isinstance(failure, StatementFailure):
            failure.keep_connection = False
        raise failure from None


async def _first(conn: wire.Connection, text: str | bytes, db: DatabaseConfig, last: bool = False) -> bytes:
    """Send one statement; the first packet of its answer, or its error as ours.

    ``last``: the request's last statement, sent with the session reset behind it (one write, one round trip).
    """
    try:
        conn.query(text, reset_after=last)
        return await conn.wire.packet()
    except Exception as exc:  # noqa: BLE001
        raise translate(exc, db) from None


async def _simple(conn: wire.Connection, text: str, db: DatabaseConfig, last: bool = False) -> None:
    """A statement that answers OK (BEGIN, COMMIT, ROLLBACK)."""
    if (await _first(conn, text, db, last))[0] != 0:
        conn.close()
        raise NodeFailure(f'protocol error: {text} answered with a result')


async def execute_read(conn: wire.Connection, sql: str, params: tuple[object, ...], limits: Limits,
                       db: DatabaseConfig) -> ReadResult:
    """Run one read, streaming its rows and stopping at the scope's row and byte caps."""
    text = _mogrify(conn, sql, params)
    deadline = conn.deadline()
    try:
        first = await _first(conn, text, db, last=True)
        if first[0] == 0:  # OK: a statement without a result
            return ReadResult([], [])
        return await _stream_rows(conn, first, limits, db)
    finally:
        deadline.cancel()


async def execute_write(conn: wire.Connection, sql: str, params: tuple[object, ...], limits: Limits,
                        db: DatabaseConfig, killer: Callable[[], Awaitable[object]] | None = None
                        ) -> WriteResult | ReadResult:
    """Run one write in a transaction; roll it back when it matched more rows than the scope allows.

    ``killer`` stops the statement from another connection; it runs when the statement outlives the
    scope's time on a server whose own limit does not cover writes (MySQL). A locking read (SELECT ...
    FOR UPDATE) is a write for routing; its rows come back capped like any read's.
    """
    text = _mogrify(conn, sql, params)
    deadline = conn.deadline()
    watchdog = None
    try:
        await _simple(conn, 'BEGIN', db)
        if killer is not None and conn.server_flavor == 'mysql':
            watchdog = _Watchdog(killer, limits.statement_timeout)
        try:
            first = await _first(conn, text, db)
        finally:
            if watchdog is not None:
                watchdog.cancel()
        if first[0] != 0:
            rows = await _stream_rows(conn, first, limits, db)
            await _simple(conn, 'COMMIT', db, last=True)
            return rows
        ok = wire.Ok(first)
        matched = matched_rows(ok.affected_rows or 0, ok.message)
        if matched > limits.max_affected_rows:
            await _simple(conn, 'ROLLBACK', db, last=True)
            raise StatementFailure(
                403, 'too_many_rows',
                f'the statement would change {matched} rows; this API key may change at most '
                f'{limits.max_affected_rows} per statement, so nothing was changed')
        affected, last_insert_id = changed_rows(ok.affected_rows or 0, ok.message), ok.insert_id or None
        await _simple(conn, 'COMMIT', db, last=True)
    except StatementFailure as exc:
        failure = exc
        if watchdog is not None and watchdog.fired:
            failure = translate(pymysql.err.OperationalError(3024, 'killed by the watchdog'), db)  # type: ignore[assignment]
        if failure.keep_connection and failure.code != 'too_many_rows':
            await _rollback_quietly(conn, failure, db)
        raise failure from None
    finally:
        deadline.cancel()
    return WriteResult(affected, last_insert_id, matched)


async def _rollback_quietly(conn: wire.Connection, failure: StatementFailure, db: DatabaseConfig) -> None:
    try:
        await _simple(conn, 'ROLLBACK', db, last=True)
    except Exception:  # noqa: BLE001 - the session is unknown: drop it
        failure.keep_connection = False


def kill_query(connect_again: Callable[[], pymysql.connections.Connection], thread_id: int) -> None:
    """KILL QUERY from a second connection of the same user (a user may stop its own statements)."""
    conn = connect_again()
    try:
        with conn.cursor() as cursor:
            cursor.execute(f'KILL QUERY {int(thread_id)}')
    finally:
        close_quietly(conn)


async def probe(conn: wire.Connection, query: str, timeout: float) -> float:
    """Seconds for a round trip of the probe query (it should read a table: a Galera node that is not ready
    still answers ``SELECT 1``, and an NDB SQL node cut off from its data nodes too)."""
    started = time.perf_counter()
    deadline = conn.deadline(timeout)
    try:
        conn.query(query)
        first = await conn.wire.packet()
        if first[0] != 0:
            await conn.columns(first)
            while not wire.is_eof(await conn.wire.packet()):
                pass
    finally:
        deadline.cancel()
    return time.perf_counter() - started
